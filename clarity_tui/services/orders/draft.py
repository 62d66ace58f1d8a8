"""Putting an order together: opening the session's draft, its plan, the customer's garage and card,
and the amounts review fixes on it (the sale's steps in sale.py call these inside their transaction)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.payments.errors import PromotionInvalid
from clarity_tui.services import audit, sales_tax
from clarity_tui.services.billing import next_period
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.services.orders.guards import (
    EDITABLE,
    STALE_AFTER,
    SaleError,
    busy_error,
    open_order,
    order_key,
    paid_not_activated,
    same_operator,
)
from clarity_tui.services.orders.views import OrderView
from clarity_tui.services.plan_changes import PlanChangeRefused, order_quote
from clarity_tui.services.plan_changes import check as check_plan_change
from clarity_tui.services.plate_lookalikes import PlateCorrectionRefused, apply_correction, garage_lookalike
from clarity_tui.services.promotions import check as check_promotion
from clarity_tui.services.promotions import plan_subtotal, price_with
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.upsell import credit_available, first_charge, release
from clarity_tui.sitetime import stored_utc
from db.models import (
    Customer,
    Membership,
    MembershipVehicle,
    OrderKind,
    OrderProgress,
    OrderState,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    VehicleSession,
    utcnow,
)


def open_draft(steps: OrderSteps, session_id: int) -> OrderView:
    """Resume this terminal's open order for the session, or start a draft. Raises OrderBusy."""
    try:
        with steps.db.write() as s:
            vs = s.get(VehicleSession, session_id)
            if vs is None:
                raise SaleError(f"Session {session_id} no longer exists: go back to the board.")
            existing = open_order(s, session_id)
            if existing is not None:
                if existing.terminal == steps.terminal and same_operator(existing, steps.actor):
                    return steps.view(s, existing)
                if existing.state in EDITABLE and utcnow() - stored_utc(existing.updated_at) > STALE_AFTER:
                    steps.cancel_row(s, existing, "order.taken_over", {"by": steps.terminal})
                    release(s, existing)
                    s.flush()
                else:
                    raise busy_error(s, existing, vs, steps.terminal, steps.zone)
            paid = paid_not_activated(s, session_id)
            if paid is not None and paid.terminal == steps.terminal:
                return steps.view(s, paid)  # paid before a crash: the flow finishes it
            order = SalesOrder(idempotency_key=f"sale-{uuid.uuid4().hex}", kind=OrderKind.SALE,
                               state=OrderState.DRAFT, session_id=session_id, lane_id=vs.lane_id,
                               terminal=steps.terminal, operator_id=steps.actor.operator_id,
                               customer_id=vs.customer_id, legacy_member_id=vs.legacy_member_id,
                               vehicle_ids=[vs.vehicle_id] if vs.vehicle_id else [])
            s.add(order)
            s.flush()
            if order.customer_id:
                default_card(s, order)
            s.add(OrderProgress(order_id=order_key(order)))
            audit.record(s, steps.actor, "order.opened", "sales_order", order.id,
                         after={"session_id": session_id, "plate": vs.plate, "customer_id": vs.customer_id})
            s.flush()
            return steps.view(s, order)
    except IntegrityError:
        # Another terminal inserted its open order for this session in the same moment.
        with steps.db.read() as s:
            existing = open_order(s, session_id)
            vs = s.get(VehicleSession, session_id)
            if existing is None or vs is None:
                raise SaleError("Another terminal changed this vehicle at the same moment: try again.") from None
            raise busy_error(s, existing, vs, steps.terminal, steps.zone) from None


def set_plan(s: Session, steps: OrderSteps, order: SalesOrder, plan: Plan, current: Membership | None) -> None:
    """The order's plan: a new membership, or a plan change of the customer's current one."""
    before = audit.snapshot(order, ["plan_id", "kind"])
    if current is not None and order.credit_order_id is not None:
        raise SaleError("Today's wash credit is for a new membership, and this customer is already a member: "
                        "change their plan from their record, without the credit.")
    order.plan_id = plan.id
    order.kind = OrderKind.PLAN_CHANGE if current is not None else OrderKind.SALE
    order.membership_id = current.id if current is not None else None
    order.from_plan_id = current.plan_id if current is not None else None
    if current is not None:
        order.promotion_id = None  # promotions are for new memberships
        # The plan change keeps the member's vehicles: a plan without room for them is refused.
        ids = [mv.vehicle_id for mv in s.exec(select(MembershipVehicle)
                                              .where(MembershipVehicle.membership_id == current.id))]
        order.vehicle_ids = sorted(set(ids) | set(order.vehicle_ids or []))
        old_plan = s.get(Plan, current.plan_id)
        if old_plan is None:
            raise SaleError("The customer's current plan no longer exists: open their record to check it.")
        try:
            check_plan_change(current, old_plan, plan, max(1, len(ids)))
        except PlanChangeRefused as exc:
            raise SaleError(str(exc)) from exc
    steps.limit_vehicles(order, plan)
    steps.touch(s, order, OrderState.DRAFT)
    audit.record(s, steps.actor, "order.plan", "sales_order", order.id, before=before,
                 after={"plan": plan.code, "kind": order.kind})


