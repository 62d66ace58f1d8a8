"""The customer signs on the pad; the strokes render live in braille. Clear starts again; Agree stores
the signature with the terms hash, the time, the lane and the device.

Agree comes on only when the pad says the signature is finished (hardware FinishRule: real ink, then
the pen lifted for a moment, or the pad's OK button); pressed before, it does nothing and says why.

A pad that drops mid-signature pauses the flow with its message and Retry: the order, the accepted
terms and everything before stay as they were; the customer signs again after Retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Button, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import (
    BACK,
    CheckoutBackend,
    banner,
    credit_summary,
    devices_of,
    flow_header,
)
from clarity_tui.screens.device_action import run_device_call
from clarity_tui.services.orders import OrderView
from clarity_tui.widgets.braille import BrailleCanvas
from hardware.signature_pad.base import HINT_SIGN, PadUpdate, Signature

READY_TEXT = "Signed. Agree (F5) when the customer agrees; Clear (F3) to sign again."


def pad_device_label(pad: Any) -> str:
    model = getattr(getattr(pad, "model", None), "name", "")
    return f"signature_pad {pad.driver_name} {model} {pad.port_description}".replace("  ", " ")[:120]


class SignatureScreen(Screen[OrderView | str]):
    """Dismisses with the order once the signature is stored, or BACK."""

    # No button takes focus by itself: Agree is off until the signature is finished, and Enter must
    # then mean Agree (the screen's binding), never Back or Clear on a focused button.
    AUTO_FOCUS = ""
    BINDINGS = [
        Binding("escape", "back", "Back", id="signature.back", tooltip="Stop signing and go back to the terms"),
        Binding("f3,x", "clear", "Clear", id="signature.clear", tooltip="Clear the signature; the customer signs again"),
        Binding("f5,a,enter", "agree", "Agree", id="signature.agree", tooltip="The customer agrees: finish the sale"),
    ]

    def __init__(self, view: OrderView, backend: CheckoutBackend, pad: Any = None) -> None:
        super().__init__(id="signature")
        self.view = view
        self.backend = backend
        self._pad = pad
        self.strokes: tuple = ()
        self.pen_down = False
        self.stored = False
        self.capturing = False
        self.ready = False  # the pad says the signature is finished: Agree takes it
        self.hint = HINT_SIGN
        self.clears = 0

    @property
    def pad(self) -> Any:
        return self._pad or devices_of(self).signature_pad

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Signature"), classes="flow-banner")
        if self.view.credit_line:  # "Join today": the customer signs for the amount less the wash
            yield Static(credit_summary(self.view), id="sign-credit", classes="flow-message", markup=False)
        yield BrailleCanvas("Waiting for the customer to sign on the pad…", id="sign-canvas")
        yield Static(f"Ask the customer to sign. {HINT_SIGN}", id="sign-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Clear · F3", id="clear", action="screen.clear")
            yield Button("Agree · F5", id="agree", variant="success", disabled=True, action="screen.agree",
                         tooltip="Comes on when the customer has signed and lifted the pen")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Customer signature"
        self.capture()

    def _set_ready(self, ready: bool) -> None:
        """Agree is on when the signature is finished, or when capture stopped (Agree tries the pad again)."""
        self.ready = ready
        try:
            agree = self.query_one("#agree", Button)
        except NoMatches:  # the screen is closing (Back, or the flow moved on)
            return
        agree.disabled = not (ready or not self.capturing)
        if not agree.disabled and self.is_current:
            agree.focus()

    def _say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#sign-message", Static)
        msg.update(text)
        msg.set_class(kind == "error", "-error")
        msg.set_class(kind == "ok", "-ok")

    def _pad_changed(self, update: PadUpdate) -> None:
        if update.cleared:
            self.clears += 1  # the pad threw its strokes away too
        self.strokes = update.strokes
        self.pen_down = update.pen_down
        self.hint = update.hint or HINT_SIGN
        self.query_one(BrailleCanvas).set_strokes([[(p.x, p.y) for p in s.points] for s in update.strokes],
                                                  aspect=_aspect(self.pad))
        was_ready = self.ready
        self._set_ready(update.ready)
        if update.ready:
            self._say(READY_TEXT, "ok")
        elif update.strokes:
            self._say(f"{len(update.strokes)} stroke(s). {self.hint}")
        elif was_ready or update.cleared:
            self._say(f"Cleared: the customer signs again. {self.hint}")

    @work(exclusive=True, group="sale-signature", exit_on_error=False)
    async def capture(self) -> None:
        self.capturing = True
        self._set_ready(False)
        try:
            await self._capture_loop()
        finally:
            self.capturing = False
            if not self.stored:
                self._set_ready(False)  # Agree now tries the pad again

    async def _capture_loop(self) -> None:
        pad = self.pad
        while True:
            self.strokes = ()
            self._set_ready(False)
            self.query_one(BrailleCanvas).clear()
            try:
                await pad.show_text(f"{self.view.customer_name or 'Customer'}: sign, then Agree")
            except Exception:  # noqa: BLE001 - a pad screen is a courtesy
                pass
            outcome = await run_device_call(self.app, "Signature pad", lambda: pad.capture(self._pad_changed))
            if outcome.result is None:
                if outcome.error_code == "cancelled" and self.is_current:
                    self.dismiss(BACK)
                elif outcome.error is not None:
                    self._say(f"{outcome.error} Press Agree to try the pad again, or Esc to go back.", "error")
                return
            signature: Signature = outcome.result
            if signature.is_empty():
                self._say("The signature is empty: ask the customer to sign on the pad.", "error")
                continue
            await self._store(signature)
            return

    async def _store(self, signature: Signature) -> None:
        strokes = [[[round(x, 4), round(y, 4), t] for x, y, t in s.normalised] for s in signature.strokes if s.points]
        self._say("Saving the signature…")
        try:
            view = await asyncio.to_thread(self.backend.record_signature, self.view.id, strokes, signature.to_svg(),
                                           device=pad_device_label(self.pad), signer_name=self.view.customer_name)
        except UserFacingError as exc:
            self._say(str(exc), "error")
            return
        self.stored = True
        self.dismiss(view)

    def action_agree(self) -> None:
        if not self.capturing:
            self.capture()  # after a pad problem: start again
            return
        if not self.ready:
            # Too early (issue 14: F5 0.8 s into signing stored one stroke): say why, take nothing.
            why = self.hint if self.strokes else "Nothing signed yet: ask the customer to sign on the pad."
            self._say(f"Not yet. {why}", "error")
            return
        self.pad.accept()

    def action_clear(self) -> None:
        self.pad.clear()
        self.strokes = ()
        self.hint = HINT_SIGN
        self._set_ready(False)
        self.query_one(BrailleCanvas).clear()
        self._say(f"Cleared: the customer signs again. {HINT_SIGN}")

    def action_back(self) -> None:
        if self.capturing:
            self.pad.cancel()  # the capture ends with "cancelled" and dismisses BACK
        else:
            self.dismiss(BACK)


def _aspect(pad: Any) -> float | None:
    model = getattr(pad, "model", None)
    return getattr(model, "aspect", None) if model is not None else None
