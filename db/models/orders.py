"""Sales orders and how far they got (terms, signature, activation), the outbox of gateway calls,
and the one-holder-per-vehicle claim."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Text, text
from sqlmodel import Field, SQLModel, col

from db.models.base import PartialIndex, json_field, utcnow
from db.states import OPEN_ORDER_STATES, OrderState, sql_in


class OrderKind(StrEnum):
    SALE = "sale"
    MIGRATION = "migration"
    PLAN_CHANGE = "plan_change"
    WASH = "wash"  # a single wash (a package and extras), or a member's paid extras (issue 18)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


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
    vehicle_ids: list[int] | None = json_field()
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
    # "Join today" (issue 18): the single wash just paid (`credit_order_id`) is taken off this
    # membership order's first charge, never below zero.
    # A plain column (migration 0012 adds it without rebuilding sales_order); upsell.py checks the link.
    credit_order_id: int | None = Field(default=None, index=True)
    credit_cents: int = 0
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
    strokes: list[Any] | None = json_field()
    svg: str = Field(sa_column=Column(Text, nullable=False))
    signer_name: str | None = Field(default=None, max_length=160)
    signed_at: dt.datetime = Field(default_factory=utcnow)
    lane_id: int | None = Field(default=None, foreign_key="lane.id")
    device: str | None = Field(default=None, max_length=120)


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


class Outbox(SQLModel, table=True):
    """A gateway call recorded before it is made; replayed until done."""

    id: int | None = Field(default=None, primary_key=True)
    order_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    operation: str = Field(max_length=48)
    payload: dict[str, Any] | None = json_field()
    idempotency_key: str = Field(max_length=96, unique=True)
    status: str = Field(default=OutboxStatus.PENDING, max_length=12, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict[str, Any] | None = json_field()
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


# One open order per session (migration 0004): two terminals selling to the same vehicle at the same
# moment cannot both open one (see services/orders/).
_OPEN_ORDER_SQL = sql_in("state", OPEN_ORDER_STATES)
PartialIndex("ux_sales_order_open_session", col(SalesOrder.session_id), unique=True, where=text(_OPEN_ORDER_SQL))
