"""The simulated gateway in person: card-present PaymentIntents and the hosted card page.

A mixin of SimulatedGateway (split from simulated.py to keep each module to one job), on the store's
`_idempotent`, `_put`, `_get` and `_pm`.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import CardPresentPayment, CardPresentSetup, HostedCardPage
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.sim_store import SAVE_DECLINES, outcome_of_token
from db.models import SimGatewayObject


class SimulatedInPerson:
    db: Any
    _idempotent: Any
    _put: Any
    _get: Any
    _pm: Any
    _new_id: Any
    _check_online: Any
    _emit: Any
    _epoch: Any
    _now: Any
    _objects: Any

    # --- card present at the lane (issue 12) -----------------------------------------------------------
    # Like Stripe: the PaymentIntent is created first (requires_payment_method), the reader collects it,
    # then it is paid and a reusable card is made from the presented one and attached to the customer
    # (`generated_card`; for MOTO the keyed card itself). The simulated reader cannot report to this
    # gateway by itself, so the card it read comes in as `presented`.

    @staticmethod
    def _card_present_result(pi_id: str, d: dict[str, Any]) -> CardPresentPayment:
        from clarity_tui.payments.base import CardPresentPayment

        paid = d.get("status") == "succeeded"
        return CardPresentPayment(
            payment_id=pi_id, amount_cents=int(d.get("amount") or 0), status=d.get("status", "unknown"),
            charge_id=pi_id.replace("pi_", "ch_", 1) if paid else None, payment_method_id=d.get("reusable"),
            brand=d.get("brand", "unknown"), last4=d.get("last4", ""), exp_month=int(d.get("exp_month") or 0),
            exp_year=int(d.get("exp_year") or 0), decline_code=d.get("decline"),
            refunded_cents=int(d.get("refunded") or 0),
        )

    def create_card_present_payment(self, customer_id: str | None, amount_cents: int, *, currency: str = "usd",
                                    metadata: dict[str, str] | None = None, moto: bool = False,
                                    save_card: bool = True, idempotency_key: str) -> CardPresentPayment:
        # A one-off payment (save_card=False, a single wash) has no setup_future_usage: no card is kept.
        params = {"customer": customer_id, "amount": amount_cents, "currency": currency, "metadata": metadata or {},
                  "moto": moto, "setup_future_usage": "off_session" if save_card else None}

        def run(s: Session) -> dict:
            if amount_cents <= 0:
                raise E.GatewayRejected("A payment on the reader must be more than zero.")
            if save_card and not customer_id:
                raise E.GatewayRejected("A card kept for renewals needs the customer: sync the customer first.")
            if customer_id:
                self._get(s, customer_id, "customer")
            pi_id = self._new_id("pi")
            data = {**params, "card_present": True, "status": "requires_payment_method", "refunded": 0,
                    "created": self._epoch(s)}
            self._put(s, pi_id, "payment_intent", data, customer_id)
            self._emit(s, "payment_intent.created", "payment_intent", pi_id, data)
            return {"id": pi_id, **data}

        r = self._idempotent("payment_intent.create_card_present", idempotency_key, params, run)
        return self._card_present_result(r["id"], r)

    def card_present_payment(self, payment_id: str, *, presented: CardToken | None = None,
                             idempotency_key: str) -> CardPresentPayment:
        if presented is None:
            self._check_online()
            with self.db.read() as s:
                return self._card_present_result(payment_id, self._get(s, payment_id, "payment_intent"))

        def run(s: Session) -> dict:
            pi = self._get(s, payment_id, "payment_intent")
            if pi.get("status") != "requires_payment_method":
                return {"id": payment_id, **pi}  # paid or cancelled already: the reader changes nothing
            pm = self._pm(s, presented)
            pi.update(brand=pm["brand"], last4=pm["last4"], exp_month=pm["exp_month"], exp_year=pm["exp_year"])
            if pm["outcome"] in SAVE_DECLINES | {"charge_decline"}:
                pi["decline"] = "generic_decline" if pm["outcome"] == "charge_decline" else pm["outcome"]
                pi["last_payment_error"] = {"type": "card_error", "code": "card_declined",
                                            "decline_code": pi["decline"]}
                event = "payment_intent.payment_failed"
            elif not pi.get("setup_future_usage"):  # one-off: paid, and the card is not kept
                pm.pop("id")
                pi.update(status="succeeded", payment_method=presented.payment_method_id, reusable=None,
                          decline=None, last_payment_error=None)
                event = "payment_intent.succeeded"
            else:
                customer = pi["customer"]
                if pi.get("moto"):
                    reusable = pm.pop("id")
                else:
                    reusable = f"pm_sim_{pm['outcome']}_gen{secrets.token_hex(5)}"
                    pm.pop("id")
                self._put(s, reusable, "payment_method", {**pm, "customer": customer}, customer)
                self._emit(s, "payment_method.attached", "payment_method", reusable, {**pm, "customer": customer})
                pi.update(status="succeeded", payment_method=presented.payment_method_id, reusable=reusable,
                          decline=None, last_payment_error=None)
                event = "payment_intent.succeeded"
            self._put(s, payment_id, "payment_intent", pi)
            self._emit(s, event, "payment_intent", payment_id, pi)
            return {"id": payment_id, **pi}

        r = self._idempotent("payment_intent.process", idempotency_key,
                             {"pi": payment_id, "pm": presented.payment_method_id}, run)
        return self._card_present_result(payment_id, r)

    def cancel_card_present_payment(self, payment_id: str, *, idempotency_key: str) -> CardPresentPayment:
        def run(s: Session) -> dict:
            pi = self._get(s, payment_id, "payment_intent")
            if pi.get("status") not in ("succeeded", "canceled"):
                pi["status"] = "canceled"
                self._put(s, payment_id, "payment_intent", pi)
                self._emit(s, "payment_intent.canceled", "payment_intent", payment_id, pi)
            return {"id": payment_id, **pi}

        self._idempotent("payment_intent.cancel", idempotency_key, {"pi": payment_id}, run)
        # The stored answer may be older than the payment: report its state now.
        return self.card_present_payment(payment_id, idempotency_key=idempotency_key)

    def find_card_present_payment(self, customer_id: str | None, order_key: str, *, save_card: bool = True,
                                  include_refunded: bool = False) -> CardPresentPayment | None:
        if save_card:
            if not customer_id:
                return None  # a card-saving payment is always the customer's
            intents = self._objects("payment_intent", customer_id)
        else:  # one-off: whoever it was for (maybe nobody), by its metadata
            intents = [(i, d) for i, d in self._all_payment_intents() if not d.get("setup_future_usage")]
        for pi_id, d in intents:
            if (d.get("card_present") and d.get("status") == "succeeded"
                    and (d.get("metadata") or {}).get("order_key") == order_key
                    and (include_refunded  # else a fully refunded one is undone
                         or int(d.get("refunded") or 0) < int(d.get("amount") or 0))):
                return self._card_present_result(pi_id, d)
        return None

    def _all_payment_intents(self) -> list[tuple[str, dict[str, Any]]]:
        self._check_online()
        with self.db.read() as s:
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")
                          .order_by(col(SimGatewayObject.created_at))).all()
            return [(row.id, dict(row.data or {})) for row in rows]

    # --- save a card on the reader (a card_present SetupIntent) -------------------------------------------
    # Like Stripe: the SetupIntent is created for the customer first, the reader processes it, then a
    # reusable card is made from the presented one and attached to the customer (`generated_card`).

    @staticmethod
    def _card_present_setup_result(seti_id: str, d: dict[str, Any]) -> CardPresentSetup:
        from clarity_tui.payments.base import CardPresentSetup

        done = d.get("status") == "succeeded"
        return CardPresentSetup(
            setup_id=seti_id, status=d.get("status", "unknown"), payment_method_id=d.get("reusable") if done else None,
            brand=d.get("brand", "unknown"), last4=d.get("last4", ""), exp_month=int(d.get("exp_month") or 0),
            exp_year=int(d.get("exp_year") or 0), decline_code=d.get("decline"),
        )

    def create_card_present_setup(self, customer_id: str, *, metadata: dict[str, str] | None = None,
                                  idempotency_key: str) -> CardPresentSetup:
        params = {"customer": customer_id, "metadata": metadata or {}, "usage": "off_session"}

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            seti_id = self._new_id("seti")
            data = {**params, "card_present": True, "status": "requires_payment_method", "created": self._epoch(s)}
            self._put(s, seti_id, "setup_intent", data, customer_id)
            self._emit(s, "setup_intent.created", "setup_intent", seti_id, data)
            return {"id": seti_id, **data}

        r = self._idempotent("setup_intent.create_card_present", idempotency_key, params, run)
        return self._card_present_setup_result(r["id"], r)

    def card_present_setup(self, setup_id: str, *, presented: CardToken | None = None,
                           idempotency_key: str) -> CardPresentSetup:
        if presented is None:
            self._check_online()
            with self.db.read() as s:
                return self._card_present_setup_result(setup_id, self._get(s, setup_id, "setup_intent"))

        def run(s: Session) -> dict:
            seti = self._get(s, setup_id, "setup_intent")
            if seti.get("status") != "requires_payment_method":
                return {"id": setup_id, **seti}  # saved or cancelled already: the reader changes nothing
            pm = self._pm(s, presented)
            seti.update(brand=pm["brand"], last4=pm["last4"], exp_month=pm["exp_month"], exp_year=pm["exp_year"])
            today = self._now(s).date()
            expired = bool(pm["exp_year"]) and (pm["exp_year"], pm["exp_month"]) < (today.year, today.month)
            if pm["outcome"] in SAVE_DECLINES or expired:
                seti["decline"] = "expired_card" if expired else pm["outcome"]
                event = "setup_intent.setup_failed"
            else:
                customer = seti["customer"]
                reusable = f"pm_sim_{pm['outcome']}_gen{secrets.token_hex(5)}"
                pm.pop("id")
                self._put(s, reusable, "payment_method", {**pm, "customer": customer}, customer)
                self._emit(s, "payment_method.attached", "payment_method", reusable, {**pm, "customer": customer})
                seti.update(status="succeeded", payment_method=presented.payment_method_id, reusable=reusable,
                            decline=None)
                event = "setup_intent.succeeded"
            self._put(s, setup_id, "setup_intent", seti)
            self._emit(s, event, "setup_intent", setup_id, seti)
            return {"id": setup_id, **seti}

        r = self._idempotent("setup_intent.process", idempotency_key,
                             {"seti": setup_id, "pm": presented.payment_method_id}, run)
        return self._card_present_setup_result(setup_id, r)

    def cancel_card_present_setup(self, setup_id: str, *, idempotency_key: str) -> CardPresentSetup:
        def run(s: Session) -> dict:
            seti = self._get(s, setup_id, "setup_intent")
            if seti.get("status") not in ("succeeded", "canceled"):
                seti["status"] = "canceled"
                self._put(s, setup_id, "setup_intent", seti)
                self._emit(s, "setup_intent.canceled", "setup_intent", setup_id, seti)
            return {"id": setup_id, **seti}

        self._idempotent("setup_intent.cancel", idempotency_key, {"seti": setup_id}, run)
        # The stored answer may be older than the SetupIntent: report its state now.
        return self.card_present_setup(setup_id, idempotency_key=idempotency_key)

    def find_card_present_setup(self, customer_id: str, save_key: str) -> CardPresentSetup | None:
        for seti_id, d in self._objects("setup_intent", customer_id):
            if (d.get("card_present") and d.get("status") == "succeeded"
                    and (d.get("metadata") or {}).get("save_key") == save_key):
                return self._card_present_setup_result(seti_id, d)
        return None

    def create_hosted_card_page(self, customer_id: str, *, currency: str = "usd", success_url: str,
                                metadata: dict[str, str] | None = None,
                                idempotency_key: str) -> HostedCardPage:
        params = {"customer": customer_id, "currency": currency, "success_url": success_url,
                  "metadata": metadata or {}}

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            sid = self._new_id("cs")
            data = {**params, "status": "open", "url": f"https://pay.simulated.invalid/setup/{sid}"}
            self._put(s, sid, "checkout_session", data, customer_id)
            return {"id": sid, **data}

        r = self._idempotent("checkout.session.create", idempotency_key, params, run)
        return self.hosted_card_page(r["id"])

    def hosted_card_page(self, session_id: str) -> HostedCardPage:
        from clarity_tui.payments.base import HostedCardPage

        self._check_online()
        with self.db.read() as s:
            d = self._get(s, session_id, "checkout_session")
            pm = self._get(s, d["payment_method"], "payment_method") if d.get("payment_method") else {}
        return HostedCardPage(session_id, d["status"], d.get("url"), d.get("payment_method"),
                              pm.get("brand", "unknown"), pm.get("last4", ""), int(pm.get("exp_month") or 0),
                              int(pm.get("exp_year") or 0))

    def complete_hosted_card_page(self, session_id: str, card: CardToken) -> None:
        """The customer filled in the hosted page on their phone (the simulator and tests): the card is
        saved on the page's customer, and the page is complete."""
        with self.db.write() as s:
            d = self._get(s, session_id, "checkout_session")
            outcome = outcome_of_token(card.payment_method_id) if card.payment_method_id.startswith("pm_sim_") else "ok"
            pm = {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month, "exp_year": card.exp_year,
                  "outcome": outcome, "customer": d["customer"], "created": self._epoch(s)}
            self._put(s, card.payment_method_id, "payment_method", pm, d["customer"])
            self._emit(s, "payment_method.attached", "payment_method", card.payment_method_id, pm)
            d.update(status="complete", payment_method=card.payment_method_id)
            self._put(s, session_id, "checkout_session", d)
            self._emit(s, "checkout.session.completed", "checkout.session", session_id, d)
