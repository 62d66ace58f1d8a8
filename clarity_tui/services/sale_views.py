"""What the sale screens read: plans, cards, vehicles and the order, as frozen views.

Split from sales.py (which keeps the sale's steps): the views hold no session and change nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from clarity_tui.services.plan_pricing import money, vehicle_limit, vehicle_terms
from db.models import OrderKind, OrderState, Plan, Vehicle


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
        return f"{money(self.price_cents)}/{'yr' if self.interval == 'year' else 'mo'}{self.tax_note}"


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


def _plan_option(p: Plan, relation: str = "", tax_note: str = "") -> PlanOption:
    return PlanOption(p.id, p.code, p.name, p.tier, p.price_cents, p.interval, tuple(p.benefits or ()),  # type: ignore[arg-type]
                      p.max_vehicles, p.extra_vehicle_price_cents, relation, vehicle_limit(p), vehicle_terms(p),
                      tax_note)


def _vehicle_desc(v: Vehicle) -> str:
    return " ".join(x for x in (v.colour, v.make, v.model) if x) or "Unknown vehicle"
