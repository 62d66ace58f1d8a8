"""What the sale and migration screens read: plans, cards, vehicles and the order, as frozen views.

The views hold no session and change nothing; `order_view` builds one from the rows, pricing a draft
live (a plan change from its quote) until review fixes the amounts on the order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.services import sales_tax
from clarity_tui.services.billing import next_period
from clarity_tui.services.identity import display_name
from clarity_tui.services.membership_rules import CURRENT_STATUSES, current_membership
from clarity_tui.services.orders.guards import EDITABLE
from clarity_tui.services.plan_changes import order_quote
from clarity_tui.services.plan_pricing import itemised, money, period_suffix, plan_relation, vehicle_limit, vehicle_terms
from clarity_tui.services.plates import normalize_plate
from clarity_tui.services.promotions import plan_subtotal, price_with
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.upsell import CREDIT_LABEL, credit_available, excess_note, first_charge
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    MembershipVehicle,
    OrderKind,
    OrderProgress,
    OrderState,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    Vehicle,
    VehicleSession,
)


@dataclass(frozen=True)
class PlanOption:
    id: int
    code: str
    name: str
    tier: int
    price_cents: int
    interval: str
    benefits: tuple[str, ...]
    max_vehicles: int
    extra_vehicle_price_cents: int
    # "current", "upgrade", "downgrade", or "" when the customer has no current membership.
    relation: str = ""
    vehicle_limit: int = 1  # the most vehicles the plan takes
    vehicle_terms: tuple[str, ...] = ()  # "3 vehicles included", "Extra vehicle $15.00/mo", "Up to 5 vehicles"
    # The site's sales tax on the price: " + tax", " incl. tax", or "" (sales_tax.price_note).
    tax_note: str = ""

    @property
    def price_label(self) -> str:
        return f"{money(self.price_cents)}{period_suffix(self)}{self.tax_note}"


@dataclass(frozen=True)
class CardOption:
    id: int
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.brand.title()} •••• {self.last4}, exp {self.exp_month:02d}/{self.exp_year % 100:02d}"


@dataclass(frozen=True)
class VehicleOption:
    id: int
    plate: str
    description: str
    # The membership (plan name and holder) the vehicle is already on, if any.
    on_membership: str | None = None

    @property
    def label(self) -> str:
        return f"{self.plate}  {self.description}".strip()


@dataclass(frozen=True)
class OrderView:
    id: int
    kind: str
    state: str
    version: int
    session_id: int | None
    terminal: str | None
    plate: str | None
    session_vehicle: str
    customer_id: int | None
    customer_name: str | None
    customer_number: str | None
    phone: str | None
    email: str | None
    plan: PlanOption | None
    current_plan: PlanOption | None
    current_membership_id: int | None
    vehicles: tuple[VehicleOption, ...]
    cards: tuple[CardOption, ...]
    payment_method_id: int | None
    promotion_code: str | None
    promotion_description: str | None
    subtotal_cents: int
    discount_cents: int
    due_today_cents: int
    next_billing_on: dt.date | None
    last_error: str | None
    membership_id: int | None
    terms_accepted_how: str | None
    signature_id: int | None
    activated: bool
    pending_sync: bool = False
    legacy_member_id: int | None = None
    # The first payment is taken on the card reader after Agree (no card saved beforehand).
    card_present: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # The price, itemised (plan_pricing.itemised): "$59.99 + 2 extra vehicles × $15.00 = $89.99/mo".
    price_text: str = ""
    # A plan change takes effect today (upgrade) or on this date (downgrade); None for other orders.
    change_effective_on: dt.date | None = None
    # Why some vehicles are not on the order (a migrated member with more plates than the plan takes).
    vehicle_note: str | None = None
    # Sales tax (services/sales_tax.py): the part of `due_today_cents` that is tax (added on top, or
    # included in the price), its words ("Sales tax 8.25%", "incl. Sales tax 8.25%"), and what follows
    # a price shown before tax (" + tax", " incl. tax"). All empty without tax.
    tax_cents: int = 0
    tax_label: str = ""
    tax_note: str = ""
    # A migration whose first billing date a manager chose (not the legacy system's date).
    billing_date_set_by_manager: bool = False
    # "Join today" (services/upsell.py): the wash order credited, the part of its payment taken off
    # `due_today_cents`, and the sentence for a wash that paid more than the first charge.
    credit_order_id: int | None = None
    credit_cents: int = 0
    credit_note: str | None = None

    @property
    def credit_line(self) -> str:
        """The one line checkout, the signature and the receipt show: "Today's wash credit  -$15.00"."""
        return f"{CREDIT_LABEL}  -{money(self.credit_cents)}" if self.credit_order_id else ""

    @property
    def card(self) -> CardOption | None:
        return next((c for c in self.cards if c.id == self.payment_method_id), None)

    @property
    def is_plan_change(self) -> bool:
        return self.kind == OrderKind.PLAN_CHANGE

    @property
    def finished(self) -> bool:
        return self.activated or self.state in (OrderState.CANCELLED, OrderState.FAILED)


@dataclass(frozen=True)
class PayResult:
    """How paying ended: completed (maybe pending sync), or declined with the gateway's message."""

    state: str
    message: str | None
    activated: bool

    @property
    def ok(self) -> bool:
        return self.activated

    @property
    def pending_sync(self) -> bool:
        return self.state == OrderState.PENDING_SYNC


