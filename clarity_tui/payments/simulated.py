"""SimulatedGateway: every gateway operation, in-process, stored in our own database.

Used in simulator mode. Outcomes match Stripe's, driven by the card:
- reader tokens `pm_sim_<outcome>_<anything>` (see `sim_token()`), outcomes:
  `ok`, `generic_decline`, `insufficient_funds`, `expired_card`, `incorrect_cvc`
  (declined when the card is saved) and `charge_decline` (saves, then declines
  when charged);
- keyed test cards, as on Stripe: 4000000000000002 generic decline,
  4000000000009995 insufficient funds, 4000000000000069 expired,
  4000000000000127 incorrect CVC, 4000000000000341 declines when charged;
  any other valid number is approved.
Idempotency is Stripe's: the same key with the same parameters returns the
stored result (or the same decline, or the same 5xx) and never charges twice; the
same key with other parameters raises IdempotencyConflict; a key still executing
in another process raises KeyInUse; keys are forgotten after 24 hours.
Set `online = False` to simulate the network being down (GatewayUnavailable).

Fault injection, seen by every process on the same database: `inject_fault()`
makes the next calls of an operation answer 5xx (cached under their key), lose
the answer after the effect (the caller sees GatewayUnavailable), or take longer.
`call_latency` (or CLARITY_SIM_GATEWAY_LATENCY, seconds) slows every call inside
its in-flight window, to widen races in benchmarks; `on_in_flight(operation, key)`
is called inside that window too (tests hold a key in flight with it).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import (
    ChargeResult,
    CouponSpec,
    CustomerInfo,
    PaymentGateway,
    PlanSpec,
    RefundResult,
    SubscriptionResult,
    SyncedPlan,
    to_epoch,
)
from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard
from clarity_tui.payments.sim_store import (
    FAULT_KIND,
    IDEMPOTENCY_KEY_TTL,
    OUTCOMES,
    SAVE_DECLINES,
    TEST_CARDS,
    SimulatedStore,
    _Declined,
    outcome_of_token,
    sim_token,
)
from clarity_tui.payments.simulated_in_person import SimulatedInPerson
from db.models import SimGatewayObject

# A key marked in flight by a process that died (never stored an answer) may be taken over after this.
IN_FLIGHT_LEASE = dt.timedelta(seconds=30)
LATENCY_ENV = "CLARITY_SIM_GATEWAY_LATENCY"
class SimulatedGateway(SimulatedInPerson, SimulatedStore, PaymentGateway):
    name = "simulated"

    def __init__(self, db: Any, *, currency: str = "usd", call_latency: float | None = None,
                 in_flight_lease: float | None = None) -> None:
        self.db = db
        self.currency = currency
        self.online = True
        if call_latency is None:
            try:
                call_latency = float(os.environ.get(LATENCY_ENV) or 0)
            except ValueError:
                call_latency = 0.0
        self.call_latency = max(0.0, call_latency)
        self.in_flight_lease = IN_FLIGHT_LEASE if in_flight_lease is None else dt.timedelta(seconds=in_flight_lease)
        self.on_in_flight: Callable[[str, str], None] | None = None

    # --- customers and cards --------------------------------------------------------------------
    def ensure_customer(self, info: CustomerInfo, *, idempotency_key: str) -> str:
        params = {"reference": info.reference, "name": info.name, "email": info.email, "phone": info.phone}

        def run(s: Session) -> str:
            cid = self._new_id("cus")
            self._put(s, cid, "customer", {**params, "default_payment_method": None})
            return cid

        return self._idempotent("customer.create", idempotency_key, params, run)

    def tokenize_card(self, card: ManualCard, *, idempotency_key: str) -> CardToken:
        outcome = TEST_CARDS.get(card.number, "ok")
        # Only the outcome, brand, last 4 and expiry are kept: never the number or CVC.
        params = {"last4": card.last4, "exp": [card.exp_month, card.exp_year], "brand": card.brand}

        def run(s: Session) -> dict:
            pm_id = f"pm_sim_{outcome}_{secrets.token_hex(6)}"
            self._put(s, pm_id, "payment_method", {"brand": card.brand, "last4": card.last4,
                                                   "exp_month": card.exp_month, "exp_year": card.exp_year,
                                                   "outcome": outcome, "customer": None})
            return {"id": pm_id}

        pm_id = self._idempotent("payment_method.create", idempotency_key, params, run)["id"]
        return CardToken(pm_id, card.brand, card.last4, card.exp_month, card.exp_year)

    def _pm(self, s: Session, token: CardToken | str) -> dict[str, Any]:
        pm_id = token if isinstance(token, str) else token.payment_method_id
        row = s.get(SimGatewayObject, pm_id)
        if row is not None:
            return dict(row.data or {}) | {"id": pm_id}
        if isinstance(token, str) or not pm_id.startswith("pm_sim_"):
            raise E.GatewayRejected(f"The payment gateway does not know card {pm_id}: read the card again.")
        # A reader token seen for the first time: the reader already read brand/last4/expiry.
        data = {"brand": token.brand, "last4": token.last4, "exp_month": token.exp_month,
                "exp_year": token.exp_year, "outcome": outcome_of_token(pm_id), "customer": None}
        self._put(s, pm_id, "payment_method", data)
        return data | {"id": pm_id}

    def save_card(self, customer_id: str, card: CardToken, *, idempotency_key: str,
                  make_default: bool = True) -> SavedCard:
        params = {"customer": customer_id, "pm": card.payment_method_id, "default": make_default}

        def run(s: Session) -> dict:
            cust = self._get(s, customer_id, "customer")
            pm = self._pm(s, card)
            seti = self._new_id("seti")
            if pm["outcome"] in SAVE_DECLINES:
                self._put(s, seti, "setup_intent", {"customer": customer_id, "payment_method": pm["id"],
                                                    "status": "canceled"}, customer_id)
                raise _Declined(pm["outcome"])
            today = dt.date.today()
            if (pm["exp_year"], pm["exp_month"]) < (today.year, today.month) and pm["exp_year"]:
                raise _Declined("expired_card")
            self._put(s, seti, "setup_intent", {"customer": customer_id, "payment_method": pm["id"],
                                                "status": "succeeded"}, customer_id)
            pm_id = pm.pop("id")
            pm["customer"] = customer_id
            self._put(s, pm_id, "payment_method", pm, customer_id)
            if make_default:
                cust["default_payment_method"] = pm_id
                self._put(s, customer_id, "customer", cust)
            return {"id": pm_id, **{k: pm[k] for k in ("brand", "last4", "exp_month", "exp_year")}}

        r = self._idempotent("setup_intent.confirm", idempotency_key, params, run)
        return SavedCard(r["id"], r["brand"], r["last4"], r["exp_month"], r["exp_year"], is_default=make_default)

    def list_cards(self, customer_id: str) -> list[SavedCard]:
        self._check_online()
        with self.db.read() as s:
            cust = self._get(s, customer_id, "customer")
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_method",
                                                         SimGatewayObject.customer == customer_id)
                          .order_by(SimGatewayObject.created_at)).all()
            return [SavedCard(r.id, r.data["brand"], r.data["last4"], r.data["exp_month"], r.data["exp_year"],
                              is_default=r.id == cust.get("default_payment_method"))
                    for r in rows if r.data.get("customer") == customer_id]

    def set_default_card(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None:
        def run(s: Session) -> None:
            cust = self._get(s, customer_id, "customer")
            pm = self._get(s, payment_method_id, "payment_method")
            if pm.get("customer") != customer_id:
                raise E.GatewayRejected("That card is not saved on this customer.")
            cust["default_payment_method"] = payment_method_id
            self._put(s, customer_id, "customer", cust)

        self._idempotent("customer.update", idempotency_key, {"c": customer_id, "pm": payment_method_id}, run)

    def detach_card(self, payment_method_id: str, *, idempotency_key: str) -> None:
        def run(s: Session) -> None:
            pm = self._get(s, payment_method_id, "payment_method")
            owner = pm.get("customer")
            pm["customer"] = None
            self._put(s, payment_method_id, "payment_method", pm)
            s.get(SimGatewayObject, payment_method_id).customer = None
            if owner:
                cust = self._get(s, owner, "customer")
                if cust.get("default_payment_method") == payment_method_id:
                    cust["default_payment_method"] = None
                    self._put(s, owner, "customer", cust)

        self._idempotent("payment_method.detach", idempotency_key, {"pm": payment_method_id}, run)

    # --- catalogue ----------------------------------------------------------------------------
    def sync_plan(self, plan: PlanSpec) -> SyncedPlan:
        self._check_online()
        product_id = f"clarity-{plan.code}".lower()
        price_id = f"clarity-{plan.code}-{plan.price_cents}-{plan.interval}".lower()
        extra_id = (f"clarity-{plan.code}-extra-{plan.extra_vehicle_price_cents}-{plan.interval}".lower()
                    if plan.extra_vehicle_price_cents > 0 else None)
        objects = [(product_id, "product", {"name": plan.name})] + [
            (pid, "plan", {"product": product_id, "amount": amount, "currency": plan.currency,
                           "interval": plan.interval})
            for pid, amount in ((price_id, plan.price_cents), (extra_id, plan.extra_vehicle_price_cents))
            if pid is not None]
        self._create_missing(objects)
        return SyncedPlan(product_id, price_id, extra_id)

    def _create_missing(self, objects: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Catalogue objects by fixed id, created once: a terminal that loses the race to create one
        (PostgreSQL: a unique violation) finds it made, as Stripe answers `resource_already_exists`."""
        for obj_id, kind, data in objects:
            try:
                with self.db.write() as s:
                    if s.get(SimGatewayObject, obj_id) is None:
                        self._put(s, obj_id, kind, data)
            except IntegrityError:
                continue

    def sync_coupon(self, coupon: CouponSpec) -> str:
        self._check_online()
        cid = f"clarity-{coupon.code}".lower()
        self._create_missing([(cid, "coupon", {"percent_off": coupon.percent_off,
                                               "amount_off": coupon.amount_off_cents, "duration": coupon.duration})])
        return cid

    # --- subscriptions and money ----------------------------------------------------------------
    @staticmethod
    def _sub_result(sub_id: str, d: dict[str, Any]) -> SubscriptionResult:
        return SubscriptionResult(
            subscription_id=sub_id, status=d["status"], plan_price_id=d["plan"],
            trial_end=dt.datetime.fromtimestamp(d["trial_end"], dt.UTC) if d.get("trial_end") else None,
            cancel_at_period_end=d.get("cancel_at_period_end", False), paused=bool(d.get("pause_collection")),
            coupon_id=d.get("coupon"), extra_vehicles=int((d.get("extra") or {}).get("quantity") or 0),
        )

    @staticmethod
    def _extra_item(extra_price_id: str | None, extra_vehicles: int) -> dict[str, Any] | None:
        """The extra vehicle item (None without extras), as Stripe's second subscription item."""
        if extra_vehicles < 0 or (extra_vehicles and not extra_price_id):
            raise E.GatewayRejected("Extra vehicles need the plan's extra vehicle price.")
        return {"plan": extra_price_id, "quantity": extra_vehicles} if extra_vehicles else None

    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            extra_price_id: str | None = None, extra_vehicles: int = 0,
                            idempotency_key: str) -> SubscriptionResult:
        params = {"customer": customer_id, "plan": price_id, "trial_end": to_epoch(first_billing),
                  "coupon": coupon_id, "metadata": metadata or {},
                  "extra": self._extra_item(extra_price_id, extra_vehicles)}

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            self._get(s, price_id, "plan")
            if params["extra"]:
                self._get(s, params["extra"]["plan"], "plan")
            if coupon_id:
                self._get(s, coupon_id, "coupon")
            sub_id = self._new_id("sub")
            data = {**params, "status": "trialing", "cancel_at_period_end": False, "pause_collection": None}
            self._put(s, sub_id, "subscription", data, customer_id)
            return {"id": sub_id, **data}

        r = self._idempotent("subscription.create", idempotency_key, params, run)
        return self._sub_result(r["id"], r)

    def charge(self, customer_id: str, payment_method_id: str, amount_cents: int, *, currency: str = "usd",
               metadata: dict[str, str] | None = None, idempotency_key: str) -> ChargeResult:
        params = {"customer": customer_id, "pm": payment_method_id, "amount": amount_cents,
                  "currency": currency, "metadata": metadata or {}}

        def run(s: Session) -> dict:
            if amount_cents <= 0:
                raise E.GatewayRejected("A charge must be more than zero.")
            pm = self._pm(s, payment_method_id)
            pi_id = self._new_id("pi")
            if pm["outcome"] in SAVE_DECLINES | {"charge_decline"}:
                code = "generic_decline" if pm["outcome"] == "charge_decline" else pm["outcome"]
                self._put(s, pi_id, "payment_intent", {**params, "status": "requires_payment_method",
                                                       "decline": code}, customer_id)
                raise _Declined(code)
            self._put(s, pi_id, "payment_intent", {**params, "status": "succeeded", "refunded": 0}, customer_id)
            return {"id": pi_id, "status": "succeeded", "amount": amount_cents}

        r = self._idempotent("payment_intent.create", idempotency_key, params, run)
        return ChargeResult(r["id"], r["amount"], r["status"], r["id"].replace("pi_", "ch_", 1))

    def _objects(self, kind: str, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
        self._check_online()
        with self.db.read() as s:
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind,
                                                         SimGatewayObject.customer == customer_id)
                          .order_by(SimGatewayObject.created_at)).all()
            return [(row.id, dict(row.data or {})) for row in rows]

    def find_charge(self, customer_id: str, order_key: str) -> ChargeResult | None:
        for pi_id, d in self._objects("payment_intent", customer_id):
            if d.get("status") == "succeeded" and (d.get("metadata") or {}).get("order_key") == order_key:
                return ChargeResult(pi_id, d["amount"], "succeeded", pi_id.replace("pi_", "ch_", 1))
        return None

    def find_subscription(self, customer_id: str, order_key: str) -> SubscriptionResult | None:
        for sub_id, d in self._objects("subscription", customer_id):
            if d.get("status") != "canceled" and (d.get("metadata") or {}).get("order_key") == order_key:
                return self._sub_result(sub_id, d)
        return None

    def find_refund(self, payment_id: str, refund_key: str) -> RefundResult | None:
        self._check_online()
        with self.db.read() as s:
            for row in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "refund")).all():
                d = row.data or {}
                if d.get("payment_intent") == payment_id and d.get("refund_key") == refund_key:
                    return RefundResult(row.id, payment_id, d["amount"], "succeeded")
        return None

    def _update_sub(self, op: str, subscription_id: str, key: str, changes: dict[str, Any]) -> SubscriptionResult:
        def run(s: Session) -> dict:
            sub = self._get(s, subscription_id, "subscription")
            if sub["status"] == "canceled":
                raise E.GatewayRejected("That membership's subscription is already cancelled.")
            if "plan" in changes:
                self._get(s, changes["plan"], "plan")
            if changes.get("extra"):
                self._get(s, changes["extra"]["plan"], "plan")
            sub.update(changes)
            self._put(s, subscription_id, "subscription", sub)
            return sub

        return self._sub_result(subscription_id, self._idempotent(op, key, {"sub": subscription_id, **changes}, run))

    def change_plan(self, subscription_id: str, price_id: str, *, extra_price_id: str | None = None,
                    extra_vehicles: int = 0, idempotency_key: str) -> SubscriptionResult:
        # No proration and the same billing date: the next invoice bills the new prices.
        return self._update_sub("subscription.change_plan", subscription_id, idempotency_key,
                                {"plan": price_id, "extra": self._extra_item(extra_price_id, extra_vehicles),
                                 "proration_behavior": "none"})

    def pause(self, subscription_id: str, *, idempotency_key: str,
              resumes_at: dt.date | None = None) -> SubscriptionResult:
        pause = {"behavior": "void", "resumes_at": to_epoch(resumes_at) if resumes_at else None}
        return self._update_sub("subscription.pause", subscription_id, idempotency_key, {"pause_collection": pause})

    def resume(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.resume", subscription_id, idempotency_key, {"pause_collection": None})

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.cancel", subscription_id, idempotency_key,
                                {"cancel_at_period_end": True})

    def keep_subscription(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.keep", subscription_id, idempotency_key,
                                {"cancel_at_period_end": False})

    def open_invoice(self, subscription_id: str, amount_cents: int) -> str:
        """Test and simulator hook: a renewal failed, so the subscription is past due with this
        invoice open (what Stripe's billing engine does when a renewal charge fails)."""
        with self.db.write() as s:
            sub = self._get(s, subscription_id, "subscription")
            in_id = self._new_id("in")
            self._put(s, in_id, "invoice", {"subscription": subscription_id, "amount_due": amount_cents,
                                            "status": "open"}, sub["customer"])
            sub["status"], sub["latest_invoice"] = "past_due", in_id
            self._put(s, subscription_id, "subscription", sub)
            return in_id

    def pay_open_invoice(self, subscription_id: str, payment_method_id: str, *,
                         idempotency_key: str) -> ChargeResult | None:
        params = {"sub": subscription_id, "pm": payment_method_id}

        def run(s: Session) -> dict | None:
            sub = self._get(s, subscription_id, "subscription")
            inv_id = sub.get("latest_invoice")
            inv = self._get(s, inv_id, "invoice") if inv_id else None
            if inv is None or inv["status"] != "open":
                return None
            pm = self._pm(s, payment_method_id)
            if pm["outcome"] != "ok":
                raise _Declined("generic_decline" if pm["outcome"] == "charge_decline" else pm["outcome"])
            pi_id = self._new_id("pi")
            self._put(s, pi_id, "payment_intent", {"customer": sub["customer"], "payment_method": payment_method_id,
                                                   "amount": inv["amount_due"], "status": "succeeded",
                                                   "refunded": 0, "invoice": inv_id,
                                                   "metadata": {"invoice": inv_id}}, sub["customer"])
            inv["status"], inv["payment_intent"] = "paid", pi_id
            self._put(s, inv_id, "invoice", inv)
            sub["status"] = "active"
            self._put(s, subscription_id, "subscription", sub)
            return {"id": pi_id, "amount": inv["amount_due"]}

        r = self._idempotent("invoice.pay", idempotency_key, params, run)
        return None if r is None else ChargeResult(r["id"], r["amount"], "succeeded", r["id"].replace("pi_", "ch_", 1))

    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult:
        def run(s: Session) -> dict:
            pi = self._get(s, payment_id, "payment_intent", lock=True)
            if pi["status"] != "succeeded":
                raise E.GatewayRejected("Cannot refund a failed payment.")
            left = pi["amount"] - pi.get("refunded", 0)
            amount = left if amount_cents is None else amount_cents
            if not 0 < amount <= left:
                raise E.GatewayRejected(f"Refund amount must be between 0.01 and {left / 100:.2f}.")
            pi["refunded"] = pi.get("refunded", 0) + amount
            self._put(s, payment_id, "payment_intent", pi)
            re_id = self._new_id("re")
            self._put(s, re_id, "refund", {"payment_intent": payment_id, "amount": amount,
                                           "refund_key": idempotency_key}, pi.get("customer"))
            return {"id": re_id, "amount": amount}

        r = self._idempotent("refund.create", idempotency_key, {"pi": payment_id, "amount": amount_cents}, run)
        return RefundResult(r["id"], payment_id, r["amount"], "succeeded")

    def check(self) -> None:
        self._check_online()

    def counts(self, kind: str) -> int:
        with self.db.read() as s:
            return len(s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == kind)).all())


__all__ = ["FAULT_KIND", "IDEMPOTENCY_KEY_TTL", "OUTCOMES", "SimulatedGateway", "outcome_of_token", "sim_token"]
