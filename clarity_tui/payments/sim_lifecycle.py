"""The simulated gateway's side of the membership lifecycle (issue 13): events and fresh objects.

A mixin of SimulatedGateway implementing `LifecycleGateway` (payments/lifecycle.py) over the store:
- `latest_event_id`, `list_events(after=, types=, limit=)`: the events sim_events stored, oldest first
  (ids sort in commit order), only the types asked (none asked: all), at most `limit` (1..100) with
  `has_more`. An `after` the gateway does not know, or one older than 30 days of clock time, raises
  CursorExpired, as Stripe's Events API keeps 30 days; `after=None` starts from the oldest kept.
  `retrieve_event` gives one event's full body (Stripe's GET /v1/events/:id; webhooks and tests).
- `retrieve_subscription / invoice / charge / dispute / card`, `open_invoices`: the object as it is now
  (UnknownObject for an id the gateway does not have).
- `create_card_update_link` (idempotent; a "billing_portal.session" object) and the test hooks the card
  networks and banks would trigger: `card_automatically_updated` (payment_method.automatically_updated)
  and `open_dispute` (charge.dispute.created).
Every call is subject to the simulated network (`online = False`: GatewayUnavailable).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.payments.lifecycle import (
    EVENT_RETENTION,
    CardState,
    ChargeState,
    CursorExpired,
    DisputeState,
    EventPage,
    GatewayEvent,
    InvoiceState,
    RefundState,
    SubscriptionState,
    UnknownObject,
    epoch_to_utc,
    event_from_json,
)
from clarity_tui.payments.sim_events import EVENT_KIND, period_of, refunds_of
from db.models import SimGatewayObject

_PAGE = 500


def _ch_to_pi(charge_id: str) -> str:
    return charge_id.replace("ch_", "pi_", 1) if charge_id.startswith("ch_") else charge_id


class SimulatedLifecycle:
    db: Any
    _idempotent: Any
    _put: Any
    _get: Any
    _new_id: Any
    _emit: Any
    _now: Any
    _epoch: Any
    _check_online: Any

    # --- events ------------------------------------------------------------------------------------------
    def latest_event_id(self) -> str | None:
        self._check_online()
        with self.db.read() as s:
            return s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == EVENT_KIND)
                          .order_by(col(SimGatewayObject.id).desc()).limit(1)).first()

    def list_events(self, *, after: str | None, types: Sequence[str], limit: int = 100) -> EventPage:
        self._check_online()
        wanted, limit = set(types), max(1, min(int(limit), 100))
        out: list[GatewayEvent] = []
        with self.db.read() as s:
            cutoff = self._now(s) - EVENT_RETENTION
            cursor = ""
            if after is not None:
                row = s.get(SimGatewayObject, after)
                if row is None or row.kind != EVENT_KIND or _created(row) < cutoff:
                    raise CursorExpired(f"The payment gateway no longer has event {after} (events are kept "
                                        "30 days): reconciling every membership that is due instead.")
                cursor = after
            while True:
                batch = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == EVENT_KIND,
                                                              col(SimGatewayObject.id) > cursor)
                               .order_by(col(SimGatewayObject.id)).limit(_PAGE)).all()
                for row in batch:
                    cursor = row.id
                    if _created(row) < cutoff or (wanted and (row.data or {}).get("type") not in wanted):
                        continue
                    if len(out) == limit:
                        return EventPage(out, has_more=True)
                    out.append(event_from_json(row.data or {}))
                if len(batch) < _PAGE:
                    return EventPage(out, has_more=False)

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        """The event's full body, as Stripe sends it."""
        with self._read(event_id, EVENT_KIND) as (_s, d):
            return d

    # --- fresh objects -----------------------------------------------------------------------------------
    @contextmanager
    def _read(self, obj_id: str, kind: str) -> Iterator[tuple[Session, dict[str, Any]]]:
        self._check_online()
        with self.db.read() as s:
            row = s.get(SimGatewayObject, obj_id) if obj_id else None
            if row is None or row.kind != kind:
                raise UnknownObject(f"The payment gateway has no {kind.replace('_', ' ')} {obj_id}.")
            yield s, dict(row.data or {})

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        with self._read(subscription_id, "subscription") as (_s, d):
            start, end = period_of(d)
            pause = d.get("pause_collection") or {}
            return SubscriptionState(
                subscription_id=subscription_id, customer_id=d["customer"], status=d["status"],
                current_period_start=epoch_to_utc(start), current_period_end=epoch_to_utc(end),
                cancel_at_period_end=bool(d.get("cancel_at_period_end")), cancel_at=epoch_to_utc(d.get("cancel_at")),
                canceled_at=epoch_to_utc(d.get("canceled_at")), ended_at=epoch_to_utc(d.get("ended_at")),
                paused=bool(pause), pause_resumes_at=epoch_to_utc(pause.get("resumes_at")),
                latest_invoice_id=d.get("latest_invoice"), price_id=d.get("plan"),
                metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()})

    @staticmethod
    def _invoice_state(inv_id: str, d: dict[str, Any]) -> InvoiceState:
        due = int(d.get("amount_due") or 0)
        paid = int(d.get("amount_paid") or (due if d.get("status") == "paid" else 0))
        line = (d.get("lines") or [{}])[0].get("period") or {}
        error = d.get("last_payment_error") or {}
        return InvoiceState(
            invoice_id=inv_id, customer_id=d.get("customer") or "", subscription_id=d.get("subscription"),
            status=d.get("status", "open"), amount_due=due, amount_paid=paid,
            amount_remaining=int(d.get("amount_remaining", 0 if d.get("status") == "paid" else due - paid)),
            tax_cents=int(d.get("tax") or 0), currency=d.get("currency", "usd"),
            billing_reason=d.get("billing_reason"), attempt_count=int(d.get("attempt_count") or 0),
            next_payment_attempt=epoch_to_utc(d.get("next_payment_attempt")),
            period_start=epoch_to_utc(line.get("start") or d.get("period_start")),
            period_end=epoch_to_utc(line.get("end") or d.get("period_end")),
            payment_id=d.get("payment_intent"), charge_id=d.get("charge") if d.get("status") == "paid" else None,
            failure_reason=error.get("message"), failure_code=error.get("decline_code") or error.get("code"),
            created=epoch_to_utc(d.get("created")),
            paid_at=epoch_to_utc((d.get("status_transitions") or {}).get("paid_at")),
            hosted_invoice_url=f"https://invoice.sim.invalid/i/{inv_id}")

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        with self._read(invoice_id, "invoice") as (s, d):
            if not d.get("customer"):  # invoices stored before issue 13 kept the customer on the row only
                row = s.get(SimGatewayObject, invoice_id)
                d["customer"] = row.customer if row is not None else None
            return self._invoice_state(invoice_id, d)

    def open_invoices(self, subscription_id: str) -> list[InvoiceState]:
        return [inv for inv in self._invoices_of(subscription_id) if inv.status == "open"]

    def invoices_since(self, subscription_id: str, since: dt.datetime) -> list[InvoiceState]:
        return [inv for inv in self._invoices_of(subscription_id) if inv.created is None or inv.created >= since]

    def _invoices_of(self, subscription_id: str) -> list[InvoiceState]:
        """The subscription's invoices, oldest first."""
        with self._read(subscription_id, "subscription") as (s, sub):
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "invoice",
                                                         SimGatewayObject.customer == sub["customer"])).all()
            found = [(r.id, {"customer": r.customer, **(r.data or {})}) for r in rows
                     if (r.data or {}).get("subscription") == subscription_id]
        found.sort(key=lambda x: (x[1].get("created") or 0, x[0]))
        return [self._invoice_state(i, d) for i, d in found]

    def retrieve_charge(self, charge_id: str) -> ChargeState:
        pi_id = _ch_to_pi(charge_id)
        with self._read(pi_id, "payment_intent") as (s, d):
            if d.get("status") != "succeeded":
                raise UnknownObject(f"The payment gateway has no charge {charge_id}.")
            refunds = [RefundState(r, int(rd.get("amount") or 0), "succeeded", epoch_to_utc(rd.get("created")))
                       for r, rd in refunds_of(s, pi_id, d.get("customer"))]
            return ChargeState(charge_id=pi_id.replace("pi_", "ch_", 1), payment_id=pi_id,
                               customer_id=d.get("customer"), invoice_id=d.get("invoice"),
                               amount=int(d.get("amount") or 0), amount_refunded=int(d.get("refunded") or 0),
                               disputed=bool(d.get("disputed")), refunds=refunds)

    def retrieve_dispute(self, dispute_id: str) -> DisputeState:
        with self._read(dispute_id, "dispute") as (_s, d):
            return DisputeState(dispute_id=dispute_id, charge_id=d["charge"], payment_id=d.get("payment_intent"),
                                amount=int(d.get("amount") or 0), reason=d.get("reason", "general"),
                                status=d.get("status", "needs_response"), created=epoch_to_utc(d.get("created")))

    def retrieve_card(self, payment_method_id: str) -> CardState:
        with self._read(payment_method_id, "payment_method") as (_s, d):
            return CardState(payment_method_id=payment_method_id, customer_id=d.get("customer"),
                             brand=str(d.get("brand") or "unknown"), last4=str(d.get("last4") or ""),
                             exp_month=int(d.get("exp_month") or 0), exp_year=int(d.get("exp_year") or 0))

    # --- card updates, the card networks and the banks ------------------------------------------------
    def create_card_update_link(self, customer_id: str, *, return_url: str, idempotency_key: str) -> str:
        params = {"customer": customer_id, "return_url": return_url, "flow": "payment_method_update"}

        def run(s: Session) -> dict:
            self._get(s, customer_id, "customer")
            bps = self._new_id("bps")
            data = {**params, "created": self._epoch(s), "url": f"https://billing.sim.invalid/p/session/{bps}"}
            self._put(s, bps, "billing_portal.session", data, customer_id)
            self._emit(s, "billing_portal.session.created", "billing_portal.session", bps, data)
            return {"id": bps, "url": data["url"]}

        return self._idempotent("billing_portal.session.create", idempotency_key, params, run)["url"]

    def card_automatically_updated(self, pm_id: str, exp_month: int, exp_year: int, last4: str | None = None) -> None:
        """Test hook: the card network updated this saved card (a new expiry, maybe a new number)."""
        self._check_online()
        with self.db.write() as s:
            pm = self._get(s, pm_id, "payment_method", lock=True)
            before = dict(pm)
            pm.update(exp_month=int(exp_month), exp_year=int(exp_year), last4=last4 or pm.get("last4"))
            self._put(s, pm_id, "payment_method", pm)
            self._emit(s, "payment_method.automatically_updated", "payment_method", pm_id, pm, before=before)

    def open_dispute(self, payment_id: str, reason: str = "fraudulent") -> str:
        """Test hook: the cardholder's bank disputed this payment (pi_ or ch_ id); returns the dispute's id."""
        self._check_online()
        pi_id = _ch_to_pi(payment_id)
        with self.db.write() as s:
            pi = self._get(s, pi_id, "payment_intent", lock=True)
            if pi.get("status") != "succeeded":
                raise UnknownObject(f"The payment gateway has no charge {payment_id} to dispute.")
            now = self._epoch(s)
            dp_id = self._new_id("dp")
            data = {"charge": pi_id.replace("pi_", "ch_", 1), "payment_intent": pi_id, "reason": reason,
                    "amount": int(pi.get("amount") or 0) - int(pi.get("refunded") or 0),
                    "currency": pi.get("currency", "usd"), "status": "needs_response", "created": now,
                    "due_by": now + 7 * 86_400, "customer": pi.get("customer")}
            self._put(s, dp_id, "dispute", data, pi.get("customer"))
            pi["disputed"] = True
            self._put(s, pi_id, "payment_intent", pi)
            self._emit(s, "charge.dispute.created", "dispute", dp_id, data)
            return dp_id


def _created(row: SimGatewayObject) -> dt.datetime:
    return epoch_to_utc((row.data or {}).get("created")) or dt.datetime.min.replace(tzinfo=dt.UTC)
