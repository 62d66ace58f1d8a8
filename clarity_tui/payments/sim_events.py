"""The simulated gateway's events, and its objects rendered as Stripe renders them (issue 13).

Shapes are those of API version 2025-02-24.acacia (the version the Stripe gateway pins): the subscription
has `current_period_start/end`, the invoice `subscription`, `payment_intent`, `charge`, `tax` and
`total_tax_amounts`. Every state change the simulated gateway makes queues a Stripe-shaped event in the same write
transaction: `{"id": "evt_...", "object": "event", "type", "created" (the billing clock's epoch),
"data": {"object": <the full object as Stripe renders it>, "previous_attributes": {...}}}`.
`previous_attributes` comes with the `*.updated` events (the top-level fields that changed, with their old
values), `payment_method.detached` (the old `customer`), `payment_method.automatically_updated` (`card`) and
`charge.refunded`, as Stripe sends them.

Ordering: the events are stored (kind "event") when their transaction commits. Just before the commit
they take numbers from one counter row, locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` already serialises writers) until that commit. So numbers are strictly increasing
in commit order across every process on the database: a reader that has seen event N never later finds a
new event numbered below N. The number is in the id (`evt_sim_<12 digits>_<hex>`), so ids sort in
that order and the Events API pages by id. Events are kept 30 days of clock time, as Stripe keeps them.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, col, select

from db.models import SimGatewayObject

EVENT_KIND = "event"
COUNTER_ID, COUNTER_KIND = "evtseq_sim", "_counter"
_PENDING = "sim_events"
# Event types that carry data.previous_attributes (besides every "*.updated").
_WITH_PREVIOUS = {"payment_method.detached", "payment_method.automatically_updated", "charge.refunded"}


def event_id(seq: int) -> str:
    return f"evt_sim_{seq:012d}_{secrets.token_hex(4)}"


def emit(s: Session, type_: str, obj: dict[str, Any], *, created: int,
         previous: dict[str, Any] | None = None) -> None:
    """Queue an event about `obj` (already rendered); it is stored, numbered, when `s` commits."""
    body: dict[str, Any] = {"id": None, "object": "event", "api_version": "2025-02-24.acacia", "type": type_,
                            "created": int(created), "livemode": False, "pending_webhooks": 0,
                            "request": {"id": None, "idempotency_key": None},
                            "data": {"object": json.loads(json.dumps(obj))}}  # a snapshot, as at this moment
    if type_.endswith(".updated") or type_ in _WITH_PREVIOUS:
        body["data"]["previous_attributes"] = json.loads(json.dumps(previous or {}))
    pending = s.info.get(_PENDING)
    if pending is None:
        pending = s.info[_PENDING] = []
        sa_event.listen(s, "before_commit", _store_events)
    customer = obj.get("customer") if isinstance(obj.get("customer"), str) else None
    pending.append((body, customer or (obj["id"] if obj.get("object") == "customer" else None)))


def locked_row(s: Session, obj_id: str, kind: str, initial: dict[str, Any]) -> SimGatewayObject:
    """The row `obj_id`, made with `initial` data if missing, locked until `s` commits. Two processes
    making it at once both succeed (INSERT ... ON CONFLICT DO NOTHING), then queue for the lock."""
    table = cast(Table, sa_inspect(SimGatewayObject).local_table)
    now = dt.datetime.now(dt.UTC)
    values = {"id": obj_id, "kind": kind, "customer": None, "data": initial, "created_at": now, "updated_at": now}
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        s.execute(pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=["id"]))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        s.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=["id"]))
    row = s.get(SimGatewayObject, obj_id, with_for_update=True, populate_existing=True)
    assert row is not None  # inserted above when it was missing
    return row


def _store_events(s: Session) -> None:
    pending = s.info.pop(_PENDING, None)
    if not pending:
        return
    counter = locked_row(s, COUNTER_ID, COUNTER_KIND, {"seq": 0})
    seq = int((counter.data or {}).get("seq") or 0)
    now = dt.datetime.now(dt.UTC)
    for body, customer in pending:
        seq += 1
        body["id"] = event_id(seq)
        s.add(SimGatewayObject(id=body["id"], kind=EVENT_KIND, customer=customer, data=body,
                               created_at=dt.datetime.fromtimestamp(body["created"], dt.UTC), updated_at=now))
    counter.data, counter.updated_at = {"seq": seq}, now
    s.add(counter)


def previous_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's data.previous_attributes: the old values of the top-level fields that changed."""
    return {k: before.get(k) for k in after if k not in ("id", "object") and before.get(k) != after.get(k)}


