"""What the shared checkout screens need: the backend protocol, the BACK result, the order table, and
the flows' typed reach into the app (header, devices, actor). Their CSS is in clarity_tui/app.tcss."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from rich.table import Table
from rich.text import Text

from clarity_tui.services.orders import OrderView, PayResult, money
from clarity_tui.services.upsell import CREDIT_LABEL
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import StillStarting, services_of

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from clarity_tui.devices import DeviceSet
    from clarity_tui.services.actor import Actor
    from db.models import TermsVersion

# A screen dismissed with BACK returns to the previous step; the flow keeps the order as it is.
BACK = "back"


def flow_header(node: DOMNode) -> ClarityHeader:
    """The header every flow screen shows (the clock as the site's settings say)."""
    return ClarityHeader(show_clock=services_of(node).settings.ui.show_clock, icon="≋")


class _LaneHost(Protocol):
    """What the flows read from the app (ClarityApp): who is signed in, and the devices (None until booted)."""

    devices: DeviceSet | None

    @property
    def actor(self) -> Actor: ...


def devices_of(node: DOMNode) -> DeviceSet:
    """The lane's devices (card reader, signature pad); raises StillStarting before the boot is done."""
    devices = cast(_LaneHost, node.app).devices
    if devices is None:
        raise StillStarting()
    return devices


def actor_of(node: DOMNode) -> Actor:
    """The operator signed in at this terminal: the one the flows' services record."""
    return cast(_LaneHost, node.app).actor


class CheckoutBackend(Protocol):
    """The order calls the shared screens make (SaleService implements them; so can a migration service)."""

    def order(self, order_id: int) -> OrderView: ...

    def checkout(self, order_id: int) -> OrderView: ...

    def current_terms(self) -> TermsVersion: ...

    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView: ...

    def decline_terms(self, order_id: int) -> OrderView: ...

    def record_signature(self, order_id: int, strokes: Sequence[Sequence[Sequence[float]]], svg: str, *,
                         device: str, signer_name: str | None = None) -> OrderView: ...

    def pay(self, order_id: int) -> PayResult: ...


def banner(view: OrderView, step: str) -> str:
    who = view.customer_name or "New customer"
    vehicle = f"{view.plate} {view.session_vehicle}" if view.plate else view.session_vehicle
    return f"[b]{step}[/b] · {who} · {vehicle}"


def long_date(day: dt.date | None) -> str:
    return day.strftime("%b %d, %Y") if day else "-"


def order_lines(view: OrderView, *, charged: bool = False) -> Table:
    """The order as label/value rows: plan, vehicles, customer, card, price (itemised), discount, due today,
    next bill. The words come from the order view (services), so every screen says the same."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    plan = view.plan
    if plan is not None:
        note = ""
        if view.is_plan_change and view.current_plan is not None and plan.relation in ("upgrade", "downgrade"):
            note = f"  ({plan.relation} from {view.current_plan.name})"
        table.add_row("Plan", f"{plan.name} · {plan.price_label}{note}")
    table.add_row("Vehicles", "\n".join(v.label for v in view.vehicles) or "-")
    if view.vehicle_note:
        table.add_row("Not covered", Text(view.vehicle_note, style="yellow"))
    if view.customer_name:
        table.add_row("Customer", f"{view.customer_name}  #{view.customer_number}")
    card = view.card
    table.add_row("Card", card.label if card else ("card on file" if view.is_plan_change else "-"))
    table.add_row("Price", view.price_text or money(view.subtotal_cents))
    if view.discount_cents:
        table.add_row("Discount", Text(f"-{money(view.discount_cents)}  {view.promotion_code}"
                                       + (f" ({view.promotion_description})" if view.promotion_description else ""),
                                       style="green"))
    if view.tax_cents or (view.tax_label and view.due_today_cents):
        table.add_row("Tax", tax_text(view))
    if view.credit_line:
        table.add_row(CREDIT_LABEL, Text(f"-{money(view.credit_cents)}", style="green"))
    if view.credit_note:
        table.add_row("", Text(view.credit_note, style="yellow"))
    due_label = "Charged today" if charged else "Due today"
    table.add_row(due_label, Text(money(view.due_today_cents) + due_note(view), style="bold"))
    if plan is not None:
        table.add_row("Next billing", f"{long_date(view.next_billing_on)} · {money(view.subtotal_cents)}{view.tax_note}")
    return table


def credit_summary(view: OrderView) -> str:
    """The signature screen's line: "Today's wash credit  -$15.00 · due today $14.99"."""
    return f"{view.credit_line} · due today {money(view.due_today_cents)}"


def tax_text(view: OrderView) -> str:
    """Today's sales tax: "$2.47 · Sales tax 8.25%" (on top), "$2.28 · incl. Sales tax 8.25%" (in the price)."""
    return f"{money(view.tax_cents)} · {view.tax_label}"


def due_note(view: OrderView) -> str:
    """Why today's amount is what it is (a plan change, a migration)."""
    if view.is_plan_change and view.plan is not None:
        if view.plan.relation == "downgrade":
            return f"  ({view.plan.name} from {long_date(view.change_effective_on)}, the next billing date)"
        if view.due_today_cents:
            return f"  (the upgrade, prorated to {long_date(view.next_billing_on)})"
        return "  (the plan changes now; the new price from the next billing date)"
    if view.kind == "migration":
        if view.billing_date_set_by_manager:
            return "  (no charge today; a manager set the first billing date)"
        return "  (no charge today; the billing date is kept)"
    return ""
