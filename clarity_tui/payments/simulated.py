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
stored result (or the same decline) and never charges twice; the same key with
other parameters raises IdempotencyConflict. Set `online = False` to simulate
the network being down (GatewayUnavailable).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
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
from clarity_tui.sitetime import stored_utc
from db.models import SimGatewayObject, SimGatewayRequest, utcnow

OUTCOMES = ("ok", "generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc", "charge_decline")
SAVE_DECLINES = {"generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc"}
# Like Stripe, an idempotency key is forgotten after a day: the same key then acts again.
IDEMPOTENCY_KEY_TTL = dt.timedelta(hours=24)
TEST_CARDS = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000341": "charge_decline",
}


def sim_token(outcome: str = "ok") -> str:
    """A simulated reader's payment method id that leads to `outcome`."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown simulated card outcome {outcome!r}; one of {OUTCOMES}")
    return f"pm_sim_{outcome}_{secrets.token_hex(6)}"


def outcome_of_token(token: str) -> str:
    rest = token.removeprefix("pm_sim_")
    for outcome in sorted(OUTCOMES, key=len, reverse=True):
        if rest.startswith(outcome):
            return outcome
    return "ok"


class _Declined(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


class SimulatedGateway(PaymentGateway):
    name = "simulated"

    def __init__(self, db: Any, *, currency: str = "usd") -> None:
        self.db = db
        self.currency = currency
        self.online = True

    # --- plumbing ---------------------------------------------------------------------
    def _check_online(self) -> None:
        if not self.online:
            raise E.GatewayUnavailable(
                "Cannot reach the payment gateway (simulated network down). The order is kept and will sync "
                "when the network is back."
            )

    def _idempotent(self, operation: str, key: str, params: dict[str, Any], run) -> dict[str, Any]:  # noqa: ANN001
        """Run `run(session)` once per key; replay its stored response (or decline) afterwards."""
        self._check_online()
        digest = hashlib.sha256(json.dumps([operation, params], sort_keys=True, default=str).encode()).hexdigest()
        for _ in range(3):
            try:
                with self.db.write() as s:
                    prior = s.get(SimGatewayRequest, key)
                    if prior is not None and utcnow() - stored_utc(prior.created_at) > IDEMPOTENCY_KEY_TTL:
                        s.delete(prior)  # pruned, as Stripe does
                        s.flush()
                        prior = None
                    if prior is None:
                        try:
                            response = {"ok": run(s)}
                        except _Declined as d:
                            response = {"declined": d.code}
                        s.add(SimGatewayRequest(idempotency_key=key, operation=operation, request_hash=digest,
                                                response=response))
                    elif prior.request_hash != digest:
                        raise E.IdempotencyConflict(
                            "The gateway saw this step before with other details; it was not repeated. "
                            "Ask a technician."
                        )
                    else:
                        response = prior.response or {}
                break
            except IntegrityError:  # another terminal stored the same key first: read its result
                continue
        if "declined" in response:
            raise E.declined(response["declined"])
        return response["ok"]

    @staticmethod
    def _new_id(prefix: str) -> str:
        return f"{prefix}_sim_{secrets.token_hex(8)}"

    @staticmethod
    def _put(s: Session, obj_id: str, kind: str, data: dict[str, Any], customer: str | None = None) -> dict:
        row = s.get(SimGatewayObject, obj_id)
        if row is None:
            row = SimGatewayObject(id=obj_id, kind=kind, customer=customer, data=data)
        else:
            row.data, row.updated_at = data, utcnow()
            if customer is not None:
                row.customer = customer
        s.add(row)
        return data

    @staticmethod
    def _get(s: Session, obj_id: str, kind: str) -> dict[str, Any]:
        row = s.get(SimGatewayObject, obj_id)
        if row is None or row.kind != kind:
            raise E.GatewayRejected(f"The payment gateway has no {kind.replace('_', ' ')} {obj_id}.")
        return dict(row.data or {})

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
        with self.db.write() as s:
            if s.get(SimGatewayObject, product_id) is None:
                self._put(s, product_id, "product", {"name": plan.name})
            if s.get(SimGatewayObject, price_id) is None:
                self._put(s, price_id, "plan", {"product": product_id, "amount": plan.price_cents,
                                                "currency": plan.currency, "interval": plan.interval})
        return SyncedPlan(product_id, price_id)

    def sync_coupon(self, coupon: CouponSpec) -> str:
        self._check_online()
        cid = f"clarity-{coupon.code}".lower()
        with self.db.write() as s:
            if s.get(SimGatewayObject, cid) is None:
                self._put(s, cid, "coupon", {"percent_off": coupon.percent_off,
                                             "amount_off": coupon.amount_off_cents, "duration": coupon.duration})
        return cid

    # --- subscriptions and money ----------------------------------------------------------------
    @staticmethod
    def _sub_result(sub_id: str, d: dict[str, Any]) -> SubscriptionResult:
        return SubscriptionResult(
            subscription_id=sub_id, status=d["status"], plan_price_id=d["plan"],
            trial_end=dt.datetime.fromtimestamp(d["trial_end"], dt.UTC) if d.get("trial_end") else None,
            cancel_at_period_end=d.get("cancel_at_period_end", False), paused=bool(d.get("pause_collection")),
            coupon_id=d.get("coupon"),
        )

    def create_subscription(self, customer_id: str, price_id: str, *, first_billing: dt.date | dt.datetime,
                            coupon_id: str | None = None, metadata: dict[str, str] | None = None,
                            idempotency_key: str) -> SubscriptionResult:
        params = {"customer": customer_id, "plan": price_id, "trial_end": to_epoch(first_billing),
                  "coupon": coupon_id, "metadata": metadata or {}}

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            self._get(s, price_id, "plan")
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
            sub.update(changes)
            self._put(s, subscription_id, "subscription", sub)
            return sub

        return self._sub_result(subscription_id, self._idempotent(op, key, {"sub": subscription_id, **changes}, run))

    def change_plan(self, subscription_id: str, price_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.change_plan", subscription_id, idempotency_key, {"plan": price_id})

    def pause(self, subscription_id: str, *, idempotency_key: str,
              resumes_at: dt.date | None = None) -> SubscriptionResult:
        pause = {"behavior": "void", "resumes_at": to_epoch(resumes_at) if resumes_at else None}
        return self._update_sub("subscription.pause", subscription_id, idempotency_key, {"pause_collection": pause})

    def resume(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.resume", subscription_id, idempotency_key, {"pause_collection": None})

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.cancel", subscription_id, idempotency_key,
                                {"cancel_at_period_end": True})

    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult:
        def run(s: Session) -> dict:
            pi = self._get(s, payment_id, "payment_intent")
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
