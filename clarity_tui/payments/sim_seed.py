"""Fixture data straight into the simulated gateway's store (the demo seed): customers, cards, subscriptions.

The simulated world, not a gateway call of the app: rows are built in memory and added in the caller's
transaction (no idempotency records, no events), in exactly the shapes the simulated gateway stores
(sim_subscriptions, sim_clock), so the billing clock renews them like any other subscription.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from clarity_tui.payments.base import PlanSpec, to_epoch
from clarity_tui.payments.sim_clock import DAY, DECLINE_MESSAGES, RETRY_DAYS, invoice_totals, next_period_end
from db.models import SimGatewayObject


class SimSeeder:
    """Collects the rows of a seed; `rows` goes to `session.add_all`."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = int(now.timestamp())
        self.rows: list[SimGatewayObject] = []
        self.plans: dict[str, dict[str, Any]] = {}

    def _add(self, obj_id: str, kind: str, data: dict[str, Any], customer: str | None = None) -> None:
        self.rows.append(SimGatewayObject(id=obj_id, kind=kind, customer=customer, data=data))

    def catalogue(self, spec: PlanSpec, product_id: str, price_id: str, extra_id: str | None,
                  existing: set[str]) -> None:
        """The plan's product and price(s) (as `sync_plan` makes them), unless they exist already."""
        objects: list[tuple[str, str, dict[str, Any]]] = [(product_id, "product", {"name": spec.name}),
                   (price_id, "plan", {"product": product_id, "amount": spec.price_cents, "currency": spec.currency,
                                       "interval": spec.interval})]
        if extra_id:
            objects.append((extra_id, "plan", {"product": product_id, "amount": spec.extra_vehicle_price_cents,
                                               "currency": spec.currency, "interval": spec.interval}))
        for obj_id, kind, data in objects:
            if kind == "plan":
                self.plans[obj_id] = data
            if obj_id not in existing:
                self._add(obj_id, kind, {**data, "created": self.now})

    def customer(self, cus_id: str, reference: str, name: str, email: str | None, phone: str | None,
                 default_pm: str | None) -> None:
        self._add(cus_id, "customer", {"reference": reference, "name": name, "email": email, "phone": phone,
                                       "default_payment_method": default_pm, "created": self.now})

    def card(self, pm_id: str, customer: str, brand: str, last4: str, exp_month: int, exp_year: int,
             outcome: str = "ok") -> None:
        self._add(pm_id, "payment_method", {"brand": brand, "last4": last4, "exp_month": exp_month,
                                            "exp_year": exp_year, "outcome": outcome, "customer": customer,
                                            "created": self.now}, customer)

    def subscription(self, sub_id: str, customer: str, price_id: str, billing_date: dt.date, *,
                     metadata: dict[str, str], pause_resumes: dt.date | None = None, paused: bool = False,
                     missing_payment_method: str | None = None) -> None:
        """A subscription trialing until its first billing date (as every subscription we create is)."""
        trial_end = to_epoch(billing_date)
        start = min(self.now, trial_end)
        resumes_at = to_epoch(pause_resumes) if pause_resumes else None
        pause = {"behavior": "void", "resumes_at": resumes_at} if paused else None
        self._add(sub_id, "subscription", {
            "customer": customer, "plan": price_id, "trial_end": trial_end, "coupon": None, "metadata": metadata,
            "extra": None, "status": "trialing", "cancel_at_period_end": False, "pause_collection": pause,
            "default_tax_rates": [], "created": start, "trial_start": start, "current_period_start": start,
            "current_period_end": trial_end, "billing_cycle_anchor": trial_end, "latest_invoice": None,
            "cancel_at": None, "canceled_at": None, "ended_at": None,
            **({"missing_payment_method": missing_payment_method} if missing_payment_method else {})}, customer)

    def past_due(self, sub_id: str, in_id: str, customer: str, price_id: str, failed_on: dt.date, *,
                 metadata: dict[str, str], card: str | None, decline: str) -> dt.date:
        """A subscription whose renewal on `failed_on` failed and is being retried; returns the date its
        period ends (its next billing date)."""
        start = to_epoch(failed_on)
        end = next_period_end(start, start, self.plans[price_id].get("interval", "month"))
        done = sum(1 for k in range(len(RETRY_DAYS)) if start + sum(RETRY_DAYS[:k + 1]) * DAY <= self.now)
        attempts = min(1 + done, len(RETRY_DAYS))
        amount = int(self.plans[price_id]["amount"])
        missing = card is None
        error = {"type": "invalid_request_error" if missing else "card_error",
                 "code": "missing_payment_method" if missing else "card_declined",
                 "decline_code": None if missing else decline,
                 "message": DECLINE_MESSAGES["missing_payment_method" if missing else decline],
                 "payment_method": None if missing else {"id": card, "object": "payment_method"}}
        self._add(in_id, "invoice", {
            "subscription": sub_id, "customer": customer, "status": "open", "created": start,
            "currency": self.plans[price_id].get("currency", "usd"), "billing_reason": "subscription_cycle",
            "lines": [{"id": f"il_{in_id.split('_', 1)[-1]}_0", "amount": amount, "quantity": 1,
                       "currency": self.plans[price_id].get("currency", "usd"), "description": f"1 × {price_id}",
                       "price": {"id": price_id, "object": "price", "unit_amount": amount},
                       "period": {"start": start, "end": end}, "proration": False, "subscription": sub_id}],
            **invoice_totals([amount], None, []), "attempt_count": attempts,
            "next_payment_attempt": start + sum(RETRY_DAYS[:attempts]) * DAY,
            "period_start": start, "period_end": start, "payment_intent": None, "charge": None,
            "last_payment_error": error,
            "status_transitions": {"finalized_at": start, "paid_at": None, "marked_uncollectible_at": None,
                                   "voided_at": None},
            "sim": {"auto_attempts": attempts, "rate_failure": decline == "insufficient_funds", "failed_pm": card}},
            customer)
        self._add(sub_id, "subscription", {
            "customer": customer, "plan": price_id, "trial_end": start, "coupon": None, "metadata": metadata,
            "extra": None, "status": "past_due", "cancel_at_period_end": False, "pause_collection": None,
            "default_tax_rates": [], "created": start - 30 * DAY, "trial_start": start - 30 * DAY,
            "current_period_start": start, "current_period_end": end, "billing_cycle_anchor": start,
            "latest_invoice": in_id, "cancel_at": None, "canceled_at": None, "ended_at": None}, customer)
        return dt.datetime.fromtimestamp(end, dt.UTC).date()

    def canceled(self, sub_id: str, customer: str, price_id: str, ended_on: dt.date, *,
                 metadata: dict[str, str]) -> None:
        end = to_epoch(ended_on)
        self._add(sub_id, "subscription", {
            "customer": customer, "plan": price_id, "trial_end": end - 30 * DAY, "coupon": None,
            "metadata": metadata, "extra": None, "status": "canceled", "cancel_at_period_end": True,
            "pause_collection": None, "default_tax_rates": [], "created": end - 60 * DAY,
            "trial_start": end - 60 * DAY, "current_period_start": end - 30 * DAY, "current_period_end": end,
            "billing_cycle_anchor": end - 30 * DAY, "latest_invoice": None, "cancel_at": end,
            "canceled_at": end - 10 * DAY, "ended_at": end, "cancellation_reason": "cancellation_requested"},
            customer)
