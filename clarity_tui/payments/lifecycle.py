"""The billing engine's side of the membership lifecycle (issue 13): events and fresh objects.

Events are pulled with the Events API (a cursor, `types[]`, oldest first) or received by the optional
webhook; either way only an event's id, type and object id are trusted. Each change is reconciled from
the object retrieved fresh (`retrieve_*`), because events arrive late, twice or out of order.

Both gateways speak Stripe's shapes: the simulated one emits its events as Stripe would (see
`payments/sim_clock.py`), and `event_from_json` reads either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clarity_tui.payments.errors import PaymentError

# Every event type the sync asks for and handles (Events API `types[]`).
SUBSCRIPTION_EVENTS = ("customer.subscription.updated", "customer.subscription.deleted",
                       "customer.subscription.paused", "customer.subscription.resumed")
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed", "invoice.payment_action_required",
                  "invoice.marked_uncollectible")
CHARGE_EVENTS = ("charge.refunded", "charge.dispute.created")
CARD_EVENTS = ("payment_method.automatically_updated", "payment_method.detached")
HANDLED_EVENT_TYPES = SUBSCRIPTION_EVENTS + INVOICE_EVENTS + CHARGE_EVENTS + CARD_EVENTS
# How long the gateway keeps its events: Stripe's Events API lists and retrieves events of the last 30 days
# ("List events, going back up to 30 days"); the simulated gateway prunes them after 30 days of its clock.
EVENT_RETENTION = dt.timedelta(days=30)


class CursorExpired(PaymentError):
    """The events cursor is unknown to the gateway (Stripe keeps events for 30 days): the sync falls
    back to reconciling every membership whose `paid_through` is due."""


class UnknownObject(PaymentError):
    """The gateway has no such object (404 resource_missing)."""


class BadSignature(PaymentError):
    """A webhook request whose Stripe-Signature does not verify: answered 400, nothing written."""


@dataclass(frozen=True)
class GatewayEvent:
    event_id: str
    type: str
    created: dt.datetime
    object_id: str  # data.object.id
    object_kind: str  # data.object.object: subscription | invoice | charge | dispute | payment_method
    # Ids the handler needs that are not the object's own: the dispute's charge, a detached card's
    # previous customer (data.previous_attributes.customer), the object's customer.
    related: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventPage:
    events: list[GatewayEvent]  # oldest first
    has_more: bool


@dataclass(frozen=True)
class SubscriptionState:
    subscription_id: str
    customer_id: str
    status: str  # Stripe's: trialing active past_due unpaid canceled incomplete incomplete_expired paused
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool = False
    cancel_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    # pause_collection: set while collection is paused; resumes_at when it ends by itself.
    paused: bool = False
    pause_resumes_at: dt.datetime | None = None
    latest_invoice_id: str | None = None
    price_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: str
    customer_id: str
    subscription_id: str | None
    status: str  # draft open paid uncollectible void
    amount_due: int
    amount_paid: int
    amount_remaining: int
    tax_cents: int = 0
    currency: str = "usd"
    billing_reason: str | None = None  # subscription_cycle | subscription_create | manual ...
    attempt_count: int = 0
    next_payment_attempt: dt.datetime | None = None
    period_start: dt.datetime | None = None  # the subscription line's period
    period_end: dt.datetime | None = None
    payment_id: str | None = None  # the PaymentIntent
    charge_id: str | None = None
    # Why the last attempt failed, in words an attendant can read ("Your card has insufficient funds.").
    failure_reason: str | None = None
    failure_code: str | None = None
    created: dt.datetime | None = None
    paid_at: dt.datetime | None = None
    hosted_invoice_url: str | None = None


def oldest_first(invoices: Iterable[InvoiceState]) -> list[InvoiceState]:
    """Invoices by creation time (unknown first), then id: the order their payments happened in."""
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(invoices, key=lambda inv: (inv.created or epoch, inv.invoice_id))


@dataclass(frozen=True)
class RefundState:
    refund_id: str
    amount: int
    status: str
    created: dt.datetime | None = None


@dataclass(frozen=True)
class ChargeState:
    charge_id: str
    payment_id: str | None
    customer_id: str | None
    invoice_id: str | None
    amount: int
    amount_refunded: int
    disputed: bool = False
    refunds: list[RefundState] = field(default_factory=list)


@dataclass(frozen=True)
class DisputeState:
    dispute_id: str
    charge_id: str
    payment_id: str | None
    amount: int
    reason: str
    status: str
    created: dt.datetime | None = None


@dataclass(frozen=True)
class CardState:
    payment_method_id: str
    customer_id: str | None  # None once detached
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class TaxRateSpec:
    display_name: str
    percentage: Decimal
    inclusive: bool


@dataclass(frozen=True)
class BillingClockReport:
    """What one `payments clock advance` did at the simulated gateway."""

    now: dt.datetime
    renewals: int = 0
    failures: int = 0
    retries: int = 0
    recovered: int = 0
    cancelled: int = 0
    expired: int = 0
    resumed: int = 0
    events: int = 0


def epoch_to_utc(value: Any) -> dt.datetime | None:
    return None if value in (None, "", 0) else dt.datetime.fromtimestamp(int(value), dt.UTC)


def event_from_json(body: dict[str, Any]) -> GatewayEvent:
    """An event in Stripe's shape (Events API item or webhook body): only ids and the type are kept."""
    try:
        obj = body["data"]["object"]
        related = {}
        if obj.get("customer") and isinstance(obj["customer"], str):
            related["customer"] = obj["customer"]
        if obj.get("object") == "dispute" and obj.get("charge"):
            related["charge"] = obj["charge"] if isinstance(obj["charge"], str) else obj["charge"]["id"]
        previous = (body["data"].get("previous_attributes") or {}).get("customer")
        if isinstance(previous, str):
            related["previous_customer"] = previous
        return GatewayEvent(event_id=str(body["id"]), type=str(body["type"]),
                            created=epoch_to_utc(body.get("created")) or dt.datetime.now(dt.UTC),
                            object_id=str(obj["id"]), object_kind=str(obj.get("object") or ""), related=related)
    except (KeyError, TypeError, ValueError) as exc:
        raise PaymentError(f"The gateway sent an event this version cannot read ({exc!r}).") from exc


