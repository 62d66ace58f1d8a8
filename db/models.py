"""The site's whole data model as SQLModel tables.

Conventions:
- money is integer cents; times are timezone-aware UTC (`utcnow()`), dates are site-local dates;
- `version` columns back optimistic concurrency checks between terminals;
- card data is never stored: only gateway tokens, brand, last 4 and expiry.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LaneKind(StrEnum):
    PRE_GATE = "pre_gate"
    LANE = "lane"
    PAY_STATION = "pay_station"


class SessionStatus(StrEnum):
    WAITING = "waiting"
    IN_SERVICE = "in_service"
    DONE = "done"
    ABANDONED = "abandoned"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class MembershipSource(StrEnum):
    SALE = "sale"
    MIGRATION = "migration"


class OrderKind(StrEnum):
    SALE = "sale"
    MIGRATION = "migration"
    PLAN_CHANGE = "plan_change"


class OrderState(StrEnum):
    DRAFT = "draft"
    CHECKOUT = "checkout"
    TERMS = "terms"
    SIGNED = "signed"
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    PENDING_SYNC = "pending_sync"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PromotionKind(StrEnum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    REFERRAL = "referral"


class Role(StrEnum):
    ATTENDANT = "attendant"
    MANAGER = "manager"
    TECHNICIAN = "technician"
    SUPPORT = "support"


class RelationshipKind(StrEnum):
    HOUSEHOLD = "household"
    BUSINESS = "business"
    CONTACT = "contact"
    SOLD_FOR = "sold_for"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def _json(**kw: Any) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True), **kw)


# --- site and lanes ---------------------------------------------------------


class Site(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    phone_region: str = Field(default="US", max_length=2)
    created_at: dt.datetime = Field(default_factory=utcnow)


class Lane(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    name: str = Field(max_length=60)
    kind: str = Field(default=LaneKind.LANE, max_length=16)
    position: int = 0
    # Maps a plate camera (webhook camera_id) to this lane.
    camera_id: str | None = Field(default=None, max_length=64, unique=True)
    active: bool = True


class VehicleSession(SQLModel, table=True):
    """A vehicle seen by the plate camera: one bubble on the lanes board."""

    __tablename__ = "vehicle_session"
    __table_args__ = (Index("ix_vehicle_session_status_lane", "status", "lane_id"),)
    id: int | None = Field(default=None, primary_key=True)
    lane_id: int = Field(foreign_key="lane.id", index=True)
    plate: str = Field(max_length=16)
    plate_region: str = Field(default="", max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)
    make: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=40)
    colour: str | None = Field(default=None, max_length=24)
    confidence: float = 1.0
    image_ref: str | None = Field(default=None, max_length=255)
    arrived_at: dt.datetime = Field(default_factory=utcnow, index=True)
    status: str = Field(default=SessionStatus.WAITING, max_length=16)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    vehicle_id: int | None = Field(default=None, foreign_key="vehicle.id")
    legacy_member_id: int | None = Field(default=None, foreign_key="legacy_member.id")
    # Which terminal/operator has the session open (shown to other terminals).
    held_by: str | None = Field(default=None, max_length=120)
    held_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    source: str = Field(default="camera", max_length=24)
    version: int = 1


# One open session per car (migration 0006): a read in another lane moves the open session
# instead of opening a second one, and two cameras posting at once cannot both insert
# (services/sessions.py catches the clash and moves the winner's session).
OPEN_SESSION_STATES = (SessionStatus.WAITING.value, SessionStatus.IN_SERVICE.value)
OPEN_PLATE_INDEX = "ux_vehicle_session_open_plate"
_open_session = VehicleSession.__table__.c.status.in_(OPEN_SESSION_STATES)  # type: ignore[attr-defined]
Index(OPEN_PLATE_INDEX, VehicleSession.plate_normalized, unique=True, sqlite_where=_open_session, postgresql_where=_open_session)


# --- customers ----------------------------------------------------------------


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_number: str = Field(max_length=20, unique=True)
    first_name: str = Field(default="", max_length=80)
    last_name: str = Field(default="", max_length=80)
    phone_e164: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    address_line1: str | None = Field(default=None, max_length=120)
    address_line2: str | None = Field(default=None, max_length=120)
    city: str | None = Field(default=None, max_length=80)
    region: str | None = Field(default=None, max_length=40)
    postal_code: str | None = Field(default=None, max_length=16)
    country: str | None = Field(default=None, max_length=2)
    question_answers: dict[str, Any] | None = _json()
    gateway_customer_id: str | None = Field(default=None, max_length=64)
    # Search keys, maintained by the customers service: casefolded, accent-free
    # names, lower-case email, and reversed phone digits so "last N digits" is
    # an index prefix scan.
    search_last: str = Field(default="", max_length=80, index=True)
    search_first: str = Field(default="", max_length=80, index=True)
    email_lower: str | None = Field(default=None, max_length=254, index=True)
    phone_rev: str | None = Field(default=None, max_length=20, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    version: int = 1


class Vehicle(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("plate_region", "plate_normalized"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    plate: str = Field(max_length=16)
    plate_region: str = Field(default="", max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)
    make: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=40)
    colour: str | None = Field(default=None, max_length=24)
    year: int | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class QuestionPrompt(SQLModel, table=True):
    """A configurable customer question ("How did you hear about us?")."""

    __tablename__ = "question_prompt"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=40, unique=True)
    text: str = Field(max_length=200)
    choices: list[str] | None = _json()
    position: int = 0
    active: bool = True


# --- plans, memberships, payment methods -------------------------------------


class Plan(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=80)
    tier: int = 1
    price_cents: int
    interval: str = Field(default="month", max_length=8)
    benefits: list[str] | None = _json()
    active: bool = True
    # Family plans: the price covers `max_vehicles`; each extra vehicle costs extra, up to
    # `vehicle_limit` vehicles in all (None: max_vehicles, or DEFAULT_VEHICLE_LIMIT when extras
    # cost money; see services/plan_pricing.py). Never unlimited.
    max_vehicles: int = 1
    extra_vehicle_price_cents: int = 0
    vehicle_limit: int | None = None
    gateway_product_id: str | None = Field(default=None, max_length=64)
    gateway_price_id: str | None = Field(default=None, max_length=64)


class Membership(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    status: str = Field(default=MembershipStatus.ACTIVE, max_length=16)
    source: str = Field(default=MembershipSource.SALE, max_length=16)
    started_on: dt.date
    expires_on: dt.date | None = None
    next_billing_on: dt.date | None = None
    legacy_member_id: int | None = Field(default=None, foreign_key="legacy_member.id")
    legacy_id: str | None = Field(default=None, max_length=64)
    gateway_subscription_id: str | None = Field(default=None, max_length=64)
    cancel_at_period_end: bool = False
    pending_sync: bool = False
    # A downgrade waits for the next billing date: the plan it changes to, and when.
    scheduled_plan_id: int | None = Field(default=None, foreign_key="plan.id")
    scheduled_plan_on: dt.date | None = None
    # The billing engine's view (issue 13): the date the member has paid through (the current period's
    # end; the unpaid period's start while past due), the gateway's own status, and a pause's end.
    paid_through: dt.date | None = None
    gateway_status: str | None = Field(default=None, max_length=24)
    resumes_on: dt.date | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    version: int = 1


class MembershipVehicle(SQLModel, table=True):
    __tablename__ = "membership_vehicle"
    membership_id: int = Field(foreign_key="membership.id", primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id", primary_key=True, index=True)


class PaymentMethod(SQLModel, table=True):
    """A saved card, by gateway token only. Never a card number or CVC."""

    __tablename__ = "payment_method"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    gateway: str = Field(default="simulated", max_length=16)
    gateway_token: str = Field(max_length=64)
    brand: str = Field(max_length=20)
    last4: str = Field(max_length=4)
    exp_month: int
    exp_year: int
    is_default: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow)
    detached_at: dt.datetime | None = None


class Promotion(SQLModel, table=True):
    """A promotion or referral code, mapped to a gateway coupon."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    kind: str = Field(default=PromotionKind.PERCENT_OFF, max_length=16)
    # Percent (0-100) for percent_off; cents for amount_off and referral.
    value: int
    description: str | None = Field(default=None, max_length=200)
    referring_customer_id: int | None = Field(default=None, foreign_key="customer.id")
    # None: valid for every plan; otherwise a list of plan codes.
    plan_codes: list[str] | None = _json()
    max_redemptions: int | None = None
    times_redeemed: int = 0
    expires_at: dt.datetime | None = None
    active: bool = True
    gateway_coupon_id: str | None = Field(default=None, max_length=64)


