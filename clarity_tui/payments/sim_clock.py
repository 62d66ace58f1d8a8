"""The simulated gateway's billing clock, like Stripe's test clocks (issue 13), and its billing engine.

`advance_clock(days, failure_rate=, seed=)` moves the simulated time (sim_store's clock row) forward one
day at a time, and at each step runs, in time order, what Stripe's billing engine would have run by then:

- **Billing dates** (a trial's end or a period's end). The period moves on by the plan's interval (month or
  year, on the anchor's day, as Stripe does) whether or not the payment succeeds, and a new invoice
  (billing_reason `subscription_cycle`) bills the plan, the extra vehicles × their quantity, less the
  coupon (`once`: the first invoice after the trial; `forever`: every one), plus the subscription's
  `default_tax_rates` (exclusive: added on top; inclusive: contained in the amount). The invoice is
  charged at once on the customer's default card (its PaymentIntent is the invoice's `payment_intent`).
  With `cancel_at_period_end` the subscription ends instead (`customer.subscription.deleted`, no invoice).
  While collection is paused the invoice is voided (`pause_collection.behavior` void; or left a draft, or
  marked uncollectible, for those behaviours) and nothing is charged. A trial ending with no card on a
  subscription whose `missing_payment_method` is "pause" moves to status `paused` instead
  (`customer.subscription.paused`), as Stripe's trial_settings do.
- **Which renewals fail.** A card whose outcome declines (`charge_decline` and the other declining outcomes
  of sim_store, an expired card by the clock's date, or no card at all) always fails. Any other card fails
  when `fraction("renewal", seed, subscription, period start) < failure_rate`, a sha256 of those values
  read as a number in [0, 1): the same seed, subscription and period give the same answer on every run, and
  0 fails none and 1 fails all. Such a failure reads "insufficient funds", as a bank would say it.
- **A failed invoice** stays `open`: `attempt_count`, `next_payment_attempt`, and its PaymentIntent's
  `last_payment_error` (code, decline_code, message such as "Your card has insufficient funds."); the
  subscription goes `past_due`. Events: invoice.payment_failed, payment_intent.payment_failed and
  customer.subscription.updated.
- **Retries**: 3, 5 and 7 days after the previous attempt (RETRY_DAYS: days 3, 8 and 15 after the billing
  date; 4 attempts in all), each on the customer's default card of that moment. A card that declines never
  pays. A retry of a failure the failure rate made, on the same card, succeeds when
  `fraction("retry", seed, subscription, period start, attempt) < RETRY_RECOVERY` (0.5); a card changed since
  the failure pays at once. After the last failed retry the invoice is marked uncollectible
  (invoice.marked_uncollectible) and the subscription is cancelled (status canceled, ended_at,
  customer.subscription.deleted). An invoice paid meanwhile (`pay_open_invoice`) is never retried: only
  open invoices with a `next_payment_attempt` are.
- **pause_collection.resumes_at** reached: the pause is cleared (customer.subscription.updated).

The report (BillingClockReport) counts what this call did: `renewals` (invoices charged on a billing date),
`failures` (of those, the ones whose first attempt failed), `retries` (automatic retries made) and
`recovered` (retries that paid), `cancelled` (subscriptions ended after their last failed retry), `expired`
(subscriptions that ended at their period end through cancel_at_period_end), `resumed` (pauses of
collection that reached their resumes_at), `events` (the events it emitted), and `now` (the clock after it).

Each action runs in its own write transaction that locks the subscription row and checks again that the
action is still due: two processes advancing the clock at once never renew a period twice (the second finds
the period already moved on). Events carry the clock time at which the action was due.

Past 400 lines on purpose: one job, the simulated gateway's billing clock (renewals, retries,
pauses, cancels) and the invoice arithmetic it charges by.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import math
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.payments.lifecycle import EVENT_RETENTION, BillingClockReport
from clarity_tui.payments.sim_events import EVENT_KIND, locked_row, period_of
from clarity_tui.payments.sim_store import CLOCK_ID, CLOCK_KIND, SAVE_DECLINES, to_utc
from clarity_tui.services.plan_pricing import interval_months
from db.models import SimGatewayObject

DAY = 86_400
RETRY_DAYS = (3, 5, 7)  # days after the previous automatic attempt
RETRY_RECOVERY = 0.5  # the share of retries that pay, after a failure the failure rate made
DECLINE_MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "generic_decline": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "missing_payment_method": "The customer has no card on file.",
}


def fraction(*parts: Any) -> float:
    """A number in [0, 1) that depends only on `parts` (repeatable across runs and processes)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def _add_months(when: dt.datetime, months: int) -> dt.datetime:
    y, m = divmod(when.month - 1 + months, 12)
    year, month = when.year + y, m + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def next_period_end(anchor: int, end: int, interval: str) -> int:
    """The billing date after `end`, on the anchor's day of the month (clamped, as Stripe does)."""
    a, e = to_utc(anchor), to_utc(end)
    step = interval_months(interval)
    n = max(1, ((e.year - a.year) * 12 + e.month - a.month) // step)
    while int(_add_months(a, n * step).timestamp()) <= end:
        n += 1
    return int(_add_months(a, n * step).timestamp())


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def invoice_totals(amounts: list[int], coupon: tuple[str, dict[str, Any]] | None,
                   tax_rates: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Stripe's invoice totals for these line amounts, a coupon (id, data) and tax rates (id, data)."""
    subtotal = sum(amounts)
    discount = 0
    if coupon is not None:
        cd = coupon[1]
        if cd.get("percent_off"):
            discount = _round(Decimal(subtotal) * Decimal(str(cd["percent_off"])) / 100)
        elif cd.get("amount_off"):
            discount = int(cd["amount_off"])
        discount = min(discount, subtotal)
    taxable = subtotal - discount
    taxes, exclusive, inclusive = [], 0, 0
    for txr_id, td in tax_rates:
        pct = Decimal(str(td.get("percentage") or 0))
        if td.get("inclusive"):
            amount = _round(Decimal(taxable) * pct / (100 + pct))
            inclusive += amount
        else:
            amount = _round(Decimal(taxable) * pct / 100)
            exclusive += amount
        taxes.append({"amount": amount, "inclusive": bool(td.get("inclusive")), "tax_rate": txr_id,
                      "taxability_reason": None,
                      "taxable_amount": taxable - amount if td.get("inclusive") else taxable})
    total = taxable + exclusive
    return {"subtotal": subtotal, "subtotal_excluding_tax": subtotal - inclusive,
            "total_discount_amounts": [{"amount": discount, "discount": f"di_{coupon[0]}"}] if discount and coupon else [],
            "tax": exclusive + inclusive, "total_tax_amounts": taxes, "total": total,
            "total_excluding_tax": total - exclusive - inclusive, "amount_due": total, "amount_paid": 0,
            "amount_remaining": total}


class SimulatedBilling:
    """Invoices, payment attempts and the billing clock: a mixin of SimulatedGateway."""

    db: Any
    _put: Any
    _get: Any
    _new_id: Any
    _emit: Any
    _epoch: Any
    _check_online: Any
    clock_now: Any

    # --- invoices ------------------------------------------------------------------------------------
    def _cycle_invoice(self, s: Session, sub_id: str, sub: dict[str, Any], start: int, end: int, when: int,
                       *, previous: tuple[int | None, int | None] = (None, None),
                       reason: str = "subscription_cycle") -> tuple[str, dict[str, Any]]:
        """A new open (finalized, not yet attempted) invoice for the period start..end. Uses up a `once`
        coupon (`sub` is changed; the caller stores it)."""
        items = [(sub["plan"], 1)]
        if sub.get("extra"):
            items.append((sub["extra"]["plan"], int(sub["extra"]["quantity"])))
        lines, amounts = [], []
        for n, (price_id, qty) in enumerate(items):
            plan = self._get(s, price_id, "plan")
            amount = int(plan.get("amount") or 0) * qty
            amounts.append(amount)
            lines.append({"id": f"il_{sub_id.split('_', 1)[-1]}_{start}_{n}", "amount": amount, "quantity": qty,
                          "currency": plan.get("currency", "usd"), "description": f"{qty} × {price_id}",
                          "price": {"id": price_id, "object": "price", "unit_amount": int(plan.get("amount") or 0)},
                          "period": {"start": start, "end": end}, "proration": False, "subscription": sub_id})
        coupon = None
        if sub.get("coupon") and not sub.get("coupon_used"):
            cd = self._get(s, sub["coupon"], "coupon")
            coupon = (sub["coupon"], cd)
            if cd.get("duration", "once") == "once":
                sub["coupon_used"] = True
        rates = [(t, self._get(s, t, "tax_rate")) for t in sub.get("default_tax_rates") or []]
        inv_id = self._new_id("in")
        inv = {"subscription": sub_id, "customer": sub["customer"], "status": "open", "created": when,
               "currency": lines[0]["currency"], "billing_reason": reason, "lines": lines,
               **invoice_totals(amounts, coupon, rates), "attempt_count": 0, "next_payment_attempt": None,
               # Stripe's invoice period is the one that ended; the subscription line's is the new one.
               "period_start": previous[0] or start, "period_end": previous[1] or start,
               "payment_intent": None, "charge": None,
               "status_transitions": {"finalized_at": when, "paid_at": None, "marked_uncollectible_at": None,
                                      "voided_at": None}, "sim": {}}
        self._put(s, inv_id, "invoice", inv, sub["customer"])
        self._emit(s, "invoice.created", "invoice", inv_id, inv, when=when)
        self._emit(s, "invoice.finalized", "invoice", inv_id, inv, when=when)
        return inv_id, inv

    def _mark_paid(self, s: Session, inv_id: str, inv: dict[str, Any], pm_id: str | None, when: int) -> dict:
        """The invoice is paid (with its PaymentIntent; none for a zero total); returns the PaymentIntent."""
        amount = int(inv.get("amount_remaining", inv.get("amount_due")) or 0)
        pi: dict[str, Any] = {}
        if amount > 0:
            pi_id = inv.get("payment_intent") or self._new_id("pi")
            row = s.get(SimGatewayObject, pi_id)
            pi = dict(row.data or {}) if row is not None else {
                "customer": inv["customer"], "currency": inv.get("currency", "usd"), "invoice": inv_id,
                "metadata": {"invoice": inv_id}, "created": when}
            pi.update(amount=amount, status="succeeded", payment_method=pm_id, refunded=0, last_payment_error=None)
            self._put(s, pi_id, "payment_intent", pi, inv["customer"])
            self._emit(s, "payment_intent.succeeded", "payment_intent", pi_id, pi, when=when)
            inv.update(payment_intent=pi_id, charge=pi_id.replace("pi_", "ch_", 1))
            pi = {"id": pi_id, **pi}
        inv.update(status="paid", amount_paid=int(inv.get("amount_due") or 0), amount_remaining=0,
                   next_payment_attempt=None, last_payment_error=None,
                   status_transitions={**(inv.get("status_transitions") or {}), "paid_at": when})
        self._put(s, inv_id, "invoice", inv)
        if amount > 0:
            self._emit(s, "invoice.payment_succeeded", "invoice", inv_id, inv, when=when)
        self._emit(s, "invoice.paid", "invoice", inv_id, inv, when=when)
        return pi

    def _mark_failed(self, s: Session, inv_id: str, inv: dict[str, Any], pm_id: str | None, code: str,
                     when: int, *, next_attempt: int | None, make_intent: bool = True) -> None:
        missing = code == "missing_payment_method"
        error = {"type": "invalid_request_error" if missing else "card_error",
                 "code": code if code in ("expired_card", "missing_payment_method") else "card_declined",
                 "decline_code": None if missing else code,
                 "message": DECLINE_MESSAGES.get(code, DECLINE_MESSAGES["generic_decline"]),
                 "payment_method": {"id": pm_id, "object": "payment_method"} if pm_id else None}
        pi_id = inv.get("payment_intent")
        if pi_id or make_intent:
            pi_id = pi_id or self._new_id("pi")
            row = s.get(SimGatewayObject, pi_id)
            pi = dict(row.data or {}) if row is not None else {
                "customer": inv["customer"], "currency": inv.get("currency", "usd"), "invoice": inv_id,
                "metadata": {"invoice": inv_id}, "created": when, "refunded": 0}
            pi.update(amount=int(inv.get("amount_remaining", inv.get("amount_due")) or 0),
                      status="requires_payment_method", payment_method=pm_id, last_payment_error=error)
            self._put(s, pi_id, "payment_intent", pi, inv["customer"])
            self._emit(s, "payment_intent.payment_failed", "payment_intent", pi_id, pi, when=when)
        inv.update(payment_intent=pi_id, next_payment_attempt=next_attempt, last_payment_error=error)
        self._put(s, inv_id, "invoice", inv)
        self._emit(s, "invoice.payment_failed", "invoice", inv_id, inv, when=when)

    def _card_decline(self, s: Session, pm_id: str | None, when: int) -> str | None:
        """Why this card cannot pay now (None: it can)."""
        row = s.get(SimGatewayObject, pm_id) if pm_id else None
        if row is None:
            return "missing_payment_method"
        pm = row.data or {}
        outcome = pm.get("outcome", "ok")
        if outcome in SAVE_DECLINES | {"charge_decline"}:
            return "generic_decline" if outcome == "charge_decline" else outcome
        day = to_utc(when)
        if pm.get("exp_year") and (int(pm["exp_year"]), int(pm.get("exp_month") or 12)) < (day.year, day.month):
            return "expired_card"
        return None

    def _default_card(self, s: Session, sub: dict[str, Any]) -> str | None:
        if sub.get("default_payment_method"):
            return sub["default_payment_method"]
        row = s.get(SimGatewayObject, sub["customer"])
        return (row.data or {}).get("default_payment_method") if row is not None else None

    def _attempt(self, s: Session, sub_id: str, sub: dict[str, Any], inv_id: str, inv: dict[str, Any], when: int,
                 *, failure_rate: float, seed: int) -> bool:
        """One automatic attempt to pay an open invoice (the first one or a scheduled retry)."""
        sim = dict(inv.get("sim") or {})
        auto = int(sim.get("auto_attempts") or 0) + 1
        pm_id = self._default_card(s, sub)
        code = self._card_decline(s, pm_id, when)
        line_start = (inv.get("lines") or [{}])[0].get("period", {}).get("start") or inv.get("period_start")
        if code is None and auto == 1 and fraction("renewal", seed, sub_id, line_start) < failure_rate:
            code, sim["rate_failure"] = "insufficient_funds", True
        elif (code is None and auto > 1 and sim.get("rate_failure") and sim.get("failed_pm") == pm_id
              and fraction("retry", seed, sub_id, line_start, auto) >= RETRY_RECOVERY):
            code = "insufficient_funds"
        sim["auto_attempts"] = auto
        inv.update(attempt_count=int(inv.get("attempt_count") or 0) + 1, sim=sim)
        if code is None:
            self._mark_paid(s, inv_id, inv, pm_id, when)
            return True
        sim["failed_pm"] = pm_id
        nxt = when + RETRY_DAYS[auto - 1] * DAY if auto <= len(RETRY_DAYS) else None
        self._mark_failed(s, inv_id, inv, pm_id, code, when, next_attempt=nxt)
        return False

    def _open_invoices_of(self, s: Session, sub_id: str, customer: str) -> list[tuple[str, dict[str, Any]]]:
        rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "invoice",
                                                     SimGatewayObject.customer == customer)).all()
        found = [(r.id, dict(r.data or {})) for r in rows
                 if (r.data or {}).get("subscription") == sub_id and (r.data or {}).get("status") == "open"]
        return sorted(found, key=lambda x: (x[1].get("created") or 0, x[0]))

    def _settle_status(self, s: Session, sub_id: str, sub: dict[str, Any]) -> None:
        """active, or past_due while an attempted invoice is open (a live, unpaused subscription)."""
        if sub.get("status") in ("canceled", "paused", "incomplete_expired"):
            return
        failing = any(d.get("attempt_count") for _, d in self._open_invoices_of(s, sub_id, sub["customer"]))
        sub["status"] = "past_due" if failing else "active"

    # --- the clock -------------------------------------------------------------------------------------
    def _set_clock(self, when: dt.datetime) -> None:
        with self.db.write() as s:
            row = locked_row(s, CLOCK_ID, CLOCK_KIND, {"frozen_time": 0})
            frozen = max(int((row.data or {}).get("frozen_time") or 0), int(when.timestamp()))
            row.data, row.updated_at = {"frozen_time": frozen, "name": "Clarity simulated billing clock"}, \
                dt.datetime.now(dt.UTC)
            s.add(row)

    def advance_clock(self, days: float, *, failure_rate: float, seed: int | None = None) -> BillingClockReport:
        """Move the simulated time `days` forward, running renewals, retries, cancellations and pause ends
        that fall due (see the module docstring); what this call did."""
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
            raise ValueError("days must be a positive number")
        if not 0 <= failure_rate <= 1:
            raise ValueError("failure_rate must be between 0 and 1")
        self._check_online()
        counts: Counter[str] = Counter()
        seed = 0 if seed is None else int(seed)
        now = self.clock_now()
        target = now + dt.timedelta(days=days)
        while now < target:
            now = min(now + dt.timedelta(days=1), target)
            self._set_clock(now)
            for _ in range(10_000):  # a subscription far behind catches up one period per pass
                acted = [self._act(action, obj_id, int(now.timestamp()), failure_rate, seed, counts)
                         for _when, _order, action, obj_id in self._due(int(now.timestamp()))]
                if not any(acted):
                    break
        self._prune_events(target)
        return BillingClockReport(now=self.clock_now(), renewals=counts["renewals"], failures=counts["failures"],
                                  retries=counts["retries"], recovered=counts["recovered"],
                                  cancelled=counts["cancelled"], expired=counts["expired"],
                                  resumed=counts["resumed"], events=counts["events"])

    def _due(self, until: int) -> list[tuple[int, int, str, str]]:
        """What falls due by `until`, in time order: (when, order, action, object id)."""
        due: list[tuple[int, int, str, str]] = []
        past_due: dict[str, str] = {}
        with self.db.read() as s:
            for row in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "subscription")).all():
                d = row.data or {}
                if d.get("status") in ("canceled", "incomplete_expired"):
                    continue
                resumes = (d.get("pause_collection") or {}).get("resumes_at")
                if resumes and resumes <= until:
                    due.append((int(resumes), 0, "resume", row.id))
                end = period_of(d)[1]
                if d.get("status") != "paused" and end and end <= until:
                    due.append((int(end), 2, "period_end", row.id))
                if d.get("status") == "past_due" and d.get("customer"):
                    past_due[row.id] = d["customer"]
            if past_due:
                for row in s.exec(select(SimGatewayObject).where(
                        SimGatewayObject.kind == "invoice",
                        col(SimGatewayObject.customer).in_(sorted(set(past_due.values()))))).all():
                    d = row.data or {}
                    nxt = d.get("next_payment_attempt")
                    if d.get("subscription") in past_due and d.get("status") == "open" and nxt and nxt <= until:
                        due.append((int(nxt), 1, "retry", row.id))
        return sorted(due)

    def _act(self, action: str, obj_id: str, until: int, failure_rate: float, seed: int,
             counts: Counter[str]) -> bool:
        """Run one due action in its own transaction, if it is still due once its subscription is locked."""
        with self.db.write() as s:
            sub_id: str | None = obj_id
            if action == "retry":
                inv_row = s.get(SimGatewayObject, obj_id)
                sub_id = (inv_row.data or {}).get("subscription") if inv_row is not None else None
            sub_row = s.get(SimGatewayObject, sub_id, with_for_update=True, populate_existing=True) if sub_id else None
            if sub_row is None or sub_row.kind != "subscription":
                return False
            sub = dict(sub_row.data or {})
            before = dict(sub)
            if sub.get("status") in ("canceled", "incomplete_expired"):
                return False
            if action == "resume":
                when = self._resume_collection(sub, until, counts)
            elif action == "period_end":
                when = self._period_end(s, sub_row.id, sub, until, failure_rate, seed, counts)
            else:
                when = self._retry(s, sub_row.id, sub, obj_id, until, seed, counts)
            if when is None:
                return False
            self._put(s, sub_id, "subscription", sub)
            if sub.get("status") == "canceled":
                self._emit(s, "customer.subscription.deleted", "subscription", sub_id, sub, when=when)
            elif sub != before:
                self._emit(s, "customer.subscription.updated", "subscription", sub_id, sub, before=before, when=when)
                if sub.get("status") == "paused" and before.get("status") != "paused":
                    self._emit(s, "customer.subscription.paused", "subscription", sub_id, sub, when=when)
            counts["events"] += len(s.info.get("sim_events") or [])
            return True

    @staticmethod
    def _resume_collection(sub: dict[str, Any], until: int, counts: Counter[str]) -> int | None:
        resumes = (sub.get("pause_collection") or {}).get("resumes_at")
        if not resumes or resumes > until:
            return None
        sub["pause_collection"] = None
        counts["resumed"] += 1
        return int(resumes)

    def _period_end(self, s: Session, sub_id: str, sub: dict[str, Any], until: int, failure_rate: float,
                    seed: int, counts: Counter[str]) -> int | None:
        start, end = period_of(sub)
        if sub.get("status") == "paused" or not end or end > until:
            return None
        if sub.get("cancel_at_period_end"):
            sub.update(status="canceled", ended_at=end, cancel_at=end, canceled_at=sub.get("canceled_at") or end,
                       cancellation_reason="cancellation_requested")
            counts["expired"] += 1
            return end
        if (sub.get("status") == "trialing" and sub.get("missing_payment_method") == "pause"
                and self._default_card(s, sub) is None):
            sub["status"] = "paused"  # Stripe's trial_settings.end_behavior.missing_payment_method = pause
            return end
        plan = self._get(s, sub["plan"], "plan")
        new_end = next_period_end(int(sub.get("billing_cycle_anchor") or sub.get("trial_end") or end), end,
                                  plan.get("interval", "month"))
        sub.update(current_period_start=end, current_period_end=new_end)
        if sub.get("status") == "trialing":
            sub["status"] = "active"
        inv_id, inv = self._cycle_invoice(s, sub_id, sub, end, new_end, end, previous=(start, end))
        sub["latest_invoice"] = inv_id
        behavior = (sub.get("pause_collection") or {}).get("behavior")
        if behavior:  # collection paused: nothing is charged
            status, stamp, event = {"void": ("void", "voided_at", "invoice.voided"),
                                    "mark_uncollectible": ("uncollectible", "marked_uncollectible_at",
                                                           "invoice.marked_uncollectible")}.get(
                behavior, ("draft", None, None))
            inv.update(status=status, amount_remaining=0 if status == "void" else inv["amount_remaining"])
            if stamp:
                inv["status_transitions"] = {**inv["status_transitions"], stamp: end}
            self._put(s, inv_id, "invoice", inv)
            if event:
                self._emit(s, event, "invoice", inv_id, inv, when=end)
        elif int(inv["amount_due"]) == 0:
            self._mark_paid(s, inv_id, inv, None, end)
        else:
            counts["renewals"] += 1
            if not self._attempt(s, sub_id, sub, inv_id, inv, end, failure_rate=failure_rate, seed=seed):
                counts["failures"] += 1
        self._settle_status(s, sub_id, sub)
        return end

    def _retry(self, s: Session, sub_id: str, sub: dict[str, Any], inv_id: str, until: int, seed: int,
               counts: Counter[str]) -> int | None:
        row = s.get(SimGatewayObject, inv_id, with_for_update=True, populate_existing=True)
        if row is None:
            return None
        inv = dict(row.data or {})
        when = inv.get("next_payment_attempt")
        if inv.get("status") != "open" or not when or when > until:
            return None
        counts["retries"] += 1
        if self._attempt(s, sub_id, sub, inv_id, inv, when, failure_rate=0.0, seed=seed):
            counts["recovered"] += 1
        elif inv.get("next_payment_attempt") is None:  # the last retry failed
            inv.update(status="uncollectible", status_transitions={**(inv.get("status_transitions") or {}),
                                                                   "marked_uncollectible_at": when})
            self._put(s, inv_id, "invoice", inv)
            self._emit(s, "invoice.marked_uncollectible", "invoice", inv_id, inv, when=when)
            sub.update(status="canceled", canceled_at=when, ended_at=when, cancellation_reason="payment_failed")
            counts["cancelled"] += 1
            return int(when)
        self._settle_status(s, sub_id, sub)
        return int(when)

    def _prune_events(self, now: dt.datetime) -> None:
        """Events are kept 30 days of clock time (as Stripe keeps them)."""
        with self.db.write() as s:
            cutoff = now - EVENT_RETENTION
            for row in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == EVENT_KIND,
                                                             SimGatewayObject.created_at < cutoff)).all():
                s.delete(row)
