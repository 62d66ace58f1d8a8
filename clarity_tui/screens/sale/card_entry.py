"""Keying a card when it cannot be read: typed here (simulated gateway, or raw card data access), or on
the customer's phone through a Stripe-hosted page sent by text. Split from payment.py: one job each.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static

from clarity_tui.screens.checkout_shared.common import USER_ERRORS
from clarity_tui.screens.device_action import MODAL_CSS
from clarity_tui.services.hosted_card import HostedCardError, HostedCardService
from clarity_tui.services.sales import OrderView, SaleService


class ManualCardScreen(ModalScreen[OrderView | None]):
    """Keyed card entry: number and CVC masked on screen, sent straight to the gateway, never stored."""

    DEFAULT_CSS = "ManualCardScreen {" + MODAL_CSS + """
        & > Vertical { width: 60; }
        .card-row { height: 3; }
        .card-row Label { width: 14; padding: 1 1 0 0; }
        .card-row Input { width: 1fr; }
        #card-error { color: $error; height: auto; }
    }"""
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="manual_card.cancel", tooltip="Back to the payment methods"),
        Binding("f5", "save", "Use card", id="manual_card.save", tooltip="Send the card to the gateway"),
    ]

    def __init__(self, view: OrderView, service: SaleService) -> None:
        super().__init__(id="manual-card")
        self.view = view
        self.service = service
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Key in a card (fallback)", classes="dialog-title")
            with Horizontal(classes="card-row"):
                yield Label("Card number")
                yield Input(placeholder="16 digits", password=True, id="card-number", max_length=23)
            with Horizontal(classes="card-row"):
                yield Label("Expiry MM/YY")
                yield Input(placeholder="MM/YY", id="card-expiry", max_length=7)
            with Horizontal(classes="card-row"):
                yield Label("CVC")
                yield Input(placeholder="3 or 4 digits", password=True, id="card-cvc", max_length=4)
            yield Static("The number goes straight to the payment gateway; only the last 4 are kept.",
                         id="card-error", markup=False)
            with Horizontal():
                yield Button("Cancel · Esc", id="cancel")
                yield Button("Use card · F5", id="save", variant="success")

    def on_mount(self) -> None:
        self.query_one("#card-number", Input).focus()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        order = ["card-number", "card-expiry", "card-cvc"]
        current = event.input.id or ""
        if current == order[-1]:
            self.action_save()
        else:
            self.query_one(f"#{order[order.index(current) + 1]}", Input).focus()

    def action_save(self) -> None:
        if self._busy:
            return
        self._busy = True
        self.query_one("#card-error", Static).update("Checking the card with the gateway…")
        self._send(self.query_one("#card-number", Input).value, self.query_one("#card-expiry", Input).value,
                   self.query_one("#card-cvc", Input).value)

    @work(thread=True, exclusive=True, group="manual-card", exit_on_error=False)
    def _send(self, number: str, expiry: str, cvc: str) -> None:
        try:
            view = self.service.key_card(self.view.id, number, expiry, cvc)
        except USER_ERRORS as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        finally:
            del number, cvc
        self.app.call_from_thread(self._done, view)

    def _done(self, view: OrderView) -> None:
        self._wipe()
        self.dismiss(view)

    def _failed(self, message: str) -> None:
        self._busy = False
        self.query_one("#card-error", Static).update(message)

    def _wipe(self) -> None:
        for name in ("card-number", "card-expiry", "card-cvc"):
            self.query_one(f"#{name}", Input).value = ""

    def action_cancel(self) -> None:
        self._wipe()
        self.dismiss(None)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        {"cancel": self.action_cancel, "save": self.action_save}[event.button.id or ""]()


class HostedCardScreen(ModalScreen[OrderView | None]):
    """Keyed entry without raw card data: the customer gets a Stripe-hosted card page by text message
    and types the card on their own phone; the lane polls until the page is complete."""

    DEFAULT_CSS = "HostedCardScreen {" + MODAL_CSS + """
        & > Vertical { width: 64; }
        .card-row { height: 3; }
        .card-row Label { width: 14; padding: 1 1 0 0; }
        .card-row Input { width: 1fr; }
        #hosted-status { height: auto; }
        #hosted-status.-error { color: $error; }
    }"""
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="hosted_card.cancel", tooltip="Back to the payment methods"),
        Binding("f5", "send", "Send link", id="hosted_card.send", tooltip="Text the secure card link"),
    ]

    def __init__(self, view: OrderView, service: SaleService) -> None:
        super().__init__(id="hosted-card")
        self.view = view
        self.service = service
        self._busy = False
        self._poll: Timer | None = None

    def _hosted(self) -> HostedCardService:
        from clarity_tui.messaging import make_sms_provider

        settings = self.app.settings  # type: ignore[attr-defined]
        sms = getattr(self.app, "sms", None) or make_sms_provider(settings)
        return HostedCardService.from_settings(self.service.db, settings, self.service.gateway, sms, self.service.actor)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Text a secure card link", classes="dialog-title")
            with Horizontal(classes="card-row"):
                yield Label("Mobile")
                yield Input(placeholder="blank: the number on file", id="hosted-phone", max_length=24)
            yield Static("The customer types the card on their own phone, on Stripe's page; it never "
                         "passes through this terminal.", id="hosted-status", markup=False)
            with Horizontal():
                yield Button("Cancel · Esc", id="cancel")
                yield Button("Send link · F5", id="send", variant="success")

    def on_mount(self) -> None:
        self.query_one("#hosted-phone", Input).focus()

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#hosted-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    @on(Input.Submitted, "#hosted-phone")
    def _submitted(self) -> None:
        self.action_send()

    def action_send(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._status("Sending the link…")
        self._send(self.query_one("#hosted-phone", Input).value.strip() or None)

    @work(thread=True, exclusive=True, group="hosted-card", exit_on_error=False)
    def _send(self, phone: str | None) -> None:
        try:
            link = self._hosted().send_link(self.view.id, phone)
        except (HostedCardError, *USER_ERRORS) as exc:
            self.app.call_from_thread(self._send_failed, str(exc))
            return
        self.app.call_from_thread(self._sent, link.to_hint)

    def _send_failed(self, message: str) -> None:
        self._busy = False
        self._status(message, True)

    def _sent(self, hint: str) -> None:
        self._status(f"Link sent to {hint}. Waiting for the customer to add their card… (F5 sends it again)")
        self._busy = False
        interval = float(self.app.settings.messaging.poll_interval_seconds)  # type: ignore[attr-defined]
        if self._poll is None:
            self._poll = self.set_interval(interval, self._check)

    @work(thread=True, exclusive=True, group="hosted-card-poll", exit_on_error=False)
    def _check(self) -> None:
        try:
            status = self._hosted().check(self.view.id)
            view = self.service.order(self.view.id) if status.complete else None
        except (HostedCardError, *USER_ERRORS) as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        self.app.call_from_thread(self._checked, status, view)

    def _checked(self, status, view: OrderView | None) -> None:
        if status.complete and view is not None:
            self._stop()
            self.dismiss(view)
        elif status.message:
            self._status(status.message, status.state == "expired")

    def _stop(self) -> None:
        if self._poll is not None:
            self._poll.stop()
            self._poll = None

    def action_cancel(self) -> None:
        self._stop()
        self.dismiss(None)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        {"cancel": self.action_cancel, "send": self.action_send}[event.button.id or ""]()