# --- orders, terms, signatures --------------------------------------------


class SalesOrder(SQLModel, table=True):
    """A sale, migration or plan change, as a state machine (see OrderState)."""

    __tablename__ = "sales_order"
    id: int | None = Field(default=None, primary_key=True)
    # Stable key for every gateway call this order makes.
    idempotency_key: str = Field(max_length=64, unique=True)
    kind: str = Field(default=OrderKind.SALE, max_length=16)
    state: str = Field(default=OrderState.DRAFT, max_length=20, index=True)
    session_id: int | None = Field(default=None, foreign_key="vehicle_session.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    promotion_id: int | None = Field(default=None, foreign_key="promotion.id")
    payment_method_id: int | None = Field(default=None, foreign_key="payment_method.id")
    membership_id: int | None = Field(default=None, foreign_key="membership.id")
    legacy_member_id: int | None = Field(default=None, foreign_key="legacy_member.id")
    vehicle_ids: list[int] | None = _json()
    subtotal_cents: int = 0
    discount_cents: int = 0
    due_today_cents: int = 0
    next_billing_on: dt.date | None = None
    operator_id: int | None = Field(default=None, foreign_key="operator.id")
    terminal: str | None = Field(default=None, max_length=64)
    lane_id: int | None = Field(default=None, foreign_key="lane.id")
    gateway_payment_id: str | None = Field(default=None, max_length=64)
    gateway_subscription_id: str | None = Field(default=None, max_length=64)
    # The first payment is taken on the card reader (card present) instead of a saved card.
    card_present: bool = False
    # Money given back so far (refunds done at the gateway).
    refunded_cents: int = 0
    # A plan change's plan before the change (the membership's plan moves on once it is done).
    from_plan_id: int | None = Field(default=None, foreign_key="plan.id")
    # Sales tax in `due_today_cents` (issue 13): added on top (exclusive) or included (inclusive).
    tax_cents: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    completed_at: dt.datetime | None = None
    version: int = 1


class TermsVersion(SQLModel, table=True):
    __tablename__ = "terms_version"
    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(max_length=40)
    text: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64, unique=True)
    effective_at: dt.datetime = Field(default_factory=utcnow)


