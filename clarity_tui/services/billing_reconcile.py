"""Reconcile our rows from the billing engine's objects, retrieved fresh (issue 13).

Each function takes the gateway's current object, never an event body: events arrive late, twice
or out of order, so the object as it is now is the only truth. Every write here is idempotent:
running the same object through twice changes nothing the second time.

- a subscription sets the membership's status, `paid_through`, the gateway's status, the pause's
  resume date and a cancel at period end;
- an invoice becomes payment rows: a renewal (paid at its first attempt), a recovered payment (paid
  after failing), a failed renewal (one per failed attempt);
- a charge's refunds and a dispute become rows too; a card the network updated or that was detached
  updates our card row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.payments.lifecycle import (
    CardState,
    ChargeState,
    DisputeState,
    InvoiceState,
    SubscriptionState,
    UnknownObject,
    oldest_first,
)
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from db.models import Membership, MembershipStatus, PaymentMethod, SalesOrder, utcnow
from db.models_billing import MembershipPayment, PaymentKind

SYNC_ACTOR = Actor.system("billing sync")

# Stripe's subscription statuses, as our membership statuses.
_LIVE = ("trialing", "active")
_OVERDUE = ("past_due", "unpaid")
_ENDED = ("canceled", "incomplete_expired")


def local_date(when: dt.datetime | None, zone: dt.tzinfo) -> dt.date | None:
    return None if when is None else when.astimezone(zone).date()


def membership_for_subscription(s: Session, subscription_id: str | None) -> Membership | None:
    if not subscription_id:
        return None
    return s.exec(select(Membership).where(Membership.gateway_subscription_id == subscription_id)
                  .order_by(col(Membership.id).desc())).first()


def reconcile_subscription(s: Session, m: Membership, sub: SubscriptionState, zone: dt.tzinfo) -> bool:
    """Bring the membership in line with its subscription; True when anything changed."""
    before = {"status": m.status, "paid_through": _iso(m.paid_through), "gateway_status": m.gateway_status,
              "resumes_on": _iso(m.resumes_on), "cancel_at_period_end": m.cancel_at_period_end}
    period_start = local_date(sub.current_period_start, zone)
    period_end = local_date(sub.current_period_end, zone)
    m.gateway_status = sub.status
    if sub.status in _LIVE:
        m.paid_through = period_end or m.paid_through
    elif sub.status in _OVERDUE:
        # The unpaid period started where the paid one ended.
        m.paid_through = period_start or m.paid_through
    elif sub.status in _ENDED:
        ended = local_date(sub.ended_at or sub.canceled_at, zone)
        if period_end and ended and ended >= period_end:
            m.paid_through = period_end  # it ran to the end of a paid period
    if not m.pending_sync:
        # A change of ours still on its way to the gateway owns the status until its step applies.
        status = _status_for(m, sub, zone)
        if status is not None:
            m.status = status
        m.cancel_at_period_end = sub.cancel_at_period_end and sub.status not in _ENDED
        m.resumes_on = local_date(sub.pause_resumes_at, zone) if sub.paused else None
        if m.cancel_at_period_end:
            m.expires_on = period_end
        elif sub.status in _ENDED:
            m.expires_on = local_date(sub.ended_at or sub.canceled_at, zone) or m.expires_on
        elif sub.status in _LIVE + _OVERDUE:
            m.expires_on = None
        if sub.status in _LIVE + _OVERDUE and not m.cancel_at_period_end and period_end:
            m.next_billing_on = period_end
        elif sub.status in _ENDED:
            m.next_billing_on = None
    after = {"status": m.status, "paid_through": _iso(m.paid_through), "gateway_status": m.gateway_status,
             "resumes_on": _iso(m.resumes_on), "cancel_at_period_end": m.cancel_at_period_end}
    if after == before:
        return False
    m.version += 1
    m.updated_at = utcnow()
    s.add(m)
    audit.record(s, SYNC_ACTOR, "membership.synced", "membership", m.id, before=before,
                 after={**after, "subscription": sub.subscription_id})
    return True


def _status_for(m: Membership, sub: SubscriptionState, zone: dt.tzinfo) -> str | None:
    if sub.status in _ENDED:
        ended = local_date(sub.ended_at or sub.canceled_at, zone)
        period_end = local_date(sub.current_period_end, zone)
        ran_out = (m.cancel_at_period_end or sub.cancel_at_period_end) and (
            ended is None or period_end is None or ended >= period_end)
        return MembershipStatus.EXPIRED if ran_out else MembershipStatus.CANCELLED
    if sub.status in _OVERDUE:
        return MembershipStatus.PAST_DUE
    if sub.status == "paused" or (sub.status in _LIVE and sub.paused):
        return MembershipStatus.PAUSED
    if sub.status in _LIVE:
        return MembershipStatus.ACTIVE
    return None  # incomplete: not ours to judge yet


def unsettled_invoice_ids(s: Session, membership_id: int) -> list[str]:
    """Invoices of the membership with a failed attempt recorded and no payment yet (a retry may pay them)."""
    failed = set(s.exec(select(MembershipPayment.invoice_id).where(
        MembershipPayment.membership_id == membership_id, MembershipPayment.kind == PaymentKind.RENEWAL_FAILED,
        col(MembershipPayment.invoice_id).is_not(None))).all())
    paid = set(s.exec(select(MembershipPayment.invoice_id).where(
        MembershipPayment.membership_id == membership_id,
        col(MembershipPayment.kind).in_((PaymentKind.RENEWAL, PaymentKind.RECOVERED)),
        col(MembershipPayment.invoice_id).in_(failed))).all()) if failed else set()
    return sorted(i for i in failed - paid if i)


def invoices_to_record(gateway: Any, db: Any, membership_id: int, sub: SubscriptionState,
                       since: dt.datetime | None) -> list[InvoiceState]:
    """When the events may be gone, the payment rows come from the invoices themselves: those made since the
    last successful pass (`since`, by the gateway's clock), those last seen unpaid (a retry may have paid
    them since), and the latest. Oldest first."""
    found = {inv.invoice_id: inv for inv in (gateway.invoices_since(sub.subscription_id, since) if since else [])}
    with db.read() as s:
        wanted = [*unsettled_invoice_ids(s, membership_id), sub.latest_invoice_id]
    for invoice_id in wanted:
        if invoice_id and invoice_id not in found:
            try:
                found[invoice_id] = gateway.retrieve_invoice(invoice_id)
            except UnknownObject:  # a deleted draft: no payment rows, the subscription still counts
                pass
    return oldest_first(found.values())


def record_invoice(s: Session, inv: InvoiceState, m: Membership | None, *, failure_reported: bool,
                   occurred_fallback: dt.datetime) -> list[str]:
    """Payment rows for the invoice, derived from the invoice as it is now (idempotent, in any order):

    - one failed renewal per failed attempt (`attempt_count`, less the paying attempt once paid), keyed
      by the invoice and the attempt; an event that reports a failure counts one even when the invoice
      was paid by hand since (a manual payment does not move `attempt_count`, as Stripe documents). The
      invoice keeps no time per attempt: a failed row's `occurred_at` is the earliest `occurred_fallback`
      (the event's time) of the events that report it, so events in any order leave the same rows;
    - once paid: a renewal, or a recovered payment when an attempt had failed (a renewal row written
      before the failure was known becomes recovered).
    """
    if inv.amount_due <= 0 or inv.status in ("draft", "void"):
        return []
    written: list[str] = []
    base: dict[str, Any] = {"membership_id": m.id if m else None, "customer_id": m.customer_id if m else None,
            "invoice_id": inv.invoice_id, "payment_id": inv.payment_id, "currency": inv.currency,
            "tax_cents": inv.tax_cents}
    failed = inv.attempt_count - (1 if inv.status == "paid" else 0)
    if failure_reported:
        failed = max(failed, 1)
    for attempt in range(1, failed + 1):
        row = MembershipPayment(kind=PaymentKind.RENEWAL_FAILED, gateway_object_id=f"{inv.invoice_id}#{attempt}",
                                amount_cents=inv.amount_due, status="failed", attempt=attempt,
                                reason=inv.failure_reason or "The card was declined.",
                                occurred_at=occurred_fallback, **base)
        if _insert(s, row):
            written.append(PaymentKind.RENEWAL_FAILED)
        else:
            _no_later_than(s, row)
    if inv.status != "paid" or inv.amount_paid <= 0:
        return written
    had_failed = s.exec(select(MembershipPayment.id).where(
        MembershipPayment.invoice_id == inv.invoice_id,
        MembershipPayment.kind == PaymentKind.RENEWAL_FAILED)).first() is not None
    kind = PaymentKind.RECOVERED if had_failed else PaymentKind.RENEWAL
    paid = s.exec(select(MembershipPayment).where(
        MembershipPayment.gateway_object_id == inv.invoice_id,
        col(MembershipPayment.kind).in_((PaymentKind.RENEWAL, PaymentKind.RECOVERED)))).first()
    if paid is None:
        if _insert(s, MembershipPayment(kind=kind, gateway_object_id=inv.invoice_id, amount_cents=inv.amount_paid,
                                        status="paid", attempt=inv.attempt_count,
                                        occurred_at=inv.paid_at or occurred_fallback, **base)):
            written.append(kind)
    elif paid.kind != kind and kind == PaymentKind.RECOVERED:
        paid.kind = kind
        s.add(paid)
        written.append(kind)
    return written


def record_refunds(s: Session, charge: ChargeState, m: Membership | None, order: SalesOrder | None) -> int:
    written = 0
    for refund in charge.refunds:
        if refund.status not in ("succeeded", "pending"):
            continue
        row = MembershipPayment(kind=PaymentKind.REFUND, gateway_object_id=refund.refund_id,
                                membership_id=m.id if m else (order.membership_id if order else None),
                                customer_id=m.customer_id if m else (order.customer_id if order else None),
                                invoice_id=charge.invoice_id, payment_id=charge.payment_id,
                                amount_cents=refund.amount, status=refund.status,
                                occurred_at=refund.created or utcnow())
        written += _insert(s, row)
    return written


def record_dispute(s: Session, dispute: DisputeState, m: Membership | None, order: SalesOrder | None) -> bool:
    row = MembershipPayment(kind=PaymentKind.DISPUTE, gateway_object_id=dispute.dispute_id,
                            membership_id=m.id if m else (order.membership_id if order else None),
                            customer_id=m.customer_id if m else (order.customer_id if order else None),
                            payment_id=dispute.payment_id, amount_cents=dispute.amount, status=dispute.status,
                            reason=dispute.reason, occurred_at=dispute.created or utcnow())
    if not _insert(s, row):
        return False
    audit.record(s, SYNC_ACTOR, "payment.disputed", "membership" if row.membership_id else "sales_order",
                 row.membership_id or (order.id if order else None),
                 after={"dispute": dispute.dispute_id, "amount_cents": dispute.amount, "reason": dispute.reason,
                        "charge": dispute.charge_id})
    return True


def reconcile_card(s: Session, card: CardState, event_type: str) -> bool:
    rows = s.exec(select(PaymentMethod).where(PaymentMethod.gateway_token == card.payment_method_id)).all()
    for pm in rows:
        before = {"last4": pm.last4, "exp": f"{pm.exp_month}/{pm.exp_year}", "detached": pm.detached_at is not None}
        if card.customer_id is None or event_type == "payment_method.detached":
            if pm.detached_at is None:
                pm.detached_at, pm.is_default = utcnow(), False
        else:
            pm.brand, pm.last4, pm.exp_month, pm.exp_year = card.brand, card.last4, card.exp_month, card.exp_year
        after = {"last4": pm.last4, "exp": f"{pm.exp_month}/{pm.exp_year}", "detached": pm.detached_at is not None}
        if after != before:
            s.add(pm)
            audit.record(s, SYNC_ACTOR, "card.synced", "payment_method", pm.id, before=before, after=after)
    return bool(rows)


def order_for_payment(s: Session, payment_id: str | None) -> SalesOrder | None:
    if not payment_id:
        return None
    return s.exec(select(SalesOrder).where(SalesOrder.gateway_payment_id == payment_id)).first()


def _insert(s: Session, row: MembershipPayment) -> bool:
    """Insert unless the (kind, object) row is there: a savepoint keeps a lost race from undoing the rest."""
    if s.exec(select(MembershipPayment.id).where(MembershipPayment.kind == row.kind,
                                                 MembershipPayment.gateway_object_id == row.gateway_object_id)).first():
        return False
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        return False
    return True


def _no_later_than(s: Session, row: MembershipPayment) -> None:
    """An event older than the one that wrote this (kind, object) row moves its `occurred_at` back to its own."""
    stored = s.exec(select(MembershipPayment).where(MembershipPayment.kind == row.kind,
                                                    MembershipPayment.gateway_object_id == row.gateway_object_id)).first()
    if stored is not None and _utc(row.occurred_at) < _utc(stored.occurred_at):
        stored.occurred_at = row.occurred_at
        s.add(stored)


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
