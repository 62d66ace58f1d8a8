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
from collections.abc import Sequence
from dataclasses import dataclass

from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard
from clarity_tui.payments.lifecycle import LifecycleGateway


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
    # Family plans: each vehicle beyond those included is billed every period at this price.
    extra_vehicle_price_cents: int = 0


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
    # The extra vehicle's recurring price (a second subscription item, quantity N); None without extras.
    extra_price_id: str | None = None


@dataclass(frozen=True)
class SubscriptionResult:
    subscription_id: str
    status: str
    plan_price_id: str
    trial_end: dt.datetime | None = None
    cancel_at_period_end: bool = False
    paused: bool = False
    coupon_id: str | None = None
    extra_vehicles: int = 0  # the quantity of the extra vehicle item


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


def to_epoch(when: dt.date | dt.datetime) -> int:
    """A billing date becomes noon UTC that day, so every timezone bills on that date."""
    if isinstance(when, dt.datetime):
        return int(when.timestamp())
    return int(dt.datetime(when.year, when.month, when.day, 12, tzinfo=dt.UTC).timestamp())


class PaymentGateway(LifecycleGateway, ABC):
    """One payment gateway (Stripe or simulated). Raises PaymentError subclasses."""

    name: str = "abstract"

    def clock_now(self) -> dt.datetime:
        """The billing engine's time (UTC): the real time; the simulated gateway's clock can run ahead."""
        return dt.datetime.now(dt.UTC)

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
        """Make sure a product and a recurring price (a Stripe plan) exist for this plan and price, and
        a second one for its extra vehicle when extras cost money."""

    @abstractmethod
    def sync_coupon(self, coupon: CouponSpec) -> str:
        """Make sure the coupon for a local promotion exists; return its id."""

    # --- subscriptions and money --------------------------------------------
    @abstractmethod
    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            extra_price_id: str | None = None, extra_vehicles: int = 0,
                            tax_rate_ids: Sequence[str] = (), idempotency_key: str) -> SubscriptionResult:
        """Subscribe the customer; first invoice on `first_billing`; nothing charged today. With
        `extra_vehicles` > 0 a second item bills `extra_price_id` with that quantity every period.
        `tax_rate_ids` (from `sync_tax_rate`): the subscription's default tax rates, on every renewal."""

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
    def change_plan(self, subscription_id: str, price_id: str, *, extra_price_id: str | None = None,
                    extra_vehicles: int = 0, idempotency_key: str) -> SubscriptionResult:
        """Bill these prices (base, and extra vehicles with their quantity) from the next invoice on,
        on the same billing date, with no proration: the caller charges an upgrade's difference itself,
        so the amount the customer saw is the amount charged."""

    @abstractmethod
    def pause(self, subscription_id: str, *, idempotency_key: str,
              resumes_at: dt.date | None = None) -> SubscriptionResult: ...

    @abstractmethod
    def resume(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult: ...

    @abstractmethod
    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult: ...

    @abstractmethod
    def keep_subscription(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        """Undo a scheduled cancel (cancel_at_period_end back to false)."""

    @abstractmethod
    def pay_open_invoice(self, subscription_id: str, payment_method_id: str, *,
                         idempotency_key: str) -> ChargeResult | None:
        """Pay the subscription's open (past-due) invoice with this card: Stripe's own amount, with
        extras, discounts and proration. None when nothing is open. Declines raise CardDeclined."""

    @abstractmethod
    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult: ...

    # --- diagnostics ----------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise GatewayUnavailable / GatewayAuthError when the gateway cannot be used."""

    # --- card present at the lane (issue 12) ---------------------------------------------------------
    # The first payment of a sale is taken on the card reader: a PaymentIntent the outbox creates with
    # setup_future_usage=off_session, which the reader collects (card present; or MOTO, keyed on the
    # reader). Stripe then keeps a reusable card for the renewals. A single wash (issue 18) is a one-off
    # payment on the reader (`save_card=False`): no setup_future_usage, a customer only if there is one,
    # and no card kept. Gateways without these raise GatewayRejected; both of ours implement them.

    @property
    def keyed_entry_allowed(self) -> bool:
        """True when `tokenize_card` may be given a keyed card number from this process."""
        return True

    def create_card_present_payment(self, customer_id: str | None, amount_cents: int, *, currency: str = "usd",
                                    metadata: dict[str, str] | None = None, moto: bool = False,
                                    save_card: bool = True, idempotency_key: str) -> CardPresentPayment:
        """Create the PaymentIntent the reader collects (not yet paid): card_present (or card, for MOTO).
        `save_card`: setup_future_usage=off_session, for this customer (required), whose renewals the card
        pays; False: a one-off payment, for the customer if one is given, and no card is kept."""
        raise self._unsupported("take a payment on the card reader")

    def card_present_payment(self, payment_id: str, *, presented: CardToken | None = None,
                             idempotency_key: str) -> CardPresentPayment:
        """The payment after the reader's action: paid (with the reusable card) or not (with the decline).
        `presented`: the card the reader read, for a gateway the reader does not report to itself."""
        raise self._unsupported("take a payment on the card reader")

    def cancel_card_present_payment(self, payment_id: str, *, idempotency_key: str) -> CardPresentPayment:
        """Cancel a payment the reader did not complete, so it can never be paid later; a payment that
        was paid meanwhile is returned as it is (never cancelled)."""
        raise self._unsupported("take a payment on the card reader")

    def find_card_present_payment(self, customer_id: str | None, order_key: str, *, save_card: bool = True,
                                  include_refunded: bool = False) -> CardPresentPayment | None:
        """The paid card-present payment made for `order_key` (metadata), if there is one: the customer's
        card-saving one, or (`save_card=False`) the one-off one, found whoever it was for (`customer_id`
        may be None). A fully refunded one is undone, so not found, unless `include_refunded`."""
        raise self._unsupported("take a payment on the card reader")

    def create_hosted_card_page(self, customer_id: str, *, currency: str = "usd", success_url: str,
                                metadata: dict[str, str] | None = None,
                                idempotency_key: str) -> HostedCardPage:
        """A gateway-hosted page where the customer enters their card on their own phone (saved, no charge)."""
        raise self._unsupported("send a card page by text message")

    def hosted_card_page(self, session_id: str) -> HostedCardPage:
        """The hosted page's state; once complete, the card it saved on the customer."""
        raise self._unsupported("send a card page by text message")

    # Save a card on the reader without charging it (issue 12 item 1): a card_present SetupIntent the
    # outbox creates for the customer, which the reader processes; Stripe attaches its reusable
    # `generated_card` to that customer. Like the card-present payment, every step is the outbox's.

    def create_card_present_setup(self, customer_id: str, *, metadata: dict[str, str] | None = None,
                                  idempotency_key: str) -> CardPresentSetup:
        """Create the SetupIntent the reader processes (card_present, usage=off_session, for this customer)."""
        raise self._unsupported("save a card on the card reader")

    def card_present_setup(self, setup_id: str, *, presented: CardToken | None = None,
                           idempotency_key: str) -> CardPresentSetup:
        """The SetupIntent after the reader's action: succeeded (with the generated card) or not (with the
        decline). `presented`: the card the reader read, for a gateway the reader does not report to itself."""
        raise self._unsupported("save a card on the card reader")

    def cancel_card_present_setup(self, setup_id: str, *, idempotency_key: str) -> CardPresentSetup:
        """Cancel a SetupIntent the reader did not complete; one that succeeded meanwhile is returned as it is."""
        raise self._unsupported("save a card on the card reader")

    def find_card_present_setup(self, customer_id: str, save_key: str) -> CardPresentSetup | None:
        """The customer's succeeded card-present SetupIntent made for `save_key` (metadata), if there is one."""
        raise self._unsupported("save a card on the card reader")

    def _unsupported(self, what: str) -> Exception:
        from clarity_tui.payments.errors import GatewayRejected

        return GatewayRejected(f"The {self.name} payment gateway cannot {what}: take the card another way.")


@dataclass(frozen=True)
class CardPresentPayment:
    """A payment taken on the card reader, as the gateway sees it."""

    payment_id: str
    amount_cents: int
    status: str  # succeeded | requires_payment_method | requires_confirmation | processing | canceled ...
    charge_id: str | None = None
    # The reusable card for renewals: the charge's generated_card (card present) or the keyed card (MOTO).
    payment_method_id: str | None = None
    brand: str = "unknown"
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0
    decline_code: str | None = None
    refunded_cents: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class HostedCardPage:
    """A gateway-hosted page that saves a card (a Stripe Checkout Session in setup mode)."""

    session_id: str
    status: str  # open | complete | expired
    url: str | None = None
    payment_method_id: str | None = None
    brand: str = "unknown"
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0


@dataclass(frozen=True)
class CardPresentSetup:
    """A card saved on the card reader (a card_present SetupIntent), as the gateway sees it."""

    setup_id: str
    status: str  # succeeded | requires_payment_method | processing | canceled ...
    # The reusable card: the setup attempt's generated_card, attached to the SetupIntent's customer.
    payment_method_id: str | None = None
    brand: str = "unknown"
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0
    decline_code: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

