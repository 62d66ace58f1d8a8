"""Keying a card by hand when it cannot be read (simulated gateway, or raw card data access). Both flows
use it: the sale's payment step and the migration's card on file."""

from __future__ import annotations

from typing import Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from clarity_tui.errors import UserFacingError
from clarity_tui.services.orders import OrderView


class CardKeyer(Protocol):
    """The one call the screen makes (SaleService and MigrationService implement it)."""

    def key_card(self, order_id: int, number: str, expiry: str, cvc: str) -> OrderView: ...


class ManualCardScreen(ModalScreen[OrderView | None]):
    """Keyed card entry: number and CVC masked on screen, sent straight to the gateway, never stored."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="manual_card.cancel", tooltip="Back to the payment methods"),
        Binding("f5", "save", "Use card", id="manual_card.save", tooltip="Send the card to the gateway"),
    ]

    def __init__(self, view: OrderView, service: CardKeyer) -> None:
        super().__init__(id="manual-card", classes="dialog")
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
                yield Button("Cancel · Esc", id="cancel", action="screen.cancel")
                yield Button("Use card · F5", id="save", variant="success", action="screen.save")

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
        except UserFacingError as exc:
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
