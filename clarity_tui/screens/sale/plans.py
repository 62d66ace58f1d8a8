"""Plan selection: large cards; one digit (1-4) or one tap picks a plan."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.screens.checkout_shared.common import BACK, banner, flow_header
from clarity_tui.services.orders import OrderView, PlanOption
from clarity_tui.services.sales_tax import prices_note
from clarity_tui.widgets.plan_card import PlanCard
from clarity_tui.wiring import services_of


class PlanSelectScreen(Screen[str]):
    """Dismisses with the chosen plan code, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="plans.back", tooltip="Back to the session (nothing is sold)"),
        Binding("1", "pick(1)", "Plan 1", show=False, id="plans.pick1"),
        Binding("2", "pick(2)", "Plan 2", show=False, id="plans.pick2"),
        Binding("3", "pick(3)", "Plan 3", show=False, id="plans.pick3"),
        Binding("4", "pick(4)", "Plan 4", show=False, id="plans.pick4"),
        Binding("left", "app.focus_previous", "Previous", show=False, id="plans.left"),
        Binding("right", "app.focus_next", "Next", show=False, id="plans.right"),
    ]

    def __init__(self, view: OrderView, plans: list[PlanOption], message: str = "") -> None:
        super().__init__(id="plan-select")
        self.view = view
        self.plans = plans
        self.message = message

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Choose a plan"), classes="flow-banner")
        yield Static("", id="plans-notice", markup=False)  # the customer's operator notices (issue 14)
        with Horizontal(id="plan-cards"):
            for number, plan in enumerate(self.plans[:9], start=1):
                yield PlanCard(plan, number)
        current = next((p for p in self.plans if p.relation == "current"), None)
        hint = (f"Current plan: {current.name}. Choose another to upgrade or downgrade." if current
                else "Press the plan's number, or tap its card.")
        tax = prices_note(services_of(self).settings.billing.tax)
        hint += f" {tax}" if tax else ""
        yield Static(self.message or hint, id="plans-message",
                     classes="flow-message -error" if self.message else "flow-message")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Purchase membership"
        cards = list(self.query(PlanCard))
        if cards:
            # The order's plan when coming back; else a member's current plan (issue 14); else the first.
            chosen = (next((c for c in cards if self.view.plan and c.plan.code == self.view.plan.code), None)
                      or next((c for c in cards if c.plan.relation == "current"), cards[0]))
            chosen.focus()
        if self.view.customer_id:
            self._load_notice(self.view.customer_id)

    @work(thread=True, exclusive=True, group="plans-notice", exit_on_error=False)
    def _load_notice(self, customer_id: int) -> None:
        from clarity_tui.services.notices import notice_line, operator_notices

        line = notice_line(operator_notices(services_of(self).db, customer_id))
        if line:
            self.app.call_from_thread(self._show_notice, line)

    def _show_notice(self, line: str) -> None:
        try:
            notice = self.query_one("#plans-notice", Static)
        except NoMatches:
            return  # the screen closed while its worker ran
        notice.update(line)
        notice.add_class("-shown")

    def action_pick(self, number: int) -> None:
        if 1 <= number <= len(self.plans):
            self._choose(self.plans[number - 1])

    @on(PlanCard.Picked)
    def _picked(self, event: PlanCard.Picked) -> None:
        self._choose(event.plan)

    def _choose(self, plan: PlanOption) -> None:
        if plan.relation == "current":
            msg = self.query_one("#plans-message", Static)
            msg.update(f"The customer is already on {plan.name}: choose another plan, or Esc to go back.")
            msg.add_class("-error")
            return
        self.dismiss(plan.code)

    def action_back(self) -> None:
        self.dismiss(BACK)
