"""The simulated gateway's subscriptions: create, change, pause, resume, cancel, keep, pay the open invoice.

A mixin of SimulatedGateway (split from simulated.py by job). Subscriptions are stored with Stripe's
fields (status, current_period_start/end, trial_start/end, billing_cycle_anchor, cancel_at_period_end,
cancel_at, canceled_at, ended_at, pause_collection, latest_invoice, plan and the extra vehicle item,
coupon, metadata, default_tax_rates) and rendered as Stripe renders them in their events (sim_events).
A subscription created with `trial_end` is "trialing" with its period running from its creation (the
billing clock's time) to the trial's end; the billing clock (sim_clock) bills it from then on.

Every change emits its event in the same transaction: customer.subscription.created, and
customer.subscription.updated with data.previous_attributes for a pause or resume of collection
(`pause_collection`: in Stripe a subscription whose collection is paused keeps its status, so these are
updates, never customer.subscription.paused/resumed), cancel_at_period_end, keep and a plan change.
customer.subscription.paused/resumed are for status "paused" only, as in Stripe: a trial that ends with
no card on a subscription whose trial_settings say "pause" (sim_clock), and `resume()` of such a one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import ChargeResult, SubscriptionResult, to_epoch
from clarity_tui.payments.sim_clock import DAY, RETRY_DAYS, invoice_totals, next_period_end
from clarity_tui.payments.sim_events import period_of
from clarity_tui.payments.sim_store import _Declined


class SimulatedSubscriptions:
    db: Any
    currency: str
    _idempotent: Any
    _put: Any
    _get: Any
    _pm: Any
    _new_id: Any
    _emit: Any
    _epoch: Any
    _objects: Any
    _card_decline: Any
    _default_card: Any
    _cycle_invoice: Any
    _mark_paid: Any
    _mark_failed: Any
    _open_invoices_of: Any
    _settle_status: Any

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
                            tax_rate_ids: Sequence[str] = (), idempotency_key: str) -> SubscriptionResult:
        params: dict[str, Any] = {"customer": customer_id, "plan": price_id, "trial_end": to_epoch(first_billing),
                  "coupon": coupon_id, "metadata": metadata or {},
                  "extra": self._extra_item(extra_price_id, extra_vehicles)}
        if tax_rate_ids:
            params["default_tax_rates"] = list(tax_rate_ids)

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            self._get(s, price_id, "plan")
            if params["extra"]:
                self._get(s, params["extra"]["plan"], "plan")
            if coupon_id:
                self._get(s, coupon_id, "coupon")
            for txr in tax_rate_ids:
                self._get(s, txr, "tax_rate")
            sub_id, now = self._new_id("sub"), self._epoch(s)
            data = {**params, "status": "trialing", "cancel_at_period_end": False, "pause_collection": None,
                    "default_tax_rates": list(tax_rate_ids), "created": now, "trial_start": now,
                    "current_period_start": now, "current_period_end": params["trial_end"],
                    "billing_cycle_anchor": params["trial_end"], "latest_invoice": None, "cancel_at": None,
                    "canceled_at": None, "ended_at": None}
            self._put(s, sub_id, "subscription", data, customer_id)
            self._emit(s, "customer.subscription.created", "subscription", sub_id, data)
            return {"id": sub_id, **data}

        r = self._idempotent("subscription.create", idempotency_key, params, run)
        return self._sub_result(r["id"], r)

    def find_subscription(self, customer_id: str, order_key: str) -> SubscriptionResult | None:
        for sub_id, d in self._objects("subscription", customer_id):
            if d.get("status") != "canceled" and (d.get("metadata") or {}).get("order_key") == order_key:
                return self._sub_result(sub_id, d)
        return None

    def _update_sub(self, op: str, subscription_id: str, key: str, changes: dict[str, Any],
                    derived=None) -> SubscriptionResult:
        """Change the subscription (locked: the billing clock may be renewing it); `derived(s, sub)` gives
        the fields that follow from the change (not part of the request)."""
        def run(s: Session) -> dict:
            sub = self._get(s, subscription_id, "subscription", lock=True)
            if sub["status"] == "canceled":
                raise E.GatewayRejected("That membership's subscription is already cancelled.")
            if "plan" in changes:
                self._get(s, changes["plan"], "plan")
            if changes.get("extra"):
                self._get(s, changes["extra"]["plan"], "plan")
            before = dict(sub)
            sub.update(changes)
            if derived is not None:
                sub.update(derived(s, sub))
            self._put(s, subscription_id, "subscription", sub)
            if sub != before:
                self._emit(s, "customer.subscription.updated", "subscription", subscription_id, sub, before=before)
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
        """Resume collection (pause_collection cleared). A subscription in status "paused" (a trial that
        ended with no card) resumes as Stripe's resume endpoint does: a new period from now, its invoice
        paid at once with the customer's default card (a card that cannot pay: declined, still paused)."""
        def run(s: Session) -> dict:
            sub = self._get(s, subscription_id, "subscription", lock=True)
            if sub["status"] == "canceled":
                raise E.GatewayRejected("That membership's subscription is already cancelled.")
            before = dict(sub)
            sub["pause_collection"] = None
            if sub["status"] == "paused":
                now, pm_id = self._epoch(s), self._default_card(s, sub)
                code = self._card_decline(s, pm_id, now)
                if code is not None:
                    raise _Declined("generic_decline" if code == "missing_payment_method" else code)
                interval = self._get(s, sub["plan"], "plan").get("interval", "month")
                end = next_period_end(now, now, interval)
                sub.update(status="active", current_period_start=now, current_period_end=end, billing_cycle_anchor=now)
                inv_id, inv = self._cycle_invoice(s, subscription_id, sub, now, end, now, previous=period_of(before),
                                                  reason="subscription_update")
                inv["attempt_count"] = 1
                self._mark_paid(s, inv_id, inv, pm_id, now)
                sub["latest_invoice"] = inv_id
            self._put(s, subscription_id, "subscription", sub)
            if sub != before:
                self._emit(s, "customer.subscription.updated", "subscription", subscription_id, sub, before=before)
            if before["status"] == "paused":
                self._emit(s, "customer.subscription.resumed", "subscription", subscription_id, sub)
            return sub

        return self._sub_result(subscription_id, self._idempotent(
            "subscription.resume", idempotency_key, {"sub": subscription_id, "pause_collection": None}, run))

    def cancel_at_period_end(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.cancel", subscription_id, idempotency_key,
                                {"cancel_at_period_end": True},
                                lambda s, sub: {"cancel_at": period_of(sub)[1], "canceled_at": self._epoch(s)})

    def keep_subscription(self, subscription_id: str, *, idempotency_key: str) -> SubscriptionResult:
        return self._update_sub("subscription.keep", subscription_id, idempotency_key,
                                {"cancel_at_period_end": False},
                                lambda s, sub: {"cancel_at": None, "canceled_at": None})

    # --- past due -----------------------------------------------------------------------------------------
    def open_invoice(self, subscription_id: str, amount_cents: int, *, decline_code: str = "insufficient_funds") -> str:
        """Test and simulator hook: a renewal of `amount_cents` failed (`decline_code`), so the subscription
        is past due with this invoice open, retried by the billing clock (what Stripe's billing engine does
        when a renewal charge fails). Emits invoice.created/finalized/payment_failed and the
        subscription's update."""
        with self.db.write() as s:
            sub = self._get(s, subscription_id, "subscription", lock=True)
            before, now = dict(sub), self._epoch(s)
            start, end = period_of(sub)
            in_id, pm_id = self._new_id("in"), self._default_card(s, sub)
            inv = {"subscription": subscription_id, "customer": sub["customer"], "status": "open", "created": now,
                   "currency": self.currency, "billing_reason": "subscription_cycle",
                   "lines": [{"id": f"il_{in_id.split('_', 1)[-1]}", "amount": amount_cents, "quantity": 1,
                              "currency": self.currency, "description": "Renewal", "proration": False,
                              "period": {"start": start or now, "end": end or now}, "subscription": subscription_id}],
                   **invoice_totals([amount_cents], None, []), "attempt_count": 1,
                   "period_start": start, "period_end": end, "payment_intent": None, "charge": None,
                   "status_transitions": {"finalized_at": now, "paid_at": None, "marked_uncollectible_at": None,
                                          "voided_at": None},
                   "sim": {"auto_attempts": 1, "rate_failure": True, "failed_pm": pm_id}}
            self._put(s, in_id, "invoice", inv, sub["customer"])
            self._emit(s, "invoice.created", "invoice", in_id, inv)
            self._emit(s, "invoice.finalized", "invoice", in_id, inv)
            self._mark_failed(s, in_id, inv, pm_id, decline_code, now, next_attempt=now + RETRY_DAYS[0] * DAY,
                              make_intent=False)
            if sub["status"] not in ("canceled", "paused"):
                sub["status"] = "past_due"
            sub["latest_invoice"] = in_id
            self._put(s, subscription_id, "subscription", sub)
            self._emit(s, "customer.subscription.updated", "subscription", subscription_id, sub, before=before)
            return in_id

    def pay_open_invoice(self, subscription_id: str, payment_method_id: str, *,
                         idempotency_key: str) -> ChargeResult | None:
        params = {"sub": subscription_id, "pm": payment_method_id}

        def run(s: Session) -> dict | None:
            sub = self._get(s, subscription_id, "subscription", lock=True)
            open_ = dict(self._open_invoices_of(s, subscription_id, sub["customer"]))
            inv_id = sub.get("latest_invoice") if sub.get("latest_invoice") in open_ else next(iter(open_), None)
            if inv_id is None:
                return None
            inv = self._get(s, inv_id, "invoice", lock=True)
            if inv.get("status") != "open":
                return None
            pm = self._pm(s, payment_method_id)
            now = self._epoch(s)
            inv["attempt_count"] = int(inv.get("attempt_count") or 0) + 1
            code = self._card_decline(s, pm["id"], now)
            if code is not None:  # a manual attempt: the automatic retries keep their schedule
                self._mark_failed(s, inv_id, inv, pm["id"], code, now, next_attempt=inv.get("next_payment_attempt"),
                                  make_intent=False)
                raise _Declined(code)
            pi = self._mark_paid(s, inv_id, inv, payment_method_id, now)
            before = dict(sub)
            self._settle_status(s, subscription_id, sub)
            self._put(s, subscription_id, "subscription", sub)
            if sub != before:
                self._emit(s, "customer.subscription.updated", "subscription", subscription_id, sub, before=before)
            return {"id": pi["id"], "amount": pi["amount"]} if pi else None

        r = self._idempotent("invoice.pay", idempotency_key, params, run)
        return None if r is None else ChargeResult(r["id"], r["amount"], "succeeded", r["id"].replace("pi_", "ch_", 1))
