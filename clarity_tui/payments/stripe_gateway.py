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
from collections.abc import Callable, Sequence
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
from clarity_tui.payments.stripe_errors import install_log_redaction, map_stripe_error
from clarity_tui.payments.stripe_in_person import StripeInPerson, _val
from clarity_tui.payments.stripe_lifecycle import EXTRA_ITEM, EXTRA_VEHICLE, StripeLifecycle

log = logging.getLogger(__name__)
T = TypeVar("T")



# Sent on every request (Stripe-Version), so shapes never change with an SDK upgrade (docs.stripe.com/sdks/
# set-version). The last version before Basil (2025-03-31) moved `current_period_*` to subscription items and
# dropped the invoice's `subscription`, `payment_intent`, `charge`, `tax`: the shapes read here and by localstripe.
STRIPE_API_VERSION = "2025-02-24.acacia"
# The extra vehicle's subscription item (and plan) carry EXTRA_ITEM: EXTRA_VEHICLE in their metadata.

RAW_CARD_DATA_REFUSED = (
    "Keyed card numbers cannot be sent to Stripe from this terminal (the account has no raw card data "
    "access). Take the card on the reader, key it on the reader (MOTO), or text the customer a secure link."
)


class StripeGateway(StripeInPerson, StripeLifecycle, PaymentGateway):
    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, http_client: Any = None,
                 timeout: float = 30.0, max_network_retries: int = 0, currency: str = "usd",
                 raw_card_data_access: bool = False) -> None:
        if not api_key:
            raise E.GatewayAuthError(
                "No Stripe API key is set: ask a technician to set payments.stripe.api_key (CLARITY_PAYMENTS__STRIPE__API_KEY)."
            )
        install_log_redaction()
        if http_client is None:
            http_client = stripe.new_default_http_client(timeout=timeout)
        kwargs: dict[str, Any] = {"http_client": http_client, "max_network_retries": max_network_retries,
                                  "stripe_version": STRIPE_API_VERSION}
        if api_base:
            kwargs["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(api_key, **kwargs)
        self.currency = currency
        # payments.stripe.raw_card_data_access: the account may send keyed card numbers through the API.
        self.raw_card_data_access = raw_card_data_access

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> StripeGateway:
        cfg = settings.payments.stripe
        return cls(cfg.api_key, api_base=cfg.api_base, timeout=cfg.timeout_seconds,
                   max_network_retries=cfg.max_network_retries, currency=settings.payments.currency,
                   raw_card_data_access=cfg.raw_card_data_access, **kw)

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
        if not self.raw_card_data_access:
            # Stripe refuses raw card numbers from accounts without "raw card data" access, and sending
            # them puts this terminal in PCI SAQ D scope: only an explicit setting allows it.
            raise E.PaymentError(RAW_CARD_DATA_REFUSED, code="raw_card_data_disabled")
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
        self._ensure_plan(price_id, product_id, plan.price_cents, plan, plan.name, {"clarity_plan": plan.code})
        extra_id = None
        if plan.extra_vehicle_price_cents > 0:
            extra_id = self.extra_plan_id(plan)
            self._ensure_plan(extra_id, product_id, plan.extra_vehicle_price_cents, plan,
                              f"{plan.name}: extra vehicle", {"clarity_plan": plan.code, EXTRA_ITEM: EXTRA_VEHICLE})
        return SyncedPlan(product_id, price_id, extra_id)

    @staticmethod
    def extra_plan_id(plan: PlanSpec) -> str:
        return f"clarity-{plan.code}-extra-{plan.extra_vehicle_price_cents}-{plan.interval}".lower()

    def _ensure_plan(self, plan_id: str, product_id: str, amount: int, plan: PlanSpec, nickname: str,
                     metadata: dict[str, str]) -> None:
        try:
            self.v1.plans.retrieve(plan_id)
        except stripe.InvalidRequestError:
            self._call(self.v1.plans.create, key=f"plan:{plan_id}", id=plan_id, product=product_id, amount=amount,
                       currency=plan.currency, interval=plan.interval, nickname=nickname, metadata=metadata)
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None

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
    @staticmethod
    def _items(sub: Any) -> tuple[Any, Any]:
        """(base item, extra vehicle item): the extra one is marked in its metadata."""
        items = _val(sub, "items")
        data = list(items.data) if items is not None else []
        extra = next((i for i in data if _val(_val(i, "metadata", {}), EXTRA_ITEM) == EXTRA_VEHICLE), None)
        base = next((i for i in data if i is not extra), None)
        return base, extra

    def _sub_result(self, sub: Any, coupon_id: str | None = None) -> SubscriptionResult:
        base, extra = self._items(sub)
        price = (_val(base, "price") or _val(base, "plan")) if base is not None else None
        price_id = _val(price, "id", "") if price is not None else ""
        trial_end = _val(sub, "trial_end")
        return SubscriptionResult(
            subscription_id=sub.id, status=_val(sub, "status", "unknown"), plan_price_id=price_id,
            trial_end=dt.datetime.fromtimestamp(trial_end, dt.UTC) if trial_end else None,
            cancel_at_period_end=bool(_val(sub, "cancel_at_period_end", False)),
            paused=bool(_val(sub, "pause_collection")), coupon_id=coupon_id,
            extra_vehicles=int(_val(extra, "quantity", 0)) if extra is not None else 0,
        )

    @staticmethod
    def _extra_item(extra_price_id: str | None, extra_vehicles: int) -> dict[str, Any]:
        if extra_vehicles < 0 or (extra_vehicles and not extra_price_id):
            raise E.GatewayRejected("Extra vehicles need the plan's extra vehicle price.")
        return {"plan": extra_price_id, "quantity": extra_vehicles, "metadata": {EXTRA_ITEM: EXTRA_VEHICLE}}

    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            extra_price_id: str | None = None, extra_vehicles: int = 0,
                            tax_rate_ids: Sequence[str] = (), idempotency_key: str) -> SubscriptionResult:
        items: list[dict[str, Any]] = [{"plan": price_id}]
        if extra_vehicles:  # the family's extra vehicles, billed every period with the base price
            items.append(self._extra_item(extra_price_id, extra_vehicles))
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": items,
            "trial_end": to_epoch(first_billing),
            "proration_behavior": "none",
            "metadata": metadata or {},
        }
        if coupon_id:
            params["discounts"] = [{"coupon": coupon_id}]
        if tax_rate_ids:
            params["default_tax_rates"] = list(tax_rate_ids)
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

    def change_plan(self, subscription_id: str, price_id: str, *, extra_price_id: str | None = None,
                    extra_vehicles: int = 0, idempotency_key: str) -> SubscriptionResult:
        # proration_behavior: "Determines how to handle prorations when the billing cycle changes (e.g.,
        # when switching plans, resetting billing_cycle_anchor=now, or starting a trial), or if an item's
        # quantity changes." and `none`: "Disable creating prorations in this request." (API reference,
        # update a subscription). We charge an upgrade's difference ourselves (the amount the customer
        # saw), and Stripe prorates nothing while a subscription is in its trial (a sale's paid first
        # period, a migrated member's kept date). billing_cycle_anchor is left out: it moves only when
        # set to `now` or when the interval changes, which plan changes refuse.
        sub = self._call(self.v1.subscriptions.retrieve, subscription_id)
        base, extra = self._items(sub)
        items: list[dict[str, Any]] = [{"id": base.id, "plan": price_id}]
        if extra_vehicles:
            wanted = self._extra_item(extra_price_id, extra_vehicles)
            items.append({"id": extra.id, **wanted} if extra is not None else wanted)
        elif extra is not None:
            items.append({"id": extra.id, "deleted": True})
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key, items=items,
                         proration_behavior="none")
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

    def keep_subscription(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        sub = self._call(self.v1.subscriptions.update, subscription_id, key=idempotency_key, cancel_at_period_end=False)
        return self._sub_result(sub)

    def pay_open_invoice(self, subscription_id: str, payment_method_id: str, *,
                         idempotency_key: str) -> ChargeResult | None:
        # "Stripe automatically creates and then attempts to collect payment on invoices for
        # customers on subscriptions"; a past-due one is paid with POST /v1/invoices/:id/pay and
        # `payment_method` ("A PaymentMethod to be charged. The PaymentMethod must be the ID of a
        # PaymentMethod belonging to the customer associated with the invoice being paid.").
        sub = self._call(self.v1.subscriptions.retrieve, subscription_id)
        latest = _val(sub, "latest_invoice")
        if not latest:
            return None
        invoice = self._call(self.v1.invoices.retrieve, latest if isinstance(latest, str) else latest.id)
        if _val(invoice, "status") != "open":
            return None
        paid = self._call(self.v1.invoices.pay, invoice.id, key=idempotency_key, payment_method=payment_method_id)
        if _val(paid, "status") != "paid":
            raise E.declined("generic_decline")
        pi = _val(paid, "payment_intent")
        pi_id = pi if isinstance(pi, str) else _val(pi, "id", invoice.id)
        return ChargeResult(pi_id, int(_val(paid, "amount_paid", 0)), "succeeded", _val(paid, "charge"))

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

    # --- card present at the lane (issue 12) -----------------------------------------------------------