def link_session_vehicle(s: Session, steps: OrderSteps, vs: VehicleSession, customer: Customer) -> int:
    """The session's car in the customer's garage (the session is linked to both); returns its id."""
    assert customer.id is not None, "a customer read from the database"
    # A misread of one of their cars (RMK-323I for RMK-3231) is that car, not a second one (issue 14).
    vehicle = garage_lookalike(s, customer.id, vs.plate)
    if vehicle is not None:
        try:
            apply_correction(s, vs, vehicle, steps.actor, "session.plate_corrected")
        except PlateCorrectionRefused as exc:
            raise SaleError(str(exc)) from exc
    else:
        vehicle = steps.garage_vehicle(s, customer, vs.plate, vs.plate_region, vs.make, vs.model, vs.colour)
    assert vehicle.id is not None, "a vehicle flushed to the database"
    before = audit.snapshot(vs, ["customer_id", "vehicle_id"])
    vs.customer_id, vs.vehicle_id = customer.id, vehicle.id
    vs.version += 1
    s.add(vs)
    audit.record(s, steps.actor, "session.customer_linked", "vehicle_session", vs.id, before=before,
                 after=audit.snapshot(vs, ["customer_id", "vehicle_id"]))
    return vehicle.id


def default_card(s: Session, order: SalesOrder) -> None:
    """The customer's default card (else their newest) pays, until the attendant chooses another."""
    cards = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                               col(PaymentMethod.detached_at).is_(None))
                   .order_by(col(PaymentMethod.is_default).desc(), col(PaymentMethod.id).desc())).all()
    order.payment_method_id = cards[0].id if cards else None


def fix_amounts(s: Session, order: SalesOrder, plan: Plan, today: dt.date, tax: TaxSettings | None) -> None:
    """Review: the amounts and the next billing date the checkout summary shows, fixed on the order."""
    if order.kind == OrderKind.PLAN_CHANGE:
        # An upgrade's prorated difference, fixed here: the amount shown before Agree is charged.
        q = order_quote(s, order, today)
        order.subtotal_cents, order.discount_cents = q.new_subtotal_cents, 0
        taxed = sales_tax.compute(tax, q.due_today_cents)
        order.next_billing_on = q.next_billing_on
    else:
        promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
        if promo is not None:
            try:
                check_promotion(promo, promo.code, plan.code)
            except PromotionInvalid as exc:
                order.promotion_id = None
                s.add(order)
                raise SaleError(f"{exc} The code was removed: check the price again.") from exc
        price = price_with(promo, plan_subtotal(plan, len(order.vehicle_ids or [])))
        order.subtotal_cents, order.discount_cents = price.subtotal_cents, price.discount_cents
        taxed = sales_tax.compute(tax, price.total_cents)  # tax on the price after the discount
        order.next_billing_on = next_period(today, plan.interval)
    # "Join today": the wash's payment comes off the total (upsell.first_charge), never below zero.
    credit = credit_available(s, order) if order.kind == OrderKind.SALE else 0
    order.due_today_cents, order.credit_cents = first_charge(taxed.total_cents, credit)
    order.tax_cents = taxed.tax_cents


def promotion_plan(s: Session, order: SalesOrder) -> Plan:
    """The plan a promotion code is checked against: a new membership's (a plan change takes none)."""
    plan = s.get(Plan, order.plan_id) if order.plan_id is not None else None
    if plan is None:
        raise PromotionInvalid("Choose a plan first: promotion codes depend on the plan.", code="no_plan")
    if order.kind == OrderKind.PLAN_CHANGE:
        raise PromotionInvalid("Promotion codes apply to new memberships, not to a plan change.",
                               code="plan_change")
    return plan