# --- objects as Stripe renders them ------------------------------------------------------------------------
def _lst(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def _obj(s: Session, obj_id: str | None) -> dict[str, Any] | None:
    row = s.get(SimGatewayObject, obj_id) if obj_id else None
    return dict(row.data or {}) if row is not None else None


def render_plan(price_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": price_id, "object": "plan", "active": True, "amount": int(d.get("amount") or 0),
            "currency": d.get("currency", "usd"), "interval": d.get("interval", "month"), "interval_count": 1,
            "product": d.get("product"), "usage_type": "licensed", "livemode": False}


def render_price(price_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": price_id, "object": "price", "active": True, "unit_amount": int(d.get("amount") or 0),
            "currency": d.get("currency", "usd"), "product": d.get("product"), "type": "recurring",
            "recurring": {"interval": d.get("interval", "month"), "interval_count": 1, "usage_type": "licensed"},
            "livemode": False}


def render_tax_rate(txr_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": txr_id, "object": "tax_rate", "active": True, "display_name": d.get("display_name"),
            "percentage": float(Decimal(str(d.get("percentage") or 0))), "inclusive": bool(d.get("inclusive")),
            "created": d.get("created"), "livemode": False}


def render_coupon(coupon_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": coupon_id, "object": "coupon", "percent_off": d.get("percent_off"),
            "amount_off": d.get("amount_off"), "duration": d.get("duration", "once"), "valid": True}


def period_of(d: dict[str, Any]) -> tuple[int | None, int | None]:
    """A stored subscription's current period (subscriptions stored before issue 13 have only trial_end)."""
    end = d.get("current_period_end") or d.get("trial_end")
    return d.get("current_period_start") or d.get("created"), end


def render_subscription(s: Session, sub_id: str, d: dict[str, Any]) -> dict[str, Any]:
    start, end = period_of(d)
    suffix = sub_id.split("_", 1)[-1]
    items: list[dict[str, Any]] = []
    for n, (price_id, qty) in enumerate([(d.get("plan"), 1)] + ([(d["extra"]["plan"], d["extra"]["quantity"])]
                                                                if d.get("extra") else [])):
        plan = _obj(s, price_id) or {}
        items.append({"id": f"si_{suffix}{'x' if n else ''}", "object": "subscription_item", "subscription": sub_id,
                      "quantity": int(qty), "plan": render_plan(price_id, plan), "price": render_price(price_id, plan),
                      "metadata": {}})
    coupon = _obj(s, d.get("coupon")) if d.get("coupon") else None
    discount = None if coupon is None else {
        "object": "discount", "id": f"di_{suffix}", "coupon": render_coupon(d["coupon"], coupon),
        "customer": d.get("customer"), "subscription": sub_id, "start": d.get("created"), "end": None}
    return {
        "id": sub_id, "object": "subscription", "customer": d.get("customer"), "status": d.get("status"),
        "created": d.get("created"), "start_date": d.get("created"),
        "billing_cycle_anchor": d.get("billing_cycle_anchor") or d.get("trial_end"),
        "current_period_start": start, "current_period_end": end,
        "trial_start": d.get("trial_start") or d.get("created"), "trial_end": d.get("trial_end"),
        "trial_settings": {"end_behavior": {"missing_payment_method":
                                            d.get("missing_payment_method") or "create_invoice"}},
        "cancel_at_period_end": bool(d.get("cancel_at_period_end")), "cancel_at": d.get("cancel_at"),
        "canceled_at": d.get("canceled_at"), "ended_at": d.get("ended_at"),
        "cancellation_details": {"reason": d.get("cancellation_reason"), "comment": None, "feedback": None},
        "pause_collection": d.get("pause_collection") or None, "latest_invoice": d.get("latest_invoice"),
        "collection_method": "charge_automatically", "currency": (items[0]["plan"]["currency"]),
        "default_payment_method": d.get("default_payment_method"),
        "plan": items[0]["plan"] if len(items) == 1 else None, "quantity": 1 if len(items) == 1 else None,
        "items": _lst(f"/v1/subscription_items?subscription={sub_id}", items),
        "default_tax_rates": [render_tax_rate(t, _obj(s, t) or {}) for t in d.get("default_tax_rates") or []],
        "discount": discount, "discounts": [discount["id"]] if discount else [],
        "metadata": dict(d.get("metadata") or {}), "livemode": False,
    }


def render_invoice(inv_id: str, d: dict[str, Any]) -> dict[str, Any]:
    due = int(d.get("amount_due") or 0)
    status = d.get("status", "open")
    paid = int(d.get("amount_paid") or (due if status == "paid" else 0))
    lines = [{"object": "line_item", "type": "subscription", **line} for line in d.get("lines") or []]
    return {
        "id": inv_id, "object": "invoice", "customer": d.get("customer"), "subscription": d.get("subscription"),
        "status": status, "created": d.get("created"), "currency": d.get("currency", "usd"),
        "billing_reason": d.get("billing_reason", "subscription_cycle"), "collection_method": "charge_automatically",
        "subtotal": int(d.get("subtotal") or due), "total": int(d.get("total") or due),
        "total_excluding_tax": d.get("total_excluding_tax"), "tax": int(d.get("tax") or 0),
        "total_tax_amounts": list(d.get("total_tax_amounts") or []),
        "total_discount_amounts": list(d.get("total_discount_amounts") or []),
        "amount_due": due, "amount_paid": paid,
        "amount_remaining": int(d.get("amount_remaining", due - paid if status != "paid" else 0)),
        "attempt_count": int(d.get("attempt_count") or 0), "attempted": bool(d.get("attempt_count")),
        "next_payment_attempt": d.get("next_payment_attempt"), "paid": status == "paid", "paid_out_of_band": False,
        "period_start": d.get("period_start"), "period_end": d.get("period_end"),
        "lines": _lst(f"/v1/invoices/{inv_id}/lines", lines),
        "payment_intent": d.get("payment_intent"), "charge": d.get("charge"),
        "status_transitions": dict(d.get("status_transitions") or {}),
        "hosted_invoice_url": f"https://invoice.sim.invalid/i/{inv_id}", "metadata": {}, "livemode": False,
    }


def render_refund(re_id: str, d: dict[str, Any]) -> dict[str, Any]:
    pi = d.get("payment_intent")
    return {"id": re_id, "object": "refund", "amount": int(d.get("amount") or 0), "status": "succeeded",
            "payment_intent": pi, "charge": pi.replace("pi_", "ch_", 1) if pi else None,
            "created": d.get("created"), "currency": d.get("currency", "usd"), "metadata": {}}


def render_charge(pi_id: str, d: dict[str, Any], refunds: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    amount, refunded = int(d.get("amount") or 0), int(d.get("refunded") or 0)
    return {"id": pi_id.replace("pi_", "ch_", 1), "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": refunded, "refunded": refunded >= amount > 0, "captured": True, "paid": True,
            "status": "succeeded", "currency": d.get("currency", "usd"), "customer": d.get("customer"),
            "invoice": d.get("invoice"), "payment_intent": pi_id,
            "payment_method": d.get("reusable") or d.get("payment_method") or d.get("pm"),
            "disputed": bool(d.get("disputed")), "created": d.get("created"),
            "refunds": _lst(f"/v1/charges/{pi_id.replace('pi_', 'ch_', 1)}/refunds",
                            [render_refund(r, rd) for r, rd in refunds]),
            "metadata": dict(d.get("metadata") or {}), "livemode": False}


def render_payment_intent(pi_id: str, d: dict[str, Any]) -> dict[str, Any]:
    ok = d.get("status") == "succeeded"
    return {"id": pi_id, "object": "payment_intent", "amount": int(d.get("amount") or 0),
            "amount_received": int(d.get("amount") or 0) if ok else 0, "currency": d.get("currency", "usd"),
            "customer": d.get("customer"), "status": d.get("status"), "invoice": d.get("invoice"),
            "payment_method": d.get("payment_method") or d.get("pm"),
            "latest_charge": pi_id.replace("pi_", "ch_", 1) if ok else None,
            "last_payment_error": d.get("last_payment_error"), "created": d.get("created"),
            "metadata": dict(d.get("metadata") or {}), "livemode": False}


def render_dispute(dp_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": dp_id, "object": "dispute", "amount": int(d.get("amount") or 0), "charge": d.get("charge"),
            "payment_intent": d.get("payment_intent"), "currency": d.get("currency", "usd"),
            "reason": d.get("reason"), "status": d.get("status", "needs_response"), "created": d.get("created"),
            "is_charge_refundable": False, "evidence_details": {"due_by": d.get("due_by"), "has_evidence": False},
            "metadata": {}, "livemode": False}


def render_payment_method(pm_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": pm_id, "object": "payment_method", "type": "card", "customer": d.get("customer"),
            "card": {"brand": str(d.get("brand") or "unknown").lower(), "last4": d.get("last4"),
                     "exp_month": d.get("exp_month"), "exp_year": d.get("exp_year"), "funding": "credit",
                     "country": "US"},
            "created": d.get("created"), "metadata": {}, "livemode": False}


def render_customer(cus_id: str, d: dict[str, Any]) -> dict[str, Any]:
    return {"id": cus_id, "object": "customer", "name": d.get("name"), "email": d.get("email"),
            "phone": d.get("phone"), "created": d.get("created"),
            "invoice_settings": {"default_payment_method": d.get("default_payment_method")},
            "metadata": {"reference": d.get("reference")} if d.get("reference") else {}, "livemode": False}


def refunds_of(s: Session, pi_id: str, customer: str | None) -> list[tuple[str, dict[str, Any]]]:
    rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "refund",
                                                 SimGatewayObject.customer == customer)
                  .order_by(col(SimGatewayObject.created_at), col(SimGatewayObject.id))).all()
    return [(r.id, dict(r.data or {})) for r in rows if (r.data or {}).get("payment_intent") == pi_id]


def render(s: Session, kind: str, obj_id: str, d: dict[str, Any]) -> dict[str, Any]:
    """Any stored object, as Stripe renders it (kinds without a renderer: their fields as stored).
    A "charge" is rendered from its payment intent (`obj_id` the pi_ id; charge ids are ch_ + the rest)."""
    if kind == "subscription":
        return render_subscription(s, obj_id, d)
    if kind == "charge":
        return render_charge(obj_id, d, refunds_of(s, obj_id, d.get("customer")))
    simple = {"invoice": render_invoice, "dispute": render_dispute, "payment_method": render_payment_method,
              "customer": render_customer, "payment_intent": render_payment_intent, "refund": render_refund,
              "plan": render_plan, "tax_rate": render_tax_rate, "coupon": render_coupon}
    if kind in simple:
        return simple[kind](obj_id, d)
    return {"id": obj_id, "object": kind, **{k: v for k, v in d.items() if k not in ("id", "object")},
            "livemode": False}
