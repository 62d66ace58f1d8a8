"""The first billing date of a migrated member: the legacy system's next bill date, or a manager's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session

from clarity_tui.services import audit
from clarity_tui.services.migration.matching import legacy_of
from clarity_tui.services.migration_guard import MigrationError
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.services.orders.guards import EDITABLE
from clarity_tui.services.promotions import plan_subtotal
from db.models import LegacyMember, Operator, OrderState, Plan, SalesOrder


class BillingDateInPast(MigrationError):
    """The legacy next billing date is today or earlier: a manager must choose a date."""


@dataclass(frozen=True)
class BillingDate:
    legacy: dt.date | None
    effective: dt.date | None  # the date the subscription is anchored to
    overridden: bool
    problem: str | None  # why it cannot be used (then a manager chooses one)

    @property
    def label(self) -> str:
        if self.effective is None or self.problem:
            return "No payment due today · next charge: a manager must choose the date"
        return f"No payment due today · next charge {self.effective.strftime('%b %d, %Y')}"


def billing_date_of(order: SalesOrder, lm: LegacyMember, today: dt.date) -> BillingDate:
    """The order's first billing date: the manager's (on the order) or the legacy one, and why it cannot be used."""
    overridden = order.next_billing_on is not None and order.next_billing_on != lm.next_bill_on
    day = order.next_billing_on or lm.next_bill_on
    problem = None
    if day is None:
        problem = ("The legacy record has no next billing date: a manager must choose the date of the first "
                   "charge (Manager override).")
    elif day <= today:
        what = "today" if day == today else f"in the past ({day.strftime('%b %d, %Y')})"
        problem = (f"The legacy next billing date is {what}: keeping it would charge the member today. "
                   "A manager must choose the date of the first charge (Manager override).")
    return BillingDate(lm.next_bill_on, day, overridden, problem)


def override_billing_date(s: Session, steps: OrderSteps, order_id: int, day: dt.date, approver: Operator,
                          today: dt.date) -> BillingDate:
    """The manager's first billing date on the order (the caller checked the manager and the day)."""
    order = steps.owned(s, order_id)
    if order.state not in EDITABLE:
        raise MigrationError("The customer has already signed: the billing date can no longer change.")
    lm = legacy_of(s, order)
    was = order.next_billing_on or lm.next_bill_on
    order.next_billing_on = day
    steps.touch(s, order, OrderState.DRAFT)
    audit.record(s, steps.actor, "migration.billing_date_override", "sales_order", order.id,
                 before={"next_billing_on": was.isoformat() if was else None},
                 after={"next_billing_on": day.isoformat(), "manager": approver.name,
                        "manager_operator_id": approver.id, "legacy_next_bill_on":
                            lm.next_bill_on.isoformat() if lm.next_bill_on else None})
    return billing_date_of(order, lm, today)


def fix_for_checkout(s: Session, steps: OrderSteps, order_id: int, today: dt.date) -> None:
    """Review: nothing due today, the subscription's price, and the first billing date fixed on the order."""
    order = steps.editable(s, order_id)
    lm = legacy_of(s, order)
    missing = [w for w, v in (("the contact details (Confirm)", order.customer_id),
                              ("a card on file", order.payment_method_id)) if v is None]
    if missing:
        raise MigrationError(f"The migration needs {' and '.join(missing)} before checkout.")
    date = billing_date_of(order, lm, today)
    if date.problem:
        raise BillingDateInPast(date.problem)
    plan = s.get(Plan, order.plan_id) if order.plan_id is not None else None
    if plan is None:
        raise MigrationError("The plan of this migration no longer exists: start again from the session.")
    order.subtotal_cents = plan_subtotal(plan, max(1, len(order.vehicle_ids or [])))
    order.discount_cents = order.due_today_cents = order.tax_cents = 0
    order.next_billing_on = date.effective
    steps.touch(s, order, OrderState.CHECKOUT)
    audit.record(s, steps.actor, "order.reviewed", "sales_order", order.id,
                 after=audit.snapshot(order, ["subtotal_cents", "due_today_cents", "next_billing_on", "kind"]))
