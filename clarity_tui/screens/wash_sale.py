"""A single wash at the lane (issue 18): a package and extras, paid on the card reader, then the car sent
to the tunnel or the customer offered "Join today" with the wash credited.

From the board: Enter (the session), W (this screen), a digit (the package), F5 (pay on the reader):
four key presses. The screen is a thin view of WashSaleService; every call runs in a worker, and a
second F5 while the reader is busy does nothing (the outbox would not charge twice anyway).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import actor_of, devices_of
from clarity_tui.services.orders import money
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.widgets.key_footer import KeyFooter
from clarity_tui.widgets.text import show_text
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from clarity_tui.services.orders.wash_sale import WashOrderView, WashSaleService

# The screen closes with "join" when the attendant chose Join today (the session's screen starts the sale).
WashOutcome = Literal["join", "done"]

PACKAGE_KEYS = "123456789"
Choice = tuple[str | None, tuple[str, ...]]  # (package code, extra codes)
EXTRA_KEYS = "abcdef"


class WashSaleScreen(Screen[WashOutcome]):
    # Digits and letters are the menu's keys, so no text field takes them first; Enter pays.
    AUTO_FOCUS = "#wash-pay"
    BINDINGS = [
        Binding("escape", "back", "Back", id="wash.back"),
        *(Binding(key, f"package({i})", f"Package {key}", show=False, id=f"wash.package_{key}")
          for i, key in enumerate(PACKAGE_KEYS)),
        *(Binding(key, f"extra({i})", f"Extra {key.upper()}", show=False, id=f"wash.extra_{key}")
          for i, key in enumerate(EXTRA_KEYS)),
        Binding("f5,p", "pay", "Pay on reader", id="wash.pay", tooltip="Take the payment on the card reader"),
        Binding("t", "receipt", "Receipt to", id="wash.receipt",
                tooltip="Type the customer's phone (text) or email for the receipt"),
        Binding("f8,j", "join", "Join today", id="wash.join",
                tooltip="Sell a membership now, with this wash taken off its first charge"),
        Binding("g", "send", "Send to tunnel", id="wash.send", tooltip="Send the wash and open the gate"),
        Binding("r", "send", "Retry tunnel", show=False, id="wash.retry"),
    ]

    DEFAULT_CSS = """
    WashSaleScreen {
        #wash-body { height: 1fr; padding: 0 1; }
        .section-title { text-style: bold; color: $accent; }
        #wash-packages, #wash-extras { grid-size: 3; grid-gutter: 0 1; height: auto; }
        .wash-item { width: 1fr; height: 4; }
        #wash-receipt-row { height: 3; }
        #wash-receipt-row Label { padding: 1 1 0 0; }
        #wash-receipt { width: 40; }
        #wash-total { height: 2; text-style: bold; }
        #wash-message { height: 2; padding: 0 1; }
        #wash-message.-error { color: $error; text-style: bold; }
        #wash-actions { height: 3; padding: 0 1; }
        #wash-actions Button { width: 1fr; height: 3; }
    }
    """

    def __init__(self, session_id: int) -> None:
        super().__init__(id="wash-sale")
        self.session_id = session_id
        self.view: WashOrderView | None = None
        self._busy = False  # the reader or the tunnel is working: keys wait for it
        # A burst of keys (as over SSH) outruns the workers: each key changes the attendant's choice here at
        # once, and the workers send the latest one in turn, so no key is lost to a stale view.
        self._wanted: Choice | None = None  # (package, extras) as the keys left it
        self._applied: Choice | None = None  # what the order holds
        self._edit_lock = threading.Lock()

    @property
    def service(self) -> WashSaleService:
        from clarity_tui.services.orders.wash_sale import WashSaleService

        return WashSaleService.from_services(services_of(self), actor_of(self))

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=services_of(self).settings.ui.show_clock, icon="≋")
        with VerticalScroll(id="wash-body"):
            yield Static("Loading…", id="wash-banner", markup=False)
            yield Label("Package", classes="section-title")
            yield Grid(id="wash-packages")
            yield Label("Extras", classes="section-title")
            yield Grid(id="wash-extras")
            with Horizontal(id="wash-receipt-row"):
                yield Label("Receipt to (T)")
                yield Input(placeholder="phone or email (optional)", id="wash-receipt")
            yield Static("", id="wash-total", markup=False)
        yield Static("Choose a package (1-9), extras (A-F), then F5 to pay on the reader.", id="wash-message",
                     markup=False)
        with Horizontal(id="wash-actions"):
            yield Button("Pay · F5", id="wash-pay", variant="success", action="screen.pay")
            yield Button("Join today · J", id="wash-join", variant="primary", action="screen.join", disabled=True)
            yield Button("Tunnel · G", id="wash-send", action="screen.send", disabled=True)
            yield Button("Back · Esc", id="wash-back", action="screen.back")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Single wash"
        self._open()

    # --- loading and showing ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="wash-edit", exit_on_error=False)
    def _open(self) -> None:
        try:
            view = self.service.open_for_session(self.session_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), error=True)
            return
        self.app.call_from_thread(self._show, view)

    def _show(self, view: WashOrderView) -> None:
        first = self.view is None
        self.view = view
        if first:
            self._wanted = self._applied = _choice_of(view)
        try:
            banner = self.query_one("#wash-banner", Static)
        except NoMatches:
            return  # closed while the worker ran
        member = f" · member ({view.member_plan}): extras only" if view.member_plan else ""
        show_text(banner, f"Single wash · {view.plate}{member}")
        from clarity_tui.services.wash_menu import WashMenu

        if first:
            menu = WashMenu(services_of(self).db)
            self._mount_items(menu.packages() if not view.member_plan else [], "#wash-packages", PACKAGE_KEYS, "package")
            self._mount_items(menu.extras(), "#wash-extras", EXTRA_KEYS, "extra")
            if view.receipt_to:
                self.query_one("#wash-receipt", Input).value = view.receipt_to
        chosen = {view.package.code} if view.package else set()
        chosen |= {e.code for e in view.extras}
        for button in self.query(".wash-item").results(Button):
            button.variant = "success" if button.name in chosen else "default"
        lines = "   ".join(f"{label} {money(cents)}" for label, cents in view.lines)
        tax = f"   tax {money(view.tax_cents)}" if view.tax_cents else ""
        show_text(self.query_one("#wash-total", Static), f"{lines}{tax}\nTotal {money(view.total_cents)}"
                  + ("   PAID" if view.paid else ""))
        self.query_one("#wash-pay", Button).disabled = view.paid
        self.query_one("#wash-join", Button).disabled = not view.paid or bool(view.member_plan)
        self.query_one("#wash-send", Button).disabled = not view.paid
        if view.last_error:
            self._say(view.last_error, error=True)

    def _mount_items(self, items: list, grid_id: str, keys: str, kind: str) -> None:
        grid = self.query_one(grid_id, Grid)
        buttons = [Button(f"{key.upper()} {item.name}\n{money(item.price_cents)}", name=item.code,
                          classes="wash-item", action=f"screen.{kind}({i})")
                   for i, (key, item) in enumerate(zip(keys, items, strict=False))]
        grid.mount_all(buttons)
        self._items = getattr(self, "_items", {})
        self._items[kind] = [item.code for item in items[:len(keys)]]

    def _say(self, text: str, *, error: bool = False) -> None:
        try:
            message = self.query_one("#wash-message", Static)
        except NoMatches:
            return
        show_text(message, text)
        message.set_class(error, "-error")

    # --- choosing -----------------------------------------------------------------------------------------

    def _codes(self, kind: str) -> list[str]:
        return getattr(self, "_items", {}).get(kind, [])

    def action_package(self, index: int) -> None:
        codes = self._codes("package")
        if self.view is None or self._wanted is None or self.view.paid or self._busy or index >= len(codes):
            return
        self._wanted = (codes[index], self._wanted[1])
        self._choose()

    def action_extra(self, index: int) -> None:
        codes = self._codes("extra")
        if self.view is None or self._wanted is None or self.view.paid or self._busy or index >= len(codes):
            return
        package, extras = self._wanted
        code = codes[index]
        self._wanted = (package, tuple(e for e in extras if e != code) if code in extras else (*extras, code))
        self._choose()

    def _apply_choice(self) -> WashOrderView | None:
        """Send the latest choice, one call at a time (a worker thread); None when the order already has it."""
        assert self.view is not None
        with self._edit_lock:
            wanted = self._wanted
            if wanted is None or wanted == self._applied:
                return None
            try:
                view = self.service.choose(self.view.order_id, wanted[0], list(wanted[1]))
            except UserFacingError:
                if self._wanted == wanted:  # the next key starts from what the order holds
                    self._wanted = self._applied
                raise
            self._applied = wanted
            return view

    @work(thread=True, group="wash-edit", exit_on_error=False)
    def _choose(self) -> None:
        try:
            view = self._apply_choice()
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), error=True)
            return
        if view is not None:
            self.app.call_from_thread(self._show, view)
            self.app.call_from_thread(self._say, "F5 takes the payment on the card reader.")

    def action_receipt(self) -> None:
        self.query_one("#wash-receipt", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_focus(None)

    # --- paying -------------------------------------------------------------------------------------------

    def action_pay(self) -> None:
        if self.view is None or self.view.paid or self._busy:
            return
        self._busy = True
        self._say("Present the card on the reader…")
        self._pay(self.query_one("#wash-receipt", Input).value.strip())

    @work(exclusive=True, group="wash-pay", exit_on_error=False)
    async def _pay(self, receipt_to: str) -> None:
        from clarity_tui.services.card_present import pay_at_reader

        assert self.view is not None
        order_id, service = self.view.order_id, self.service
        try:
            await asyncio.to_thread(self._apply_choice)  # keys typed ahead of F5 are what is charged
            if receipt_to and receipt_to != (self.view.receipt_to or ""):
                await asyncio.to_thread(service.set_receipt, order_id, receipt_to)
            result = await pay_at_reader(devices_of(self).card_reader, service.pay, order_id)
            view = await asyncio.to_thread(service.order, order_id)  # the order as paid (or declined)
        except UserFacingError as exc:
            self._say(str(exc), error=True)
            return
        finally:
            self._busy = False
        self._show(view)
        if result.paid:
            self._say(f"Paid {money(view.total_cents)}. G sends the car to the tunnel; J offers Join today.")
            self.query_one("#wash-send", Button).focus()
        else:
            self._say(f"{result.message or 'The payment did not go through.'} F5 to try again.", error=True)

    # --- after paying -------------------------------------------------------------------------------------

    def action_join(self) -> None:
        if self.view is None or not self.view.paid or self.view.member_plan or self._busy:
            return
        self._busy = True
        self._join()

    @work(thread=True, exclusive=True, group="wash-join", exit_on_error=False)
    def _join(self) -> None:
        from clarity_tui.services.orders import SaleService
        from clarity_tui.services.upsell import join_today

        assert self.view is not None
        try:
            join_today(SaleService.from_services(services_of(self), actor_of(self)), self.view.order_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), error=True)
            return
        finally:
            self._busy = False
        self.app.call_from_thread(self.dismiss, "join")

    def action_send(self) -> None:
        if self.view is None or not self.view.paid or self._busy:
            return
        self._busy = True
        self._say("Sending the wash to the tunnel…")
        self._send(asyncio.get_running_loop())

    @work(thread=True, exclusive=True, group="wash-send", exit_on_error=False)
    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        from clarity_tui.services.tunnel_dispatch import TunnelDispatch

        services = services_of(self)
        try:
            outcome = TunnelDispatch.from_services(services, devices_of(self).tunnel, actor_of(self),
                                                   loop=loop).dispatch_session(self.session_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), error=True)
            return
        finally:
            self._busy = False
        if outcome.status == "queued":
            self.app.call_from_thread(self._say, outcome.message or "The car is queued: R retries.", error=True)
            return
        self.app.call_from_thread(self.dismiss, "done")

    def action_back(self) -> None:
        if not self._busy:
            self.dismiss("done")


def _choice_of(view: WashOrderView) -> Choice:
    return (view.package.code if view.package else None, tuple(e.code for e in view.extras))
