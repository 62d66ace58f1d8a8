"""The membership's outbox steps: what pause, resume, cancel, keep, plan change, invoice payment, default
card and refund send to the gateway, and what each means for our rows once the gateway has done it.

Split from membership_actions.py (the service that checks and queues these steps). The local change is
each row's `apply`, made in the transaction that marks the row done, so the gateway and our database
cannot end up apart. `apply_due_plan_changes` makes scheduled downgrades take effect on their date.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.errors import GatewayRejected, PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.commissions import claw_back, policy_or_default
from clarity_tui.services.outbox import Operation, existing, gateway_customer, payload_of
from clarity_tui.services.plan_pricing import plan_spec
from db.models import Membership, MembershipStatus, Outbox, PaymentMethod, Plan, SalesOrder, utcnow

log = logging.getLogger(__name__)

# The membership fields an action's audit row shows before and after.
AUDITED = ["status", "plan_id", "scheduled_plan_id", "scheduled_plan_on", "cancel_at_period_end", "expires_on"]


def apply_local_change(s: Session, operation: str, m: Membership, payload: dict[str, Any]) -> None:
    """What each subscription step means for our row once the gateway has done it."""
    if operation == "subscription.pause":
        m.status = MembershipStatus.PAUSED
    elif operation in ("subscription.resume", "invoice.pay"):
        m.status = MembershipStatus.ACTIVE
    elif operation == "subscription.cancel":
        m.cancel_at_period_end = True
        m.expires_on = m.next_billing_on or m.expires_on
    elif operation == "subscription.keep":
        if m.cancel_at_period_end and m.expires_on == m.next_billing_on:
            m.expires_on = None
        m.cancel_at_period_end = False
    elif operation == "subscription.change_plan":
        if payload.get("scheduled_on"):  # a downgrade: the plan changes at the next billing date
            m.scheduled_plan_id, m.scheduled_plan_on = payload["plan_id"], dt.date.fromisoformat(payload["scheduled_on"])
        else:
            m.plan_id, m.scheduled_plan_id, m.scheduled_plan_on = payload["plan_id"], None, None


def effective_plan_id(m: Membership, today: dt.date) -> int:
    """The plan the member is on today: a scheduled downgrade counts from its date (between that date
    and the next `apply_due_plan_changes`, readers use this)."""
    if m.scheduled_plan_id and m.scheduled_plan_on and today >= m.scheduled_plan_on:
        return m.scheduled_plan_id
    return m.plan_id


def apply_due_plan_changes(db: Any, today: dt.date) -> list[int]:
    """Downgrades whose date has come take effect here (the gateway already bills the new price from
    that date): plan_id moves to the scheduled plan, with an audit row. Returns the memberships changed.
    The running app calls it with each outbox pass."""
    with db.write() as s:
        due = s.exec(select(Membership).where(col(Membership.scheduled_plan_id).is_not(None),
                                              col(Membership.scheduled_plan_on) <= today)).all()
        for m in due:
            before = {"plan_id": m.plan_id}
            m.plan_id, m.scheduled_plan_id, m.scheduled_plan_on = m.scheduled_plan_id, None, None
            m.version += 1
            m.updated_at = utcnow()
            s.add(m)
            audit.record(s, Actor.system("billing"), "membership.plan_changed", "membership", m.id, before=before,
                         after={"plan_id": m.plan_id, "reason": "scheduled downgrade"})
        return [m.id for m in due]


class SubscriptionStep:
    """pause / resume / cancel / keep / change plan / pay the open invoice, on a membership."""

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p, key, op = payload_of(entry), entry.idempotency_key, entry.operation
        with db.read() as s:
            sub = existing(s, Membership, p["membership_id"]).gateway_subscription_id
            plan = existing(s, Plan, p["plan_id"]) if p.get("plan_id") else None
            pm = existing(s, PaymentMethod, p["payment_method_row_id"]) if p.get("payment_method_row_id") else None
        if not sub:
            raise GatewayRejected("This membership has no gateway subscription yet: sync it first.")
        if op == "invoice.pay":
            if pm is None:
                raise GatewayRejected("No card was given to pay the open invoice: take the card again.")
            paid = gateway.pay_open_invoice(sub, pm.gateway_token, idempotency_key=key)
            return {"payment_id": paid.payment_id if paid else None, "amount_cents": paid.amount_cents if paid else 0,
                    **_paid_period(gateway, sub)}
        if op == "subscription.pause":
            r = gateway.pause(sub, idempotency_key=key,
                              resumes_at=dt.date.fromisoformat(p["resumes_at"]) if p.get("resumes_at") else None)
        elif op == "subscription.resume":
            r = gateway.resume(sub, idempotency_key=key)
        elif op == "subscription.cancel":
            r = gateway.cancel_at_period_end(sub, idempotency_key=key)
        elif op == "subscription.keep":
            r = gateway.keep_subscription(sub, idempotency_key=key)
        else:
            if plan is None:
                raise GatewayRejected("The plan change names no plan: choose the plan again.")
            synced = gateway.sync_plan(plan_spec(plan, p.get("currency", "usd")))
            r = gateway.change_plan(sub, synced.price_id, extra_price_id=synced.extra_price_id,
                                    extra_vehicles=int(p.get("extra_vehicles") or 0), idempotency_key=key)
        return {"subscription_id": r.subscription_id, "status": r.status}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        m = existing(s, Membership, payload_of(entry)["membership_id"])
        before = audit.snapshot(m, AUDITED)
        apply_local_change(s, entry.operation, m, payload_of(entry))
        paid: dict[str, Any] = {}
        if entry.operation == "invoice.pay":  # the gateway's answer: ACTIVE (above), paid through the new period
            paid = {"charged_cents": result.get("amount_cents", 0), "paid_through_before": _iso(m.paid_through)}
            if result.get("paid_through"):
                end = dt.date.fromisoformat(result["paid_through"])
                m.paid_through = max(end, m.paid_through) if m.paid_through else end
            m.gateway_status = result.get("gateway_status") or m.gateway_status
            paid["paid_through"] = _iso(m.paid_through)
        m.pending_sync = False
        m.updated_at = utcnow()
        s.add(m)
        audit.record(s, Actor.system("outbox"), f"{entry.operation}.done", "membership", m.id, before=before,
                     after={**(audit.snapshot(m, AUDITED) or {}), **paid})


def _paid_period(gateway: PaymentGateway, subscription_id: str) -> dict[str, Any]:
    """After paying the open invoice: the subscription's status and the end of the period now paid for
    (retrieved fresh, read-only). A gateway that cannot say leaves `paid_through` as it is: the money
    has moved, so nothing here may fail the step."""
    try:
        state = gateway.retrieve_subscription(subscription_id)
    except Exception as exc:  # noqa: BLE001 - see above; the billing sync corrects paid_through later
        log.warning("subscription %s: paid, but its period could not be read (%s)", subscription_id, exc)
        return {}
    end = state.current_period_end
    return {"gateway_status": state.status,
            **({"paid_through": end.astimezone(dt.UTC).date().isoformat()} if end is not None else {})}


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


class SetDefaultCard:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            pm = existing(s, PaymentMethod, payload_of(entry)["payment_method_row_id"])
            cus = gateway_customer(s, pm.customer_id)
        gateway.set_default_card(cus, pm.gateway_token, idempotency_key=entry.idempotency_key)
        return {"payment_method_id": pm.gateway_token}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        make_default(s, payload_of(entry)["payment_method_row_id"])


class Refund:
    """Money back on a payment. Recording it takes back the order's commission when it falls in the
    clawback window: the payload's `clawback_days` (written with the refund, from the site's settings),
    else this operation's, else the settings' default."""

    def __init__(self, clawback_days: int | None = None) -> None:
        self.clawback_days = clawback_days

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p = payload_of(entry)
        r = gateway.refund(p["payment_id"], amount_cents=p.get("amount_cents"), idempotency_key=entry.idempotency_key)
        return {"refund_id": r.refund_id, "amount_cents": r.amount_cents}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        # Refunds carry their key in the metadata; a rotated key leaves the earlier ones to look for.
        p = payload_of(entry)
        for key in [*(p.get("prior_keys") or []), entry.idempotency_key]:
            found = gateway.find_refund(p["payment_id"], key)
            if found is not None:
                return {"refund_id": found.refund_id, "amount_cents": found.amount_cents}
        return None

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order_id = payload_of(entry).get("order_id")
        if order_id:  # one UPDATE: two replayers recording two refunds at once must both count
            s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id).values(
                refunded_cents=col(SalesOrder.refunded_cents) + int(result["amount_cents"]), updated_at=utcnow()))
        audit.record(s, Actor.system("outbox"), "order.refunded", "sales_order", order_id,
                     after={"amount_cents": result["amount_cents"], "refund_id": result["refund_id"],
                            "reason": payload_of(entry).get("reason")})
        if order_id and int(result["amount_cents"]) > 0:
            claw_back(s, int(order_id), self._window(payload_of(entry)))

    def _window(self, payload: dict[str, Any]) -> int:
        days = payload.get("clawback_days", self.clawback_days)
        return int(days) if days is not None else policy_or_default(None).clawback_days


def card_row(s: Session, customer_id: int, gateway_name: str, card: Any) -> PaymentMethod:
    """The customer's PaymentMethod row for this gateway token (brand, last 4, expiry only), made once."""
    pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id,
                                            PaymentMethod.gateway_token == card.payment_method_id)).first()
    if pm is None:
        pm = PaymentMethod(customer_id=customer_id, gateway=gateway_name, gateway_token=card.payment_method_id,
                           brand=card.brand or "unknown", last4=(card.last4 or "")[-4:],
                           exp_month=int(card.exp_month or 0), exp_year=int(card.exp_year or 0))
        s.add(pm)
        s.flush()
    return pm


