"""Keying a card without raw card data: the customer types it on their own phone, on a Stripe-hosted
page sent by text. (Typed here, by hand: checkout_shared/card_entry.py.) Split from payment.py: one job each.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker

from clarity_tui.errors import UserFacingError
from clarity_tui.services.hosted_card import HostedCardService, HostedCardStatus
from clarity_tui.services.orders import OrderView, SaleService
from clarity_tui.wiring import services_of


class HostedCardScreen(ModalScreen[OrderView | None]):
    """Keyed entry without raw card data: the customer gets a Stripe-hosted card page by text message
    and types the card on their own phone; the lane polls until the page is complete."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="hosted_card.cancel", tooltip="Back to the payment methods"),
        Binding("f5", "send", "Send link", id="hosted_card.send", tooltip="Text the secure card link"),
    ]

    def __init__(self, view: OrderView, service: SaleService) -> None:
        super().__init__(id="hosted-card", classes="dialog")
        self.view = view
        self.service = service
        self._busy = False
        self._poll: Timer | None = None
        self._checking: Worker[None] | None = None

    def _hosted(self) -> HostedCardService:
        services = services_of(self)
        return HostedCardService.from_settings(self.service.db, services.settings, self.service.gateway,
                                               services.messaging, self.service.actor)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Text a secure card link", classes="dialog-title")
            with Horizontal(classes="card-row"):
                yield Label("Mobile")
                yield Input(placeholder="blank: the number on file", id="hosted-phone", max_length=24)
            yield Static("The customer types the card on their own phone, on Stripe's page; it never "
                         "passes through this terminal.", id="hosted-status", markup=False)
            with Horizontal():
                yield Button("Cancel · Esc", id="cancel", action="screen.cancel")
                yield Button("Send link · F5", id="send", variant="success", action="screen.send")

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
        except UserFacingError as exc:
            self.app.call_from_thread(self._send_failed, str(exc))
            return
        self.app.call_from_thread(self._sent, link.to_hint)

    def _send_failed(self, message: str) -> None:
        self._busy = False
        self._status(message, True)

    def _sent(self, hint: str) -> None:
        self._status(f"Link sent to {hint}. Waiting for the customer to add their card… (F5 sends it again)")
        self._busy = False
        interval = float(services_of(self).settings.messaging.poll_interval_seconds)
        if self._poll is None:
            self._poll = self.set_interval(interval, self._poll_once)

    def _poll_once(self) -> None:
        # One check at a time: on a slow network the next tick waits for the answer instead of piling up calls.
        if self._checking is None or self._checking.is_finished:
            self._checking = self._check()

    @work(thread=True, exclusive=True, group="hosted-card-poll", exit_on_error=False)
    def _check(self) -> None:
        try:
            status = self._hosted().check(self.view.id)
            view = self.service.order(self.view.id) if status.complete else None
        except UserFacingError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        self.app.call_from_thread(self._checked, status, view)

    def _checked(self, status: HostedCardStatus, view: OrderView | None) -> None:
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
