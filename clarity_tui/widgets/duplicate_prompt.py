"""A new customer whose phone or email is already on file (issue 14 item 4): "Sofia Evans already has this
phone number. Use that customer / Go back". Dismissed with True (use them) or False (back to the form,
every typed value kept). The check itself is the service's (services/customer_duplicates.py)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from clarity_tui.services.customer_duplicates import Duplicate


class DuplicateCustomerPrompt(ModalScreen[bool]):
    BINDINGS = [
        Binding("f5,u", "answer(True)", "Use that customer", id="duplicate_customer.use",
                tooltip="Continue with the existing customer instead of creating a second one"),
        Binding("escape,b", "answer(False)", "Go back", id="duplicate_customer.back",
                tooltip="Back to the form to check the details"),
    ]
    DEFAULT_CSS = """
    DuplicateCustomerPrompt { align: center middle; }
    DuplicateCustomerPrompt > Vertical { width: 66; max-width: 100%; height: auto; border: round $warning;
                                         background: $surface; padding: 0 1; }
    DuplicateCustomerPrompt #duplicate-title { text-style: bold; color: $warning; }
    DuplicateCustomerPrompt #duplicate-text { height: auto; margin-bottom: 1; }
    DuplicateCustomerPrompt Horizontal { height: 3; }
    DuplicateCustomerPrompt Button { width: 1fr; min-width: 10; margin: 0 1 0 0; }
    """

    def __init__(self, duplicate: Duplicate) -> None:
        super().__init__(id="duplicate-customer")
        self.duplicate = duplicate

    def compose(self) -> ComposeResult:
        d = self.duplicate
        with Vertical():
            yield Label("Existing customer", id="duplicate-title")
            yield Static(f"{d.message} (customer #{d.customer_number})\nUse that customer, or go back and check "
                         "what the customer told you?", id="duplicate-text", markup=False)
            with Horizontal():
                yield Button("Use that customer · F5", id="duplicate-use", variant="success",
                             action="screen.answer(True)")
                yield Button("Go back · Esc", id="duplicate-back", action="screen.answer(False)")

    def on_mount(self) -> None:
        self.query_one("#duplicate-use", Button).focus()

    def action_answer(self, use: bool) -> None:
        self.dismiss(bool(use))


__all__ = ["DuplicateCustomerPrompt"]