def make_default(s: Session, payment_method_row_id: int) -> None:
    pm = existing(s, PaymentMethod, payment_method_row_id)
    for other in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == pm.customer_id,
                                                    col(PaymentMethod.id) != pm.id,
                                                    col(PaymentMethod.is_default).is_(True))):
        other.is_default = False
        s.add(other)
    pm.is_default = True
    s.add(pm)


ACTION_OPERATIONS: dict[str, Operation] = {
    **{name: SubscriptionStep() for name in ("subscription.pause", "subscription.resume", "subscription.cancel",
                                             "subscription.keep", "subscription.change_plan", "invoice.pay")},
    "card.default": SetDefaultCard(),
    "payment.refund": Refund(),
}


def on_row_failed(s: Session, row: Outbox, error: PaymentError) -> None:
    """A final refusal of a membership step: the membership is as it was, and says so."""
    membership_id = (row.payload or {}).get("membership_id")
    m = s.get(Membership, membership_id) if membership_id else None
    if m is not None:
        m.pending_sync = False
        s.add(m)
    audit.record(s, Actor.system("outbox"), f"{row.operation}.refused", "membership" if m else "outbox",
                 m.id if m else row.id, after={"error": str(error)})


def refunds_in_flight(s: Session, order_id: int) -> int:
    rows = s.exec(select(Outbox).where(Outbox.operation == "payment.refund", Outbox.status == "pending")).all()
    return sum(int(payload_of(r).get("amount_cents") or 0) for r in rows if payload_of(r).get("order_id") == order_id)
