"""The PaymentGateway interface the sale, migration and account flows use.

Every method with a side effect takes a stable `idempotency_key` (derived from
our order's key plus the step name): calling it again with the same key returns
the first result and never charges twice.

Subscriptions never charge at creation: they start with `trial_end` set to the
next billing date (the date a migrated member already had, or one period after
a sale), so Stripe bills them first on that date. A sale's first period is
charged separately and explicitly with `charge()` (a PaymentIntent), which
gives one clear decline at the lane and keeps "create subscription" free of
money movement.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard


@dataclass(frozen=True)
class CustomerInfo:
    reference: str  # our customer number, stored as gateway metadata
    name: str = ""
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    price_cents: int
    interval: str = "month"
    currency: str = "usd"


@dataclass(frozen=True)
class CouponSpec:
    code: str
    percent_off: int | None = None
    amount_off_cents: int | None = None
    duration: str = "once"  # once | forever
    currency: str = "usd"


@dataclass(frozen=True)
class SyncedPlan:
    product_id: str
    price_id: str


@dataclass(frozen=True)
class SubscriptionResult:
    subscription_id: str
    status: str
    plan_price_id: str
    trial_end: dt.datetime | None = None
    cancel_at_period_end: bool = False
    paused: bool = False
    coupon_id: str | None = None


@dataclass(frozen=True)
class ChargeResult:
    payment_id: str
    amount_cents: int
    status: str
    charge_id: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    payment_id: str
    amount_cents: int
    status: str


@dataclass
class GatewayCounts:
    """What exists at the gateway for a customer (diagnostics and tests)."""

    customers: int = 0
    subscriptions: int = 0
    charges: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def to_epoch(when: dt.date | dt.datetime) -> int:
    """A billing date becomes noon UTC that day, so every timezone bills on that date."""
    if isinstance(when, dt.datetime):
        return int(when.timestamp())
    return int(dt.datetime(when.year, when.month, when.day, 12, tzinfo=dt.UTC).timestamp())


class PaymentGateway(ABC):
    """One payment gateway (Stripe or simulated). Raises PaymentError subclasses."""

    name: str = "abstract"

    # --- customers and cards ---------------------------------------------
    @abstractmethod
    def ensure_customer(self, info: CustomerInfo, *, idempotency_key: str) -> str:
        """Create the gateway customer (once per key); return its id."""

    @abstractmethod
    def tokenize_card(self, card: ManualCard, *, idempotency_key: str) -> CardToken:
        """Send a keyed card straight to the gateway; return its token (no charge, not yet saved)."""

    @abstractmethod
    def save_card(self, customer_id: str, card: CardToken, *, idempotency_key: str,
                  make_default: bool = True) -> SavedCard:
        """Verify and save a card on the customer with a SetupIntent: no charge."""

    @abstractmethod
    def list_cards(self, customer_id: str) -> list[SavedCard]: ...

    @abstractmethod
    def set_default_card(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None: ...

    @abstractmethod
    def detach_card(self, payment_method_id: str, *, idempotency_key: str) -> None: ...

    # --- catalogue ---------------------------------------------------------
    @abstractmethod
    def sync_plan(self, plan: PlanSpec) -> SyncedPlan:
        """Make sure a product and a recurring price (a Stripe plan) exist for this plan and price."""

    @abstractmethod
    def sync_coupon(self, coupon: CouponSpec) -> str:
        """Make sure the coupon for a local promotion exists; return its id."""

    # --- subscriptions and money --------------------------------------------
    @abstractmethod
    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            idempotency_key: str) -> SubscriptionResult:
        """Subscribe the customer; first invoice on `first_billing`; nothing charged today."""

    @abstractmethod
    def charge(self, customer_id: str, payment_method_id: str, amount_cents: int, *, currency: str = "usd",
               metadata: dict[str, str] | None = None, idempotency_key: str) -> ChargeResult:
        """Charge a saved card now (a sale's first period)."""

    # Idempotency keys expire at the gateway (Stripe prunes them after 24 hours). An order replayed
    # later than that (a site offline for a day) first asks whether its earlier attempt took
    # effect, by the order key every charge and subscription carries in its metadata.
    @abstractmethod
    def find_charge(self, customer_id: str, order_key: str) -> ChargeResult | None:
        """The customer's successful charge made for `order_key`, if there is one."""

    @abstractmethod
    def find_subscription(self, customer_id: str, order_key: str) -> SubscriptionResult | None:
        """The customer's live (not cancelled) subscription made for `order_key`, if there is one."""

    @abstractmethod
    def find_refund(self, payment_id: str, refund_key: str) -> RefundResult | None:
        """The refund of `payment_id` made with idempotency key `refund_key` (in its metadata), if any."""

    @abstractmethod
    def change_plan(self, subscription_id: str, price_id: str, *, idempotency_key: str) -> SubscriptionResult:
        """Upgrade or downgrade, with the gateway's proration."""

    @abstractmethod
    def pause(self, subscription_id: str, *, idempotency_key: str,
              resumes_at: dt.date | None = None) -> SubscriptionResult: ...

    @abstractmethod
    def resume(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult: ...

    @abstractmethod
    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult: ...

    @abstractmethod
    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult: ...

    # --- diagnostics ----------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise GatewayUnavailable / GatewayAuthError when the gateway cannot be used."""
