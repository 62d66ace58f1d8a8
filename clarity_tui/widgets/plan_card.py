"""A membership plan as a large card: the digit that picks it, tier, price, benefits, current/upgrade mark."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.widgets import Label, Static

from clarity_tui.services.orders import PlanOption

RELATION_LABELS = {"current": "● CURRENT PLAN", "upgrade": "▲ upgrade", "downgrade": "▼ downgrade"}


class PlanCard(Vertical, can_focus=True):
    DEFAULT_CSS = """
    PlanCard {
        width: 1fr; height: 1fr; min-height: 8;
        border: round $panel-lighten-2; padding: 0 1; background: $surface;
        &:focus { border: heavy $accent; background: $boost; }
        &.-current { border: round $success; }
        &.-current:focus { border: heavy $success; }
        .plan-name { text-style: bold; width: 1fr; }
        .plan-price { text-style: bold; color: $accent; width: 1fr; }
        .plan-relation { width: 1fr; color: $text-muted; }
        &.-current .plan-relation { color: $success; text-style: bold; }
        .plan-benefits { width: 1fr; height: 1fr; color: $foreground; }
    }
    """
    BINDINGS = [Binding("enter,space", "pick", "Choose", id="plan_card.pick", tooltip="Choose this plan")]

    @dataclass
    class Picked(Message):
        plan: PlanOption

    def __init__(self, plan: PlanOption, number: int) -> None:
        super().__init__(id=f"plan-{plan.code.lower()}", classes=f"-{plan.relation}" if plan.relation else "")
        self.plan = plan
        self.number = number
        self.border_title = f" {number} "

    def compose(self) -> ComposeResult:
        p = self.plan
        yield Label(p.name, classes="plan-name")
        # The sales tax note ("+ tax", "incl. tax") on a line of its own: a narrow card never splits it.
        yield Label(f"{p.price_label.removesuffix(p.tax_note)}  tier {p.tier}", classes="plan-price")
        if p.tax_note:
            yield Label(p.tax_note.strip(), classes="plan-price")
        yield Label(RELATION_LABELS.get(p.relation, " "), classes="plan-relation")
        # "3 vehicles included", "Extra vehicle $15.00/mo", "Up to 5 vehicles": the limit the sale enforces.
        benefits = [*p.benefits, *p.vehicle_terms]
        yield Static("\n".join(f"• {b}" for b in benefits), classes="plan-benefits", markup=False)

    def action_pick(self) -> None:
        self.post_message(self.Picked(self.plan))

    def on_click(self, event: Click) -> None:
        event.stop()
        self.action_pick()
