"""Checkout summary: what the customer is buying and what is due today; Checkout leads to the terms."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK, CheckoutBackend, banner, flow_header, order_lines
from clarity_tui.services.orders import OrderView


class CheckoutSummaryScreen(Screen[OrderView | str]):
    """Dismisses with the order after Checkout, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="checkout.back", tooltip="Back to the payment method"),
        Binding("f5,enter", "checkout", "Checkout", id="checkout.checkout", tooltip="Confirm and show the terms"),
    ]

    def __init__(self, view: OrderView, backend: CheckoutBackend) -> None:
        super().__init__(id="checkout-summary")
        self.view = view
        self.backend = backend

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Checkout"), classes="flow-banner")
        with VerticalScroll(id="summary-body"):
            yield Static(order_lines(self.view), id="summary-table")
        yield Static("Check the order with the customer, then Checkout.", id="summary-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Checkout · Enter", id="checkout", variant="success", action="screen.checkout")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Checkout summary"
        self.query_one("#checkout", Button).focus()

    def action_back(self) -> None:
        self.dismiss(BACK)

    def action_checkout(self) -> None:
        self.query_one("#checkout", Button).disabled = True
        self._checkout()

    @work(thread=True, exclusive=True, group="checkout", exit_on_error=False)
    def _checkout(self) -> None:
        try:
            view = self.backend.checkout(self.view.id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    def _failed(self, message: str) -> None:
        self.query_one("#checkout", Button).disabled = False
        msg = self.query_one("#summary-message", Static)
        msg.update(message)
        msg.add_class("-error")
