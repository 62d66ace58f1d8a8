"""The membership lifecycle's tables (issue 13, migration 0009): what the billing engine told us.

- `gateway_event`: every gateway event seen, keyed by its id, so a redelivery is a no-op.
- `billing_sync`: the events cursor, when the sync last succeeded, and the SQLite leader lease.
- `membership_payment`: renewals, failed renewals, recoveries, refunds and disputes as local rows.
- `dunning_message`: one past-due text per invoice and schedule step (and per day), across terminals.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import utcnow


class PaymentKind:
    RENEWAL = "renewal"  # a renewal invoice paid at its first attempt
    RENEWAL_FAILED = "renewal_failed"  # one failed attempt of an invoice
    RECOVERED = "recovered"  # an invoice paid after it had failed
    REFUND = "refund"
    DISPUTE = "dispute"


class GatewayEvent(SQLModel, table=True):
    __tablename__ = "gateway_event"
    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=64, index=True)
    object_id: str | None = Field(default=None, max_length=255)
    # When the gateway made the event (its `created`), and when we took it in.
    created_at: dt.datetime | None = None
    received_at: dt.datetime = Field(default_factory=utcnow, index=True)
    source: str = Field(default="sync", max_length=12)  # sync | webhook
    # processed | unknown_object (recorded and skipped) | ignored (a type we do not handle) | failed
    outcome: str = Field(default="processed", max_length=16)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class BillingSync(SQLModel, table=True):
    __tablename__ = "billing_sync"
    name: str = Field(primary_key=True, max_length=32)
    cursor: str | None = Field(default=None, max_length=255)
    last_event_id: str | None = Field(default=None, max_length=255)
    last_event_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The leader's lease (SQLite; PostgreSQL uses an advisory lock and records the holder here too).
    leader: str | None = Field(default=None, max_length=120)
    leader_until: dt.datetime | None = None


class MembershipPayment(SQLModel, table=True):
    __tablename__ = "membership_payment"
    __table_args__ = (UniqueConstraint("kind", "gateway_object_id", name="ux_membership_payment_kind_object"),)
    id: int | None = Field(default=None, primary_key=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    kind: str = Field(max_length=20)
    # What makes the row unique for its kind: the invoice (renewal, recovered), the invoice and its
    # attempt (renewal_failed: "in_123#2"), the refund or the dispute.
    gateway_object_id: str = Field(max_length=255)
    invoice_id: str | None = Field(default=None, max_length=255, index=True)
    payment_id: str | None = Field(default=None, max_length=255)
    amount_cents: int = 0
    tax_cents: int = 0
    currency: str = Field(default="usd", max_length=8)
    status: str = Field(default="", max_length=24)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempt: int = 0
    occurred_at: dt.datetime = Field(default_factory=utcnow, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)


class DunningMessage(SQLModel, table=True):
    __tablename__ = "dunning_message"
    __table_args__ = (
        UniqueConstraint("invoice_id", "step", name="ux_dunning_invoice_step"),
        UniqueConstraint("invoice_id", "sent_on", name="ux_dunning_invoice_day"),
    )
    id: int | None = Field(default=None, primary_key=True)
    membership_id: int = Field(foreign_key="membership.id", index=True)
    invoice_id: str = Field(max_length=255)
    step: int  # the schedule's day (1, 4, 11 by default)
    sent_on: dt.date
    # claimed -> sending -> sent; failed (nothing sent, may be retried); unknown (a crash while sending:
    # never sent again, so nobody gets it twice)
    status: str = Field(default="claimed", max_length=12)
    phone: str | None = Field(default=None, max_length=32)
    link_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    terminal: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: dt.datetime = Field(default_factory=utcnow)
    sent_at: dt.datetime | None = None
