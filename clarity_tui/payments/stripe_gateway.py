"""PaymentGateway on Stripe, through the official SDK (`stripe.StripeClient`).

Choices that work both on Stripe and on localstripe (the offline test server):
- Recurring prices are Stripe *plans* (`/v1/plans`, ids `clarity-<CODE>-<cents>-<interval>`).
  Stripe accepts a plan id wherever a price id goes; localstripe knows only plans.
  A price change makes a new plan id; the old one stays for existing subscribers.
- A subscription starts with `trial_end` = the first billing date (and
  `proration_behavior="none"`), so nothing is charged at creation. localstripe
  honours trial_end but would invoice at once with billing_cycle_anchor.
- Saving a card: SetupIntent create + confirm (verifies the card, no charge),
  attach if the gateway did not, then set it as the invoice default.
- Coupons are created by id (`clarity-<PROMO>`), lazily, on sync or first use.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import stripe

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import (
    CouponSpec,
    CustomerInfo,
    PaymentGateway,
    PlanSpec,
    SubscriptionResult,
    SyncedPlan,
    ChargeResult,
    RefundResult,
    to_epoch,
)
from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard

log = logging.getLogger(__name__)
T = TypeVar("T")

_CARD_FIELD = re.compile(r"(card(?:\[|%5B)(?:number|cvc)(?:\]|%5D)=)[^&\s\"']*", re.IGNORECASE)


class _RedactCardData(logging.Filter):
    """The SDK logs request bodies at DEBUG ("Post details"): blank card fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "card" in msg.lower():
            redacted = _CARD_FIELD.sub(r"\1[REDACTED]", msg)
            if redacted != msg:
                record.msg, record.args = redacted, None
        return True


def install_log_redaction() -> None:
    logger = logging.getLogger("stripe")
    if not any(isinstance(f, _RedactCardData) for f in logger.filters):
        logger.addFilter(_RedactCardData())