class Signature(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    order_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    terms_version_id: int = Field(foreign_key="terms_version.id")
    terms_sha256: str = Field(max_length=64)
    # [[[x, y, t_ms], ...], ...] normalised to 0..1
    strokes: list[Any] | None = _json()
    svg: str = Field(sa_column=Column(Text, nullable=False))
    signer_name: str | None = Field(default=None, max_length=160)
    signed_at: dt.datetime = Field(default_factory=utcnow)
    lane_id: int | None = Field(default=None, foreign_key="lane.id")
    device: str | None = Field(default=None, max_length=120)


# --- legacy POS members ----------------------------------------------------


class LegacyMember(SQLModel, table=True):
    __tablename__ = "legacy_member"
    __table_args__ = (UniqueConstraint("source_system", "legacy_id"),)
    id: int | None = Field(default=None, primary_key=True)
    source_system: str = Field(max_length=40)
    legacy_id: str = Field(max_length=64)
    raw: dict[str, Any] | None = _json()
    first_name: str = Field(default="", max_length=80)
    last_name: str = Field(default="", max_length=80)
    phone_e164: str | None = Field(default=None, max_length=20, index=True)
    email: str | None = Field(default=None, max_length=254)
    vehicle_desc: str | None = Field(default=None, max_length=120)
    plan_name: str | None = Field(default=None, max_length=80)
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    status: str | None = Field(default=None, max_length=24)
    next_bill_on: dt.date | None = None
    joined_on: dt.date | None = None
    imported_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    migrated_at: dt.datetime | None = None
    migrated_by: str | None = Field(default=None, max_length=120)
    migrated_terminal: str | None = Field(default=None, max_length=64)
    migrated_customer_id: int | None = Field(default=None, foreign_key="customer.id")


class LegacyMemberPlate(SQLModel, table=True):
    __tablename__ = "legacy_member_plate"
    id: int | None = Field(default=None, primary_key=True)
    legacy_member_id: int = Field(foreign_key="legacy_member.id", index=True)
    plate_raw: str = Field(max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)


# --- customer record tabs ---------------------------------------------------


class CustomerRelationship(SQLModel, table=True):
    __tablename__ = "customer_relationship"
    __table_args__ = (UniqueConstraint("customer_id", "related_customer_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    related_customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str = Field(default=RelationshipKind.HOUSEHOLD, max_length=16)
    created_at: dt.datetime = Field(default_factory=utcnow)


class WebLogin(SQLModel, table=True):
    __tablename__ = "web_login"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", unique=True)
    username: str = Field(max_length=120, unique=True)
    # scrypt hash, never the password.
    password_hash: str | None = Field(default=None, max_length=255)
    must_change_password: bool = False
    reset_sent_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class Touchpoint(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    title: str = Field(max_length=200)
    due_on: dt.date | None = None
    assignee_operator_id: int | None = Field(default=None, foreign_key="operator.id")
    done: bool = False
    done_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class AccountBenefit(SQLModel, table=True):
    __tablename__ = "account_benefit"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    # The membership an extra benefit was added to (services/member_benefits.py); None: an account benefit.
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    kind: str = Field(max_length=40)
    description: str | None = Field(default=None, max_length=200)
    quantity: int = 1
    remaining: int = 1
    expires_on: dt.date | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    operator_notice: bool = False
    author_operator_id: int | None = Field(default=None, foreign_key="operator.id")
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


# --- operators, audit, outbox ---------------------------------------------


class Operator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    role: str = Field(default=Role.ATTENDANT, max_length=16)
    pin_hash: str = Field(max_length=255)
    active: bool = True
    failed_attempts: int = 0
    locked_until: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class OperatorShift(SQLModel, table=True):
    """Who is signed in where: one row per sign-in at a terminal."""

    __tablename__ = "operator_shift"
    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    terminal: str = Field(max_length=64)
    signed_in_at: dt.datetime = Field(default_factory=utcnow)
    last_activity_at: dt.datetime = Field(default_factory=utcnow)
    signed_out_at: dt.datetime | None = None
    signout_reason: str | None = Field(default=None, max_length=24)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=120)
    operator_id: int | None = Field(default=None, foreign_key="operator.id")
    terminal: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64, index=True)
    entity: str = Field(max_length=40)
    entity_id: str | None = Field(default=None, max_length=64)
    before: dict[str, Any] | None = _json()
    after: dict[str, Any] | None = _json()


class Outbox(SQLModel, table=True):
    """A gateway call recorded before it is made; replayed until done."""

    id: int | None = Field(default=None, primary_key=True)
    order_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    operation: str = Field(max_length=48)
    payload: dict[str, Any] | None = _json()
    idempotency_key: str = Field(max_length=96, unique=True)
    status: str = Field(default=OutboxStatus.PENDING, max_length=12, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict[str, Any] | None = _json()
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    done_at: dt.datetime | None = None
    # A replayer's lease: no other process sends this row until `claimed_until` has passed.
    claimed_by: str | None = Field(default=None, max_length=120)
    claimed_until: dt.datetime | None = None
    # Backoff: a row that failed transiently is not retried before this time.
    next_attempt_at: dt.datetime | None = None
    # The gateway cached a 5xx under the current key: look the object up, then use a new key.
    key_poisoned: bool = False


class VehicleClaim(SQLModel, table=True):
    """One holder per vehicle: an order that reached its charge step, or the current membership
    that order made. The primary key is the constraint two terminals cannot both pass."""

    __tablename__ = "vehicle_claim"
    vehicle_id: int = Field(foreign_key="vehicle.id", primary_key=True)
    order_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    terminal: str | None = Field(default=None, max_length=64)
    holder: str = Field(default="", max_length=160)
    created_at: dt.datetime = Field(default_factory=utcnow)


metadata = SQLModel.metadata


# --- payments (issue 4): the simulated gateway's own store -------------------
# The simulated gateway keeps its customers, cards, intents, subscriptions,
# refunds, products/plans and coupons here, so simulator mode behaves like a
# real gateway across restarts, with the same idempotency semantics.


class SimGatewayObject(SQLModel, table=True):
    """One object of the simulated gateway (cus_sim_..., pm_sim_..., sub_sim_...)."""

    __tablename__ = "sim_gateway_object"
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32, index=True)
    customer: str | None = Field(default=None, max_length=64, index=True)
    data: dict[str, Any] | None = _json()
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class SimGatewayRequest(SQLModel, table=True):
    """An idempotency record: the same key returns the same stored response."""

    __tablename__ = "sim_gateway_request"
    idempotency_key: str = Field(primary_key=True, max_length=255)
    operation: str = Field(max_length=48)
    # sha256 of the request parameters: a reused key with other parameters is refused.
    request_hash: str = Field(max_length=64)
    response: dict[str, Any] | None = _json()
    created_at: dt.datetime = Field(default_factory=utcnow)


# --- customer record (issue 7): web-login password resets ---------------------


class PasswordReset(SQLModel, table=True):
    """A password-reset link sent by email: only the token's sha256 is kept."""

    __tablename__ = "password_reset"
    id: int | None = Field(default=None, primary_key=True)
    web_login_id: int = Field(foreign_key="web_login.id", index=True)
    token_sha256: str = Field(max_length=64, unique=True)
    sent_to: str = Field(max_length=254)
    expires_at: dt.datetime
    used_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


# Customer search (issue 7, migration 0003): prefix ranges on the folded keys. On
# PostgreSQL these and the single-column search indexes are built COLLATE "C" (byte
# order, what the range queries use); see services/search.py.
Index("ix_customer_last_first", Customer.search_last, Customer.search_first)
Index("ix_customer_first_last", Customer.search_first, Customer.search_last)
Index("ix_customer_number_prefix", Customer.customer_number)


# --- membership sale (issue 5, migration 0004) --------------------------------------

from sqlalchemy import text  # noqa: E402 - kept with the section that uses it


# Orders still being worked on (nothing decided yet, or money moving). A partial unique
# index lets only one of them exist per session: two terminals selling to the same
# vehicle at the same moment cannot both open one (see services/sales.py).
OPEN_ORDER_STATES = ("draft", "checkout", "terms", "signed", "payment_pending", "paid")
_OPEN_ORDER_SQL = "state IN ('draft', 'checkout', 'terms', 'signed', 'payment_pending', 'paid')"


class OrderProgress(SQLModel, table=True):
    """How far a sale or migration got beyond its order row: terms, signature, activation.

    Activation (vehicles on the membership, the session turned member) is recorded
    here so a restart can finish an order that was paid but not yet activated.
    """

    __tablename__ = "order_progress"
    order_id: int = Field(foreign_key="sales_order.id", primary_key=True)
    terms_version_id: int | None = Field(default=None, foreign_key="terms_version.id")
    # "read_to_end" (the customer scrolled to the end) or "presented" (the attendant confirmed).
    terms_accepted_how: str | None = Field(default=None, max_length=16)
    terms_accepted_at: dt.datetime | None = None
    signature_id: int | None = Field(default=None, foreign_key="signature.id")
    activated_at: dt.datetime | None = None
    updated_at: dt.datetime = Field(default_factory=utcnow)


Index(
    "ux_sales_order_open_session",
    SalesOrder.session_id,
    unique=True,
    sqlite_where=text(_OPEN_ORDER_SQL),
    postgresql_where=text(_OPEN_ORDER_SQL),
)


# --- legacy migration (issue 6, migration 0005) ---------------------------------------

from sqlalchemy import func  # noqa: E402 - kept with the section that uses it

# Plate-camera confusions collapsed in SQL, exactly as services.plates.plate_shape does in
# Python: an expression index on it finds look-alike legacy plates by equality (O/0, I/1,
# B/8, S/5, Z/2, ...) and, with one-character variants of the read, a missing or extra
# character, without scanning the table. Bulk loads need no extra column kept in step.
PLATE_SHAPE_MAP = (("O", "0"), ("Q", "0"), ("D", "0"), ("I", "1"), ("L", "1"), ("B", "8"), ("S", "5"),
                   ("Z", "2"), ("G", "6"))


def plate_shape_sql(column: Any) -> Any:
    expr = column
    for old, new in PLATE_SHAPE_MAP:
        expr = func.replace(expr, old, new)
    return expr


Index("ix_legacy_member_plate_shape", plate_shape_sql(LegacyMemberPlate.plate_normalized))
# The same shape on the site's own vehicles (migration 0010): a misread of a current customer's
# plate is found the same way (services/plate_lookalikes.py).
Index("ix_vehicle_plate_shape", plate_shape_sql(Vehicle.plate_normalized))


# The membership lifecycle's tables live in their own module; imported here so every user of
# `db.models` (create_all, Alembic, the tests) sees one metadata.
from db.models_billing import BillingSync, DunningMessage, GatewayEvent, MembershipPayment  # noqa: E402,F401