def plan_option(p: Plan, relation: str = "", tax_note: str = "") -> PlanOption:
    assert p.id is not None, "a plan read from the database"
    return PlanOption(p.id, p.code, p.name, p.tier, p.price_cents, p.interval, tuple(p.benefits or ()),
                      p.max_vehicles, p.extra_vehicle_price_cents, relation, vehicle_limit(p), vehicle_terms(p),
                      tax_note)


def vehicle_desc(v: Vehicle | VehicleSession) -> str:
    return " ".join(x for x in (v.colour, v.make, v.model) if x) or "Unknown vehicle"


def vehicle_option(s: Session, v: Vehicle, order: SalesOrder) -> VehicleOption:
    """The vehicle, with the current membership it is already on (other than the one a plan change changes)."""
    assert v.id is not None, "a vehicle read from the database"
    rows = s.exec(select(Membership, Plan, Customer)
                  .join(MembershipVehicle, col(MembershipVehicle.membership_id) == Membership.id)
                  .join(Plan, col(Plan.id) == Membership.plan_id)
                  .join(Customer, col(Customer.id) == Membership.customer_id)
                  .where(MembershipVehicle.vehicle_id == v.id, col(Membership.status).in_(CURRENT_STATUSES))).all()
    taken = None
    for m, plan, c in rows:
        if m.id == order.membership_id and order.kind == OrderKind.PLAN_CHANGE:
            continue
        taken = f"{display_name(c.first_name, c.last_name)}'s {plan.name} membership"
    return VehicleOption(v.id, v.plate, vehicle_desc(v), taken)


@dataclass(frozen=True)
class _Amounts:
    subtotal_cents: int
    discount_cents: int
    due_today_cents: int
    tax_cents: int
    next_billing_on: dt.date | None
    effective_on: dt.date | None
    credit_cents: int = 0
    credit_note: str | None = None


def _amounts(s: Session, order: SalesOrder, plan: Plan | None, current: Membership | None, relation: str,
             vehicles: int, today: dt.date, tax: TaxSettings | None) -> _Amounts:
    """The order's amounts: as review fixed them, or live while the order is still put together."""
    subtotal, discount, due, tax_cents = order.subtotal_cents, order.discount_cents, order.due_today_cents, order.tax_cents
    next_billing, effective = order.next_billing_on, None
    if order.kind == OrderKind.PLAN_CHANGE and plan is not None and current is not None:
        q = order_quote(s, order, today)
        if order.state in EDITABLE:  # live while the order is put together; review fixes it
            taxed = sales_tax.compute(tax, q.due_today_cents)
            subtotal, discount, next_billing = q.new_subtotal_cents, 0, q.next_billing_on
            due, tax_cents = taxed.total_cents, taxed.tax_cents
        effective = next_billing if relation == "downgrade" else today
    elif order.state in EDITABLE and plan is not None:
        promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
        price = price_with(promo, plan_subtotal(plan, max(1, vehicles)))
        taxed = sales_tax.compute(tax, price.total_cents)
        subtotal, discount = price.subtotal_cents, price.discount_cents
        due, tax_cents = taxed.total_cents, taxed.tax_cents
    credit, note = order.credit_cents, None
    if order.credit_order_id is not None and order.kind == OrderKind.SALE and plan is not None:
        available = credit_available(s, order)
        if order.state in EDITABLE:  # live, as review will fix it (draft.fix_amounts)
            due, credit = first_charge(due, available)
        note = excess_note(available, credit, plan.name) if due == 0 else None
    if next_billing is None and plan is not None:
        next_billing = next_period(today, plan.interval)
    return _Amounts(subtotal, discount, due, tax_cents, next_billing, effective, credit, note)