def map_stripe_error(exc: Exception) -> E.PaymentError:
    """Turn an SDK exception into a PaymentError with an actionable message."""
    if isinstance(exc, stripe.CardError):
        err = exc.error
        decline = getattr(err, "decline_code", None) if err else None
        code = exc.code or (getattr(err, "code", None) if err else None)
        if code == "expired_card" or decline == "expired_card":
            return E.CardExpired()
        if code in ("incorrect_cvc", "invalid_cvc"):
            return E.declined("incorrect_cvc")
        if code in ("incorrect_number", "invalid_number"):
            return E.declined("incorrect_number")
        return E.declined(decline or "generic_decline")
    if isinstance(exc, stripe.APIConnectionError):
        return E.GatewayUnavailable(
            "Cannot reach the payment gateway (network down or timed out). The order is kept and will "
            "sync when the network is back."
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return E.GatewayAuthError(
            "The payment gateway refused our API key: ask a technician to check payments.stripe.api_key."
        )
    if isinstance(exc, stripe.RateLimitError):
        return E.GatewayUnavailable("The payment gateway is busy (rate limited): the order will retry shortly.")
    if isinstance(exc, stripe.IdempotencyError):
        return E.IdempotencyConflict(
            "The gateway saw this step before with other details; it was not repeated. Ask a technician."
        )
    if isinstance(exc, stripe.InvalidRequestError):
        return E.GatewayRejected(f"The payment gateway refused the request: {exc.user_message or exc}.")
    if isinstance(exc, stripe.APIError):
        status = getattr(exc, "http_status", None) or 0
        if status >= 500 or status == 0:
            return E.GatewayUnavailable("The payment gateway had a problem; the order will retry shortly.")
        if status == 402:
            return E.declined(getattr(exc, "code", None))
        return E.GatewayRejected(f"The payment gateway refused the request: {exc.user_message or exc}.")
    if isinstance(exc, stripe.StripeError):
        return E.PaymentError(f"Payment gateway error: {exc.user_message or exc}.")
    raise exc


def _val(obj: Any, name: str, default: Any = None) -> Any:
    try:
        value = obj[name]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


class StripeGateway(PaymentGateway):
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, http_client: Any = None,
                 timeout: float = 30.0, max_network_retries: int = 0, currency: str = "usd") -> None:
        if not api_key:
            raise E.GatewayAuthError(
                "No Stripe API key is set: ask a technician to set payments.stripe.api_key (CLARITY_PAYMENTS__STRIPE__API_KEY)."
            )
        install_log_redaction()
        if http_client is None:
            http_client = stripe.new_default_http_client(timeout=timeout)
        kwargs: dict[str, Any] = {"http_client": http_client, "max_network_retries": max_network_retries}
        if api_base:
            kwargs["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(api_key, **kwargs)
        self.currency = currency

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> StripeGateway:
        cfg = settings.payments.stripe
        return cls(cfg.api_key, api_base=cfg.api_base, timeout=cfg.timeout_seconds,
                   max_network_retries=cfg.max_network_retries, currency=settings.payments.currency, **kw)

    # --- plumbing -------------------------------------------------------------
    def _call(self, fn: Callable[..., T], *args: Any, key: str | None = None, **params: Any) -> T:
        options = {"idempotency_key": key} if key else None
        try:
            return fn(*args, params=params or None, options=options)
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None

    @property
    def v1(self) -> Any:
        return self.client.v1

    # --- customers and cards -------------------------------------------------
    def ensure_customer(self, info: CustomerInfo, *, idempotency_key: str) -> str:
        params: dict[str, Any] = {"metadata": {"clarity_customer": info.reference}}
        if info.name:
            params["name"] = info.name
        if info.email:
            params["email"] = info.email
        if info.phone:
            params["phone"] = info.phone
        return self._call(self.v1.customers.create, key=idempotency_key, **params).id

    def tokenize_card(self, card: ManualCard, *, idempotency_key: str) -> CardToken:
        pm = self._call(
            self.v1.payment_methods.create, key=idempotency_key, type="card",
            card={"number": card.number, "exp_month": card.exp_month, "exp_year": card.exp_year, "cvc": card.cvc},
        )
        return self._token(pm)

    @staticmethod
    def _token(pm: Any) -> CardToken:
        c = pm.card
        return CardToken(pm.id, brand=_val(c, "brand", "unknown"), last4=_val(c, "last4", ""),
                         exp_month=int(_val(c, "exp_month", 0)), exp_year=int(_val(c, "exp_year", 0)))

    def save_card(self, customer_id: str, card: CardToken, *, idempotency_key: str,
                  make_default: bool = True) -> SavedCard:
        seti = self._call(self.v1.setup_intents.create, key=f"{idempotency_key}:seti", customer=customer_id,
                          usage="off_session", payment_method_types=["card"])
        seti = self._call(self.v1.setup_intents.confirm, seti.id, key=f"{idempotency_key}:confirm",
                          payment_method=card.payment_method_id)
        if seti.status != "succeeded":
            raise E.declined("generic_decline") if seti.status in ("canceled", "requires_payment_method") else \
                E.CardDeclined("The card needs the customer's bank to approve it (3-D Secure): use another card.",
                               decline_code="authentication_required")
        pm = self._call(self.v1.payment_methods.retrieve, card.payment_method_id)
        if not pm.customer:  # Stripe attaches on confirm; localstripe does not.
            pm = self._call(self.v1.payment_methods.attach, card.payment_method_id, key=f"{idempotency_key}:attach",
                            customer=customer_id)
        if make_default:
            self.set_default_card(customer_id, pm.id, idempotency_key=f"{idempotency_key}:default")
        t = self._token(pm)
        return SavedCard(t.payment_method_id, t.brand, t.last4, t.exp_month, t.exp_year, is_default=make_default)

    def list_cards(self, customer_id: str) -> list[SavedCard]:
        cust = self._call(self.v1.customers.retrieve, customer_id)
        default = _val(_val(cust, "invoice_settings", {}), "default_payment_method")
        listing = self._call(self.v1.payment_methods.list, customer=customer_id, type="card")
        cards = []
        for pm in listing.data:
            t = self._token(pm)
            cards.append(SavedCard(t.payment_method_id, t.brand, t.last4, t.exp_month, t.exp_year,
                                   is_default=pm.id == default))
        return cards

    def set_default_card(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None:
        self._call(self.v1.customers.update, customer_id, key=idempotency_key,
                   invoice_settings={"default_payment_method": payment_method_id})

    def detach_card(self, payment_method_id: str, *, idempotency_key: str) -> None:
        self._call(self.v1.payment_methods.detach, payment_method_id, key=idempotency_key)

    # --- catalogue ------------------------------------------------------------------
    @staticmethod
    def plan_id(plan: PlanSpec) -> str:
        return f"clarity-{plan.code}-{plan.price_cents}-{plan.interval}".lower()

    def sync_plan(self, plan: PlanSpec) -> SyncedPlan:
        product_id = f"clarity-{plan.code}".lower()
        price_id = self.plan_id(plan)
        try:
            self.v1.products.retrieve(product_id)
        except stripe.InvalidRequestError:
            self._call(self.v1.products.create, key=f"product:{product_id}", id=product_id, name=plan.name,
                       metadata={"clarity_plan": plan.code})
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None
        try:
            self.v1.plans.retrieve(price_id)
        except stripe.InvalidRequestError:
            self._call(self.v1.plans.create, key=f"plan:{price_id}", id=price_id, product=product_id,
                       amount=plan.price_cents, currency=plan.currency, interval=plan.interval,
                       nickname=plan.name, metadata={"clarity_plan": plan.code})
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None
        return SyncedPlan(product_id, price_id)

    @staticmethod
    def coupon_id(coupon: CouponSpec) -> str:
        return f"clarity-{coupon.code}".lower()

    def sync_coupon(self, coupon: CouponSpec) -> str:
        cid = self.coupon_id(coupon)
        try:
            self.v1.coupons.retrieve(cid)
            return cid
        except stripe.InvalidRequestError:
            pass
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None
        params: dict[str, Any] = {"id": cid, "duration": coupon.duration, "metadata": {"clarity_promotion": coupon.code}}
        if coupon.percent_off is not None:
            params["percent_off"] = coupon.percent_off
        else:
            params["amount_off"] = coupon.amount_off_cents
            params["currency"] = coupon.currency
        self._call(self.v1.coupons.create, key=f"coupon:{cid}", **params)
        return cid

    # --- subscriptions and money ---------------------------------------------------------
    def _sub_result(self, sub: Any, coupon_id: str | None = None) -> SubscriptionResult:
        items = _val(sub, "items")
        price_id = ""
        if items is not None and items.data:
            item = items.data[0]
            price = _val(item, "price") or _val(item, "plan")
            price_id = _val(price, "id", "") if price is not None else ""
        trial_end = _val(sub, "trial_end")
        return SubscriptionResult(
            subscription_id=sub.id, status=_val(sub, "status", "unknown"), plan_price_id=price_id,
            trial_end=dt.datetime.fromtimestamp(trial_end, dt.UTC) if trial_end else None,
            cancel_at_period_end=bool(_val(sub, "cancel_at_period_end", False)),
            paused=bool(_val(sub, "pause_collection")), coupon_id=coupon_id,
        )

    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            idempotency_key: str) -> SubscriptionResult:
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": [{"plan": price_id}],
            "trial_end": to_epoch(first_billing),
            "proration_behavior": "none",
            "metadata": metadata or {},
        }
        if coupon_id:
            params["discounts"] = [{"coupon": coupon_id}]
        sub = self._call(self.v1.subscriptions.create, key=idempotency_key, **params)
        return self._sub_result(sub, coupon_id)

    def charge(self, customer_id: str, payment_method_id: str, amount_cents: int, *, currency: str = "usd",
               metadata: dict[str, str] | None = None, idempotency_key: str) -> ChargeResult:
        pi = self._call(self.v1.payment_intents.create, key=idempotency_key, amount=amount_cents,
                        currency=currency or self.currency, customer=customer_id, payment_method=payment_method_id,
                        confirm=True, off_session=True, metadata=metadata or {})
        if pi.status != "succeeded":
            err = _val(pi, "last_payment_error")
            raise E.declined(_val(err, "decline_code") or _val(err, "code"))
        latest = _val(pi, "latest_charge")
        charge_id = latest if isinstance(latest, str) else _val(latest, "id")
        return ChargeResult(pi.id, pi.amount, pi.status, charge_id)

    def find_charge(self, customer_id: str, order_key: str) -> ChargeResult | None:
        # Charges list by customer (PaymentIntents carry the metadata): one page of the customer's
        # most recent 100 is plenty for an order replayed a day or two late.
        for charge in self._call(self.v1.charges.list, customer=customer_id, limit=100).data:
            pi_ref = _val(charge, "payment_intent")
            if not pi_ref or _val(charge, "status") != "succeeded":
                continue
            pi = self._call(self.v1.payment_intents.retrieve, pi_ref if isinstance(pi_ref, str) else pi_ref.id)
            if _val(_val(pi, "metadata", {}), "order_key") == order_key and pi.status == "succeeded":
                return ChargeResult(pi.id, pi.amount, pi.status, charge.id)
        return None

    def find_subscription(self, customer_id: str, order_key: str) -> SubscriptionResult | None:
        for sub in self._call(self.v1.subscriptions.list, customer=customer_id, status="all", limit=100).data:
            if _val(_val(sub, "metadata", {}), "order_key") == order_key and sub.status not in (
                    "canceled", "incomplete_expired"):
                return self._sub_result(sub, None)
        return None

    def change_plan(self, subscription_id: str, price_id: str, *, idempotency_key: str) -> SubscriptionResult:
        sub = self._call(self.v1.subscriptions.retrieve, subscription_id)
        item_id = sub["items"].data[0].id
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key,
                         items=[{"id": item_id, "plan": price_id}], proration_behavior="create_prorations")
        return self._sub_result(sub)

    def pause(self, subscription_id: str, *, idempotency_key: str,
              resumes_at: dt.date | None = None) -> SubscriptionResult:
        pause: dict[str, Any] = {"behavior": "void"}
        if resumes_at:
            pause["resumes_at"] = to_epoch(resumes_at)
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key, pause_collection=pause)
        res = self._sub_result(sub)
        return SubscriptionResult(**{**res.__dict__, "paused": True})

    def resume(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        # An empty string unsets pause_collection (Stripe's way to clear a hash).
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key, pause_collection="")
        res = self._sub_result(sub)
        return SubscriptionResult(**{**res.__dict__, "paused": False})

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key, cancel_at_period_end=True)
        return self._sub_result(sub)

    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult:
        # The key goes in the metadata too: a replay after the key expired finds this refund by it.
        params: dict[str, Any] = {"payment_intent": payment_id, "metadata": {"refund_key": idempotency_key}}
        if amount_cents is not None:
            params["amount"] = amount_cents
        r = self._call(self.v1.refunds.create, key=idempotency_key, **params)
        return RefundResult(r.id, payment_id, r.amount, r.status)

    def find_refund(self, payment_id: str, refund_key: str) -> RefundResult | None:
        for r in self._call(self.v1.refunds.list, payment_intent=payment_id, limit=100).data:
            if _val(_val(r, "metadata", {}), "refund_key") == refund_key and _val(r, "status") != "failed":
                return RefundResult(r.id, payment_id, r.amount, r.status)
        return None

    def check(self) -> None:
        self._call(self.v1.customers.list, limit=1)
