"""The lane's day (issue 18): the wash menu, the washes that go through the tunnel (a member's visit
or a paid single wash), the visits refused over a plan's limit, and the single-wash order's lines."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import UniqueConstraint, text
from sqlmodel import Field, SQLModel, col

from db.models.base import PartialIndex, json_field, utcnow


class WashItemKind(StrEnum):
    PACKAGE = "package"
    EXTRA = "extra"


class WashKind(StrEnum):
    MEMBER = "member"  # an entitled member's covered car: a visit, counted against the plan's limit
    RETAIL = "retail"  # a paid single wash


class DispatchStatus(StrEnum):
    WAITING = "waiting"  # paid or entitled, not yet sent (a lane not on auto: the attendant sends it)
    QUEUED = "queued"    # the controller was busy or faulted: the car waits, the retry key sends it again
    SENT = "sent"        # the controller took the wash and the gate opened


class VisitPeriod(StrEnum):
    DAY = "day"
    MONTH = "month"


class WashItem(SQLModel, table=True):
    """A package (a single wash: Basic, Deluxe, Ultimate) or an extra (tire shine, ceramic)."""

    __tablename__ = "wash_item"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=80)
    kind: str = Field(default=WashItemKind.PACKAGE, max_length=8)
    price_cents: int
    # What the tunnel controller is sent for it (a package number, or an extra's bit).
    tunnel_code: int = 0
    position: int = 0
    # No longer sold: kept so old orders and the wash history still name it.
    active: bool = True
    updated_at: dt.datetime = Field(default_factory=utcnow)


class PlanWashItem(SQLModel, table=True):
    """The membership plan includes this package or extra (a member is not charged for it)."""

    __tablename__ = "plan_wash_item"
    plan_id: int = Field(foreign_key="plan.id", primary_key=True)
    item_id: int = Field(foreign_key="wash_item.id", primary_key=True, index=True)


class OrderLine(SQLModel, table=True):
    """What a single-wash order (or a member's paid extras) is made of, priced when chosen."""

    __tablename__ = "order_line"
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id", index=True)
    item_id: int = Field(foreign_key="wash_item.id")
    kind: str = Field(max_length=8)
    code: str = Field(max_length=32)
    name: str = Field(max_length=80)
    amount_cents: int


class Wash(SQLModel, table=True):
    """A car that goes through the tunnel: one per session (a car moving from Pre-Gate to a lane is one
    visit; the unique session_id is what two terminals or two camera reads cannot both pass)."""

    __table_args__ = (UniqueConstraint("session_id", name="uq_wash_session"),)
    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="vehicle_session.id")
    kind: str = Field(max_length=8)
    plate: str = Field(max_length=16)
    vehicle_id: int | None = Field(default=None, foreign_key="vehicle.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    # The single-wash order that paid for it (retail), or a member's order for extras.
    order_id: int | None = Field(default=None, foreign_key="sales_order.id", index=True)
    site_id: int | None = Field(default=None, foreign_key="site.id")
    lane_id: int | None = Field(default=None, foreign_key="lane.id")
    package_code: str | None = Field(default=None, max_length=32)
    extras: list[str] | None = json_field()
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    # Sending it to the tunnel: not a money step (a failure leaves the wash paid and the car queued).
    dispatch_status: str = Field(default=DispatchStatus.WAITING, max_length=8, index=True)
    dispatch_attempts: int = 0
    dispatch_error: str | None = Field(default=None, max_length=400)
    dispatched_at: dt.datetime | None = None
    dispatched_by: str | None = Field(default=None, max_length=120)


class ReceiptStatus(StrEnum):
    WAITING = "waiting"  # the order is not paid yet, or the send is due
    SENDING = "sending"  # claimed by one process (until claimed_until): no second text
    SENT = "sent"
    UNSENT = "unsent"    # the provider refused it: the attendant can give it again


class Receipt(SQLModel, table=True):
    """A single wash's receipt: where it goes (a phone for a text, or an email address) and whether it went.
    One per order; the status is the send-once claim between processes."""

    order_id: int = Field(foreign_key="sales_order.id", primary_key=True)
    channel: str = Field(max_length=8)  # "sms" or "email"
    to: str = Field(max_length=254)
    status: str = Field(default=ReceiptStatus.WAITING, max_length=8, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=400)
    claimed_until: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class VisitRefusal(SQLModel, table=True):
    """A member's car read at a lane over its plan's limit (shown LIMIT; one per session)."""

    __tablename__ = "visit_refusal"
    __table_args__ = (UniqueConstraint("session_id", name="uq_visit_refusal_session"),)
    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="vehicle_session.id")
    vehicle_id: int = Field(foreign_key="vehicle.id", index=True)
    membership_id: int = Field(foreign_key="membership.id")
    lane_id: int | None = Field(default=None, foreign_key="lane.id")
    last_visit_at: dt.datetime | None = None
    at: dt.datetime = Field(default_factory=utcnow, index=True)


class CommissionEntry(StrEnum):
    EARNED = "earned"
    CLAWBACK = "clawback"


class CommissionKind(StrEnum):
    SALE = "sale"
    MIGRATION = "migration"
    UPGRADE = "upgrade"


class Commission(SQLModel, table=True):
    """An operator's commission on an order (earned), or its reversal (clawback, a negative amount).
    One of each per order at most: the constraint makes a replayed completion or refund harmless."""

    __table_args__ = (UniqueConstraint("order_id", "entry", name="uq_commission_order_entry"),)
    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="sales_order.id")
    operator_id: int | None = Field(default=None, foreign_key="operator.id", index=True)
    kind: str = Field(max_length=12)
    entry: str = Field(default=CommissionEntry.EARNED, max_length=10)
    amount_cents: int
    at: dt.datetime = Field(default_factory=utcnow, index=True)


class CommissionRate(SQLModel, table=True):
    """A manager's commission for a kind of order, for one plan or (plan_id None) every plan; settings
    give the amount where no row does."""

    __tablename__ = "commission_rate"
    __table_args__ = (UniqueConstraint("kind", "plan_id", name="uq_commission_rate_kind_plan"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=12)
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    amount_cents: int
    set_by: str | None = Field(default=None, max_length=120)
    updated_at: dt.datetime = Field(default_factory=utcnow)


# One every-plan rate per kind (NULLs are distinct in a UNIQUE constraint, so it needs its own index).
PartialIndex("ux_commission_rate_kind_every_plan", col(CommissionRate.kind), unique=True,
             where=text("plan_id IS NULL"))