def order_view(s: Session, order: SalesOrder, today: Callable[[], dt.date], tax: TaxSettings | None) -> OrderView:
    """The order as the screens show it."""
    assert order.id is not None, "an order read from the database"
    customer = s.get(Customer, order.customer_id) if order.customer_id else None
    plan = s.get(Plan, order.plan_id) if order.plan_id else None
    current = current_membership(s, order.customer_id)
    if order.kind == OrderKind.PLAN_CHANGE and order.membership_id:
        current = s.get(Membership, order.membership_id)
    elif current is not None and current.id == order.membership_id:
        current = None  # the membership this sale created is not "the current plan" to compare with
    # A plan change names the plan it changed from, also once the membership has moved on.
    cur_plan = s.get(Plan, order.from_plan_id or current.plan_id) if current else None
    relation = plan_relation(cur_plan, plan) if plan is not None else ""
    vehicles = []
    for vid in order.vehicle_ids or []:
        v = s.get(Vehicle, vid)
        if v is not None:
            vehicles.append(VehicleOption(vid, v.plate, vehicle_desc(v)))
    cards = []
    if customer is not None:
        for pm in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id,
                                                     col(PaymentMethod.detached_at).is_(None))
                         .order_by(col(PaymentMethod.is_default).desc(), col(PaymentMethod.id))):
            assert pm.id is not None
            cards.append(CardOption(pm.id, pm.brand, pm.last4, pm.exp_month, pm.exp_year, pm.is_default))
    promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
    vs = s.get(VehicleSession, order.session_id) if order.session_id else None
    progress = s.get(OrderProgress, order.id)
    membership = s.get(Membership, order.membership_id) if order.membership_id else None
    amounts = _amounts(s, order, plan, current, relation, len(vehicles), today(), tax)
    return OrderView(
        id=order.id, kind=order.kind, state=order.state, version=order.version,
        session_id=order.session_id, terminal=order.terminal,
        plate=vs.plate if vs else None,
        session_vehicle=vehicle_desc(vs) if vs else "Unknown vehicle",
        customer_id=customer.id if customer else None,
        customer_name=display_name(customer.first_name, customer.last_name) if customer else None,
        customer_number=customer.customer_number if customer else None,
        phone=customer.phone_e164 if customer else None, email=customer.email if customer else None,
        plan=plan_option(plan, relation) if plan else None,
        current_plan=plan_option(cur_plan, "current") if cur_plan else None,
        current_membership_id=current.id if current else None,
        vehicles=tuple(vehicles), cards=tuple(cards), payment_method_id=order.payment_method_id,
        promotion_code=promo.code if promo else None,
        promotion_description=promo.description if promo else None,
        subtotal_cents=amounts.subtotal_cents, discount_cents=amounts.discount_cents,
        due_today_cents=amounts.due_today_cents, next_billing_on=amounts.next_billing_on,
        last_error=order.last_error, membership_id=order.membership_id,
        terms_accepted_how=progress.terms_accepted_how if progress else None,
        signature_id=progress.signature_id if progress else None,
        activated=bool(progress and progress.activated_at),
        pending_sync=bool(membership and membership.pending_sync and order.state == OrderState.PENDING_SYNC),
        legacy_member_id=order.legacy_member_id, card_present=bool(order.card_present),
        price_text=itemised(plan, max(1, len(vehicles))) + sales_tax.price_note(tax) if plan else "",
        change_effective_on=amounts.effective_on,
        vehicle_note=_left_off(s, order, plan, vehicles) if plan else None,
        tax_cents=amounts.tax_cents, tax_label=sales_tax.label(tax) or ("Tax" if amounts.tax_cents else ""),
        tax_note=sales_tax.price_note(tax),
        billing_date_set_by_manager=_billing_date_overridden(s, order),
        credit_order_id=order.credit_order_id, credit_cents=amounts.credit_cents, credit_note=amounts.credit_note,
    )


def _billing_date_overridden(s: Session, order: SalesOrder) -> bool:
    """A migration billed from a date a manager chose, not the legacy system's next bill date."""
    if order.kind != OrderKind.MIGRATION or not order.legacy_member_id or order.next_billing_on is None:
        return False
    lm = s.get(LegacyMember, order.legacy_member_id)
    return lm is not None and order.next_billing_on != lm.next_bill_on


def _left_off(s: Session, order: SalesOrder, plan: Plan, vehicles: list[VehicleOption]) -> str | None:
    """A migrated member's legacy plates beyond what the plan takes (the order keeps the first ones)."""
    if order.kind != OrderKind.MIGRATION or not order.legacy_member_id:
        return None
    on = {normalize_plate(v.plate) for v in vehicles}
    left = [p.plate_raw for p in s.exec(select(LegacyMemberPlate).where(
        LegacyMemberPlate.legacy_member_id == order.legacy_member_id)) if p.plate_normalized not in on]
    if not left or len(vehicles) < vehicle_limit(plan):
        return None
    return (f"{plan.name} takes at most {vehicle_limit(plan)} vehicle(s): {', '.join(left)} from the old "
            "system is not covered.")
