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

By job (issue 13): this module holds customers, cards, the catalogue (plans, coupons, tax rates) and
one-off charges and refunds; subscriptions are in sim_subscriptions.py, invoices and the billing clock
(`advance_clock`, `clock_now`) in sim_clock.py, the lifecycle reads (events, fresh objects) and the
card-network and bank hooks in sim_lifecycle.py, Stripe's event and object shapes in sim_events.py.
Every state change emits its Stripe event (`list_events`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import (
    ChargeResult,
    CouponSpec,
    CustomerInfo,
    PaymentGateway,
    PlanSpec,
    RefundResult,
    SyncedPlan,
)
from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard
from clarity_tui.payments.lifecycle import TaxRateSpec
from clarity_tui.payments.sim_clock import SimulatedBilling
from clarity_tui.payments.sim_lifecycle import SimulatedLifecycle
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
from clarity_tui.payments.sim_subscriptions import SimulatedSubscriptions
from clarity_tui.payments.simulated_in_person import SimulatedInPerson
from db.models import SimGatewayObject

# A key marked in flight by a process that died (never stored an answer) may be taken over after this.
IN_FLIGHT_LEASE = dt.timedelta(seconds=30)
LATENCY_ENV = "CLARITY_SIM_GATEWAY_LATENCY"


class SimulatedGateway(SimulatedSubscriptions, SimulatedBilling, SimulatedLifecycle, SimulatedInPerson,
                       SimulatedStore, PaymentGateway):
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
            data = {**params, "default_payment_method": None, "created": self._epoch(s)}
            self._put(s, cid, "customer", data)
            self._emit(s, "customer.created", "customer", cid, data)
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
                seti_data = {"customer": customer_id, "payment_method": pm["id"], "status": "canceled",
                             "last_setup_error": {"code": "card_declined", "decline_code": pm["outcome"]}}
                self._put(s, seti, "setup_intent", seti_data, customer_id)
                self._emit(s, "setup_intent.setup_failed", "setup_intent", seti, seti_data)
                raise _Declined(pm["outcome"])
            today = self._now(s).date()
            if (pm["exp_year"], pm["exp_month"]) < (today.year, today.month) and pm["exp_year"]:
                raise _Declined("expired_card")
            seti_data = {"customer": customer_id, "payment_method": pm["id"], "status": "succeeded"}
            self._put(s, seti, "setup_intent", seti_data, customer_id)
            self._emit(s, "setup_intent.succeeded", "setup_intent", seti, seti_data)
            pm_id = pm.pop("id")
            pm["customer"] = customer_id
            pm.setdefault("created", self._epoch(s))
            self._put(s, pm_id, "payment_method", pm, customer_id)
            self._emit(s, "payment_method.attached", "payment_method", pm_id, pm)
            if make_default:
                before = dict(cust)
                cust["default_payment_method"] = pm_id
                self._put(s, customer_id, "customer", cust)
                self._emit(s, "customer.updated", "customer", customer_id, cust, before=before)
            return {"id": pm_id, **{k: pm[k] for k in ("brand", "last4", "exp_month", "exp_year")}}

        r = self._idempotent("setup_intent.confirm", idempotency_key, params, run)
        return SavedCard(r["id"], r["brand"], r["last4"], r["exp_month"], r["exp_year"], is_default=make_default)

    def list_cards(self, customer_id: str) -> list[SavedCard]:
        self._check_online()
        with self.db.read() as s:
            cust = self._get(s, customer_id, "customer")
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_method",
                                                         SimGatewayObject.customer == customer_id)
                          .order_by(col(SimGatewayObject.created_at))).all()
            return [SavedCard(r.id, r.data["brand"], r.data["last4"], r.data["exp_month"], r.data["exp_year"],
                              is_default=r.id == cust.get("default_payment_method"))
                    for r in rows if r.data.get("customer") == customer_id]

    def set_default_card(self, customer_id: str, payment_method_id: str, *, idempotency_key: str) -> None:
        def run(s: Session) -> None:
            cust = self._get(s, customer_id, "customer")
            pm = self._get(s, payment_method_id, "payment_method")
            if pm.get("customer") != customer_id:
                raise E.GatewayRejected("That card is not saved on this customer.")
            before = dict(cust)
            cust["default_payment_method"] = payment_method_id
            self._put(s, customer_id, "customer", cust)
            if cust != before:
                self._emit(s, "customer.updated", "customer", customer_id, cust, before=before)

        self._idempotent("customer.update", idempotency_key, {"c": customer_id, "pm": payment_method_id}, run)

    def detach_card(self, payment_method_id: str, *, idempotency_key: str) -> None:
        def run(s: Session) -> None:
            pm = self._get(s, payment_method_id, "payment_method")
            owner = pm.get("customer")
            before = dict(pm)
            pm["customer"] = None
            self._put(s, payment_method_id, "payment_method", pm)
            row = s.get(SimGatewayObject, payment_method_id)
            if row is not None:  # _put above stored it
                row.customer = None
            if owner:
                self._emit(s, "payment_method.detached", "payment_method", payment_method_id, pm, before=before)
                cust = self._get(s, owner, "customer")
                if cust.get("default_payment_method") == payment_method_id:
                    before = dict(cust)
                    cust["default_payment_method"] = None
                    self._put(s, owner, "customer", cust)
                    self._emit(s, "customer.updated", "customer", owner, cust, before=before)

        self._idempotent("payment_method.detach", idempotency_key, {"pm": payment_method_id}, run)

    # --- catalogue ----------------------------------------------------------------------------
    @staticmethod
    def catalogue_ids(plan: PlanSpec) -> SyncedPlan:
        """The fixed ids `sync_plan` gives a plan's product and prices."""
        return SyncedPlan(f"clarity-{plan.code}".lower(),
                          f"clarity-{plan.code}-{plan.price_cents}-{plan.interval}".lower(),
                          f"clarity-{plan.code}-extra-{plan.extra_vehicle_price_cents}-{plan.interval}".lower()
                          if plan.extra_vehicle_price_cents > 0 else None)

    def sync_plan(self, plan: PlanSpec) -> SyncedPlan:
        self._check_online()
        ids = self.catalogue_ids(plan)
        product_id, price_id, extra_id = ids.product_id, ids.price_id, ids.extra_price_id
        objects = [(product_id, "product", {"name": plan.name})] + [
            (pid, "plan", {"product": product_id, "amount": amount, "currency": plan.currency,
                           "interval": plan.interval})
            for pid, amount in ((price_id, plan.price_cents), (extra_id, plan.extra_vehicle_price_cents))
            if pid is not None]
        self._create_missing(objects)
        return ids

    def _create_missing(self, objects: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Catalogue objects by fixed id, created once: a terminal that loses the race to create one
        (PostgreSQL: a unique violation) finds it made, as Stripe answers `resource_already_exists`."""
        for obj_id, kind, data in objects:
            try:
                with self.db.write() as s:
                    if s.get(SimGatewayObject, obj_id) is None:
                        self._put(s, obj_id, kind, {**data, "created": self._epoch(s)})
                        self._emit(s, f"{kind}.created", kind, obj_id, {**data, "created": self._epoch(s)})
            except IntegrityError:
                continue

    def sync_coupon(self, coupon: CouponSpec) -> str:
        self._check_online()
        cid = f"clarity-{coupon.code}".lower()
        self._create_missing([(cid, "coupon", {"percent_off": coupon.percent_off,
                                               "amount_off": coupon.amount_off_cents, "duration": coupon.duration})])
        return cid

    def sync_tax_rate(self, spec: TaxRateSpec) -> str:
        self._check_online()
        pct = format(spec.percentage.normalize(), "f")
        key = f"{spec.display_name}|{pct}|{'inclusive' if spec.inclusive else 'exclusive'}"
        txr = f"txr_clarity_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        self._create_missing([(txr, "tax_rate", {"display_name": spec.display_name, "percentage": pct,
                                                 "inclusive": bool(spec.inclusive)})])
        return txr

    # --- money ----------------------------------------------------------------------------------------
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
                data = {**params, "status": "requires_payment_method", "decline": code, "created": self._epoch(s),
                        "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": code}}
                self._put(s, pi_id, "payment_intent", data, customer_id)
                self._emit(s, "payment_intent.payment_failed", "payment_intent", pi_id, data)
                raise _Declined(code)
            data = {**params, "status": "succeeded", "refunded": 0, "created": self._epoch(s)}
            self._put(s, pi_id, "payment_intent", data, customer_id)
            self._emit(s, "payment_intent.succeeded", "payment_intent", pi_id, data)
            return {"id": pi_id, "status": "succeeded", "amount": amount_cents}

        r = self._idempotent("payment_intent.create", idempotency_key, params, run)
        return ChargeResult(r["id"], r["amount"], r["status"], r["id"].replace("pi_", "ch_", 1))

    def _objects(self, kind: str, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
        self._check_online()
        with self.db.read() as s:
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind,
                                                         SimGatewayObject.customer == customer_id)
                          .order_by(col(SimGatewayObject.created_at))).all()
            return [(row.id, dict(row.data or {})) for row in rows]

    def find_charge(self, customer_id: str, order_key: str) -> ChargeResult | None:
        for pi_id, d in self._objects("payment_intent", customer_id):
            if d.get("status") == "succeeded" and (d.get("metadata") or {}).get("order_key") == order_key:
                return ChargeResult(pi_id, d["amount"], "succeeded", pi_id.replace("pi_", "ch_", 1))
        return None

    def find_refund(self, payment_id: str, refund_key: str) -> RefundResult | None:
        self._check_online()
        with self.db.read() as s:
            for row in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "refund")).all():
                d = row.data or {}
                if d.get("payment_intent") == payment_id and d.get("refund_key") == refund_key:
                    return RefundResult(row.id, payment_id, d["amount"], "succeeded")
        return None

    def refund(self, payment_id: str, *, amount_cents: int | None = None, idempotency_key: str) -> RefundResult:
        def run(s: Session) -> dict:
            pi = self._get(s, payment_id, "payment_intent", lock=True)
            if pi["status"] != "succeeded":
                raise E.GatewayRejected("Cannot refund a failed payment.")
            left = pi["amount"] - pi.get("refunded", 0)
            amount = left if amount_cents is None else amount_cents
            if not 0 < amount <= left:
                raise E.GatewayRejected(f"Refund amount must be between 0.01 and {left / 100:.2f}.")
            before = dict(pi)
            pi["refunded"] = pi.get("refunded", 0) + amount
            self._put(s, payment_id, "payment_intent", pi)
            re_id = self._new_id("re")
            self._put(s, re_id, "refund", {"payment_intent": payment_id, "amount": amount, "created": self._epoch(s),
                                           "refund_key": idempotency_key}, pi.get("customer"))
            self._emit(s, "charge.refunded", "charge", payment_id, pi, before=before)
            return {"id": re_id, "amount": amount}

        r = self._idempotent("refund.create", idempotency_key, {"pi": payment_id, "amount": amount_cents}, run)
        return RefundResult(r["id"], payment_id, r["amount"], "succeeded")

    def check(self) -> None:
        self._check_online()

    def counts(self, kind: str) -> int:
        with self.db.read() as s:
            return len(s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == kind)).all())


__all__ = ["FAULT_KIND", "IDEMPOTENCY_KEY_TTL", "OUTCOMES", "SimulatedGateway", "outcome_of_token", "sim_token"]
