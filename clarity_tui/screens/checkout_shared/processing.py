"""Paying and activating, in a thread worker behind a modal: the lane stays responsive."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, LoadingIndicator, Static

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import CheckoutBackend
from clarity_tui.services.orders import OrderView, PayResult, money


class ProcessingScreen(ModalScreen[PayResult | str]):
    """Dismisses with the PayResult, or the attendant-facing message of a refused step."""

    def __init__(self, view: OrderView, backend: CheckoutBackend) -> None:
        super().__init__(id="processing", classes="dialog")
        self.view = view
        self.backend = backend

    def compose(self) -> ComposeResult:
        if self.view.due_today_cents:
            what = f"Charging {money(self.view.due_today_cents)} to {self.view.card.label if self.view.card else 'the card'}…"
        else:
            what = "Setting up the membership…"
        with Vertical():
            yield Label("Finishing the sale", classes="dialog-title")
            yield Static(what + "\nThe card is never charged twice, even if this is interrupted.",
                         classes="dialog-body", markup=False)
            yield LoadingIndicator()

    def on_mount(self) -> None:
        self._pay()

    @work(thread=True, exclusive=True, group="sale-pay", exit_on_error=False)
    def _pay(self) -> None:
        try:
            result: PayResult | str = self.backend.pay(self.view.id)
        except UserFacingError as exc:
            result = str(exc)
        self.app.call_from_thread(self.dismiss, result)
