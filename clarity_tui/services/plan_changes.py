"""Plan changes, priced honestly: one path for the lane (a PLAN_CHANGE order) and the customer record.

An upgrade is charged today the prorated difference (plan_pricing.prorated_difference), fixed on the
order when the checkout summary is shown, as a `payment.charge` row of the order; then the gateway
switches the subscription's prices with no proration of its own (Stripe would prorate nothing during
a trial anyway: a sale's paid first period, a migrated member's kept date), and the plan changes now.
A downgrade costs nothing today: the gateway bills the new price from the next invoice, and the
membership shows "changes to Basic on <date>" (`scheduled_plan_id`/`_on`) until then.

The rows ride the order, so the outbox hooks finish it: completed, or back to the card after a
decline, or (a charge taken, then the change refused for good) refunded. A membership no gateway
bills (demo or hand-made data) changes locally at once and is charged nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingOutcome
from clarity_tui.services.commissions import CommissionSettings, earn
from clarity_tui.errors import UserFacingError
from clarity_tui.services.membership_steps import AUDITED, apply_local_change
from clarity_tui.services.membership_rules import is_current
from clarity_tui.services.outbox import enqueue, existing, make_key
from clarity_tui.services.plan_pricing import PlanChangeQuote, extra_vehicles, interval_word, limit_problem, money, quote
from clarity_tui.services import sales_tax
from clarity_tui.services.vehicle_claims import claim_vehicles, holder_label
from db.models import (
    Membership,
    MembershipVehicle,
    OrderKind,
    OrderState,
    Outbox,
    OutboxStatus,
    PaymentMethod,
    Plan,
    SalesOrder,
    utcnow,
)


class PlanChangeRefused(UserFacingError):
    """The change cannot be made as asked; str() says why and what to do. Nothing was changed."""


def membership_vehicle_ids(s: Session, membership_id: int) -> list[int]:
    return [mv.vehicle_id for mv in s.exec(select(MembershipVehicle).where(
        MembershipVehicle.membership_id == membership_id).order_by(col(MembershipVehicle.vehicle_id)))]


def check(m: Membership, old_plan: Plan, new_plan: Plan, vehicles: int) -> None:
    """Raise PlanChangeRefused when the membership cannot move to `new_plan` with `vehicles`."""
    if not is_current(m.status):
        raise PlanChangeRefused(f"A {m.status.replace('_', ' ')} membership cannot change plan.")
    if new_plan.id == m.plan_id:
        raise PlanChangeRefused(f"The membership is already on {new_plan.name}.")
    if old_plan.interval != new_plan.interval:
        raise PlanChangeRefused(f"{new_plan.name} is billed {interval_word(new_plan)} and {old_plan.name} "
                                f"{interval_word(old_plan)}: cancel at the period end and sell the new plan instead.")
    problem = limit_problem(new_plan, vehicles)
    if problem:
        raise PlanChangeRefused(f"{problem} Remove vehicles on the customer record first, or choose a plan "
                                "with room for them.")


def order_quote(s: Session, order: SalesOrder, today: dt.date) -> PlanChangeQuote:
    """What the PLAN_CHANGE order costs today (the order's vehicles on the new plan)."""
    m = existing(s, Membership, order.membership_id)
    assert m.id is not None  # a stored row
    old_plan = existing(s, Plan, order.from_plan_id or m.plan_id)
    new_plan = existing(s, Plan, order.plan_id)
    before = max(1, len(membership_vehicle_ids(s, m.id)))
    return quote(old_plan, before, new_plan, max(1, len(order.vehicle_ids or [])), today, m.next_billing_on,
                 billed=bool(m.gateway_subscription_id))


def scheduled_note(plan_name: str | None, on: dt.date | None) -> str | None:
    """"changes to Basic Wash Club on 2026-12-14" (None when nothing is scheduled)."""
    return f"changes to {plan_name} on {on.isoformat()}" if plan_name and on else None


def preview(s: Session, membership_id: int, plan_code: str, today: dt.date, tax: Any = None) -> str:
    """What changing to `plan_code` means today, said before it is confirmed: "upgrade, $12.34 today",
    "downgrade from 2026-12-14", "current plan" or "not possible" (choosing it then says why). With
    `tax` (the site's sales tax) today's amount is the one charged, tax and all."""
    m = s.get(Membership, membership_id)
    plan = s.exec(select(Plan).where(Plan.code == plan_code, col(Plan.active).is_(True))).first()
    if m is None or plan is None:
        return ""
    if plan.id == m.plan_id:
        return "current plan"
    n = max(1, len(membership_vehicle_ids(s, membership_id)))
    old = existing(s, Plan, m.plan_id)
    try:
        check(m, old, plan, n)
    except PlanChangeRefused:
        return "not possible"
    q = quote(old, n, plan, n, today, m.next_billing_on, billed=bool(m.gateway_subscription_id))
    due = sales_tax.compute(tax, q.due_today_cents).total_cents
    return f"upgrade, {money(due)} today" if q.upgrade else f"downgrade from {q.effective_on.isoformat()}"


class PlanChanges:
    """Start a PLAN_CHANGE order's money and gateway steps. `billing` is a BillingService."""

    def __init__(self, billing: Any, today: Callable[[], dt.date] | None = None,
                 commissions: CommissionSettings | None = None) -> None:
        self.billing = billing
        self.db = billing.db
        self.today = today or dt.date.today
        # The site's commission settings (settings.wash.commissions; None: the defaults): an upgrade may earn one.
        self.commissions = commissions if commissions is not None else getattr(billing, "commissions", None)

    def start(self, order_id: int) -> BillingOutcome:
        """Record the steps (once) and send them now. Raises PlanChangeRefused before anything moved."""
        with self.db.write() as s:
            order = existing(s, SalesOrder, order_id, lock=True)
            if order.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING) and self._needs_steps(s, order):
                self._record(s, order)
        self.billing.processor.run_order(order_id, wait=5.0)
        self.billing.run_settlements(order_id)
        outcome = self.billing.outcome(order_id)
        if outcome.completed or outcome.pending_sync:
            with self.db.write() as s:  # replay-safe: one earned row per order
                earn(s, existing(s, SalesOrder, order_id), self.commissions)
        return outcome

    @staticmethod
    def _needs_steps(s: Session, order: SalesOrder) -> bool:
        """Nothing pending and the plan not changed yet: first Agree, or another card after a decline."""
        rows = s.exec(select(Outbox).where(Outbox.order_id == order.id)).all()
        return not any(r.status == OutboxStatus.PENDING or (r.status == OutboxStatus.DONE and
                                                            r.operation == "subscription.change_plan") for r in rows)

    @staticmethod
    def _attempt(s: Session, order: SalesOrder) -> int:
        """A declined charge took nothing: the next card (or the same one again) is a new attempt, new keys."""
        return 1 + len(s.exec(select(Outbox.id).where(Outbox.order_id == order.id, Outbox.operation == "payment.charge",
                                                      Outbox.status == OutboxStatus.FAILED)).all())

    def _record(self, s: Session, order: SalesOrder) -> None:
        m = existing(s, Membership, order.membership_id, lock=True)
        old_plan = existing(s, Plan, order.from_plan_id or m.plan_id)
        new_plan = existing(s, Plan, order.plan_id)
        if m.plan_id != old_plan.id:
            raise PlanChangeRefused(f"The membership was changed to {existing(s, Plan, m.plan_id).name} on another "
                                    "terminal meanwhile. Nothing was charged: start again.")
        if m.pending_sync and m.gateway_subscription_id:
            raise PlanChangeRefused("This membership has a change still on its way to the payment gateway. "
                                    "Nothing was charged: try again once it has synced.")
        vehicles = max(1, len(order.vehicle_ids or []))
        check(m, old_plan, new_plan, vehicles)
        q = order_quote(s, order, self.today())
        # The amount the customer saw before Agree (fixed by review) is the amount charged.
        due = order.due_today_cents if (q.upgrade and m.gateway_subscription_id) else 0
        if not due:
            order.tax_cents = 0
        claim_vehicles(s, order, holder_label(s, order))
        before = audit.snapshot(order)
        order.subtotal_cents, order.discount_cents, order.next_billing_on = q.new_subtotal_cents, 0, q.next_billing_on
        m.version += 1
        m.updated_at = utcnow()
        payload = {"membership_id": m.id, "plan_id": new_plan.id, "from_plan_id": old_plan.id,
                   "extra_vehicles": extra_vehicles(new_plan, vehicles), "currency": self.billing.currency,
                   "scheduled_on": None if q.upgrade else q.effective_on.isoformat()}
        if not m.gateway_subscription_id:
            before_m = audit.snapshot(m, AUDITED)
            apply_local_change(s, "subscription.change_plan", m, payload)
            order.due_today_cents = 0
            order.state, order.completed_at = OrderState.COMPLETED, utcnow()
            audit.record(s, self.billing.actor, "membership.plan_changed_locally", "membership", m.id,
                         before=before_m, after=audit.snapshot(m, AUDITED))
            earn(s, order, self.commissions)
        else:
            k = order.idempotency_key
            if due > 0:
                pm = s.get(PaymentMethod, order.payment_method_id) if order.payment_method_id else None
                if pm is None or pm.detached_at is not None:
                    raise PlanChangeRefused("Choose the card for today's upgrade charge first.")
                attempt = f"{pm.gateway_token}:{self._attempt(s, order)}"
                enqueue(s, order_id=order.id, operation="card.save", payload={"payment_method_row_id": pm.id},
                        idempotency_key=make_key(k, "card", attempt))
                enqueue(s, order_id=order.id, operation="payment.charge",
                        payload={"payment_method_row_id": pm.id, "amount_cents": due,
                                 "currency": self.billing.currency, "tax_cents": order.tax_cents},
                        idempotency_key=make_key(k, "charge", attempt))
            enqueue(s, order_id=order.id, operation="subscription.change_plan", payload=payload,
                    idempotency_key=make_key(k, "plan"))
            order.due_today_cents = due
            m.pending_sync = True
            order.state, order.last_error = OrderState.PAYMENT_PENDING, None
        order.updated_at = utcnow()
        s.add(m)
        s.add(order)
        audit.record(s, self.billing.actor, f"order.plan_change.{q.direction}", "sales_order", order.id,
                     before=before, after={**(audit.snapshot(order) or {}), "effective_on": q.effective_on.isoformat()})

    def from_record(self, actor: Actor, membership_id: int, version: int, plan_code: str) -> tuple[str, BillingOutcome]:
        """The customer record's plan change: an order of its own (no session) on the member's default card.
        Returns ("upgrade" | "downgrade", outcome). Raises PlanChangeRefused, StaleVersion."""
        with self.db.write() as s:
            m = s.get(Membership, membership_id, with_for_update=True)
            if m is None:
                raise PlanChangeRefused(f"Membership {membership_id} no longer exists: reload the record.")
            if m.version != version:
                raise StaleVersion("This membership was changed on another terminal: reload the record and try again.")
            new_plan = s.exec(select(Plan).where(Plan.code == plan_code.strip().upper(),
                                                 col(Plan.active).is_(True))).first()
            if new_plan is None:
                raise PlanChangeRefused("Choose one of the plans on sale.")
            if m.scheduled_plan_id == new_plan.id:
                raise PlanChangeRefused(f"The membership already {scheduled_note(new_plan.name, m.scheduled_plan_on)}.")
            if m.pending_sync and m.gateway_subscription_id:
                raise PlanChangeRefused("This membership has a change still on its way to the payment gateway: try "
                                        "again once it has synced.")
            vehicle_ids = membership_vehicle_ids(s, membership_id)
            old_plan, n = existing(s, Plan, m.plan_id), max(1, len(vehicle_ids))
            check(m, old_plan, new_plan, n)
            q = quote(old_plan, n, new_plan, n, self.today(), m.next_billing_on, billed=bool(m.gateway_subscription_id))
            taxed = sales_tax.compute(self.billing.tax, q.due_today_cents)  # the total is charged
            card = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == m.customer_id,
                                                      col(PaymentMethod.detached_at).is_(None))
                          .order_by(col(PaymentMethod.is_default).desc(), col(PaymentMethod.id).desc())).first()
            if q.due_today_cents > 0 and card is None:
                raise PlanChangeRefused("The upgrade is charged today and the customer has no card on file: "
                                        "add a card first.")
            order = SalesOrder(idempotency_key=f"plan-{uuid.uuid4().hex}", kind=OrderKind.PLAN_CHANGE,
                               state=OrderState.SIGNED, customer_id=m.customer_id, plan_id=new_plan.id,
                               from_plan_id=m.plan_id, membership_id=m.id, vehicle_ids=vehicle_ids,
                               payment_method_id=card.id if card else None, terminal=actor.terminal,
                               operator_id=actor.operator_id, due_today_cents=taxed.total_cents,
                               tax_cents=taxed.tax_cents)
            s.add(order)
            s.flush()
            audit.record(s, actor, "membership.change_plan", "membership", m.id,
                         after={"plan_id": new_plan.id, "order_id": order.id, "due_today_cents": taxed.total_cents,
                                "effective_on": q.effective_on.isoformat()})
            order_id, direction = order.id, q.direction
        assert order_id is not None  # flushed above
        try:
            outcome = self.start(order_id)
        except PlanChangeRefused:
            self.billing.cancel_order(order_id)  # nothing was sent: no order left behind
            raise
        if not (outcome.completed or outcome.pending_sync):
            self.billing.cancel_order(order_id)  # declined: the membership is as it was
        return direction, outcome


class StaleVersion(PlanChangeRefused):
    """Another terminal changed the membership since this screen read it."""