# Read-only calls (events and fresh objects) need no idempotency key. The card-update link is made by
# an outbox row; the tax rate by the catalogue sync (like plans).
class LifecycleGateway:
    """Mixed into PaymentGateway. Gateways override every method; the defaults refuse."""

    name: str

    def _unsupported(self, what: str) -> Exception:  # PaymentGateway's
        raise NotImplementedError

    def latest_event_id(self) -> str | None:
        """The newest event's id (the cursor a sync with no cursor starts from), or None with no events."""
        raise self._unsupported("report its events")

    def list_events(self, *, after: str | None, types: Sequence[str], limit: int = 100) -> EventPage:
        """Events newer than the event `after` (None: from the oldest kept), oldest first, at most
        `limit`. Raises CursorExpired when `after` is unknown or expired."""
        raise self._unsupported("report its events")

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        raise self._unsupported("report a subscription")

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        raise self._unsupported("report an invoice")

    def retrieve_charge(self, charge_id: str) -> ChargeState:
        raise self._unsupported("report a charge")

    def retrieve_dispute(self, dispute_id: str) -> DisputeState:
        raise self._unsupported("report a dispute")

    def retrieve_card(self, payment_method_id: str) -> CardState:
        raise self._unsupported("report a card")

    def open_invoices(self, subscription_id: str) -> list[InvoiceState]:
        """The subscription's open invoices, oldest first."""
        raise self._unsupported("report invoices")

    def invoices_since(self, subscription_id: str, since: dt.datetime) -> list[InvoiceState]:
        """The subscription's invoices created at or after `since`, oldest first (a sync whose events may be
        gone reads the payments from the invoices themselves)."""
        raise self._unsupported("report invoices")

    def create_card_update_link(self, customer_id: str, *, return_url: str, idempotency_key: str) -> str:
        """A gateway-hosted page where the customer updates their card (Stripe: a Billing customer portal
        session with the payment_method_update flow); returns its URL."""
        raise self._unsupported("make a card-update link")

    def sync_tax_rate(self, spec: TaxRateSpec) -> str:
        """Make sure a tax rate with this name, percentage and inclusiveness exists; return its id."""
        raise self._unsupported("apply sales tax")

