"""What was done (a sale, a migration or a plan change): the membership is active on the customer and the vehicles."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.screens.checkout_shared.common import banner, flow_header, long_date, order_lines
from clarity_tui.services.orders import OrderView


class ConfirmationScreen(Screen[None]):
    BINDINGS = [
        Binding("enter,escape,f5", "done", "Done", id="confirmation.done", tooltip="Back to the session"),
    ]

    def __init__(self, view: OrderView) -> None:
        super().__init__(id="confirmation")
        self.view = view

    def compose(self) -> ComposeResult:
        v = self.view
        yield flow_header(self)
        yield Static(banner(v, "Done"), classes="flow-banner")
        if v.is_plan_change:
            new, old = v.plan.name if v.plan else "the new plan", v.current_plan.name if v.current_plan else "the old plan"
            title = (f"✔ {v.customer_name} changes from {old} to {new} on {long_date(v.change_effective_on)}."
                     if v.plan and v.plan.relation == "downgrade" else f"✔ {v.customer_name} is now on {new} (was {old}).")
        elif v.kind == "migration":
            title = f"✔ {v.customer_name}'s membership is migrated: no charge today."
        else:
            title = f"✔ Membership active: {v.plan.name if v.plan else ''} for {v.customer_name}."
        yield Static(title, id="confirm-title", markup=False)
        with VerticalScroll(id="confirm-body"):
            yield Static(order_lines(v, charged=True), id="confirm-table")
        note = ("⟳ The payment gateway could not be reached: the membership is active and will sync "
                "automatically when the network is back." if v.pending_sync else
                "The session bubble now shows MEMBER. Every step is in the audit log.")
        yield Static(note, id="confirm-message", classes="flow-message -ok" if not v.pending_sync else "flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Done · Enter", id="done", variant="success", action="screen.done")
        yield KeyFooter()

    @staticmethod
    def heading(view: OrderView) -> str:
        """The screen's sub-title: what just finished (one screen ends the sale, the migration and a plan change)."""
        if view.is_plan_change:
            downgrade = view.plan is not None and view.plan.relation == "downgrade"
            return "Plan change scheduled" if downgrade else "Plan change complete"
        if view.kind == "migration":
            return "Migration complete"
        return "Sale complete"

    def on_mount(self) -> None:
        self.sub_title = self.heading(self.view)
        self.query_one("#done", Button).focus()

    def action_done(self) -> None:
        self.dismiss(None)
