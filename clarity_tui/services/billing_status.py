"""`clarity-tui payments status`: where the billing sync stands, and the members by standing (issue 13).

Members are counted as the lane judges them today (entitlement.py), so a member whose renewal the sync
has not heard of for longer than the grace counts as past due here too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlmodel import col, func, select

from clarity_tui.services.board_view import SyncHealth
from clarity_tui.services.entitlement import EntitlementPolicy, Standing, entitlement
from db.models import Membership, utcnow
from db.models_billing import BillingSync as SyncRow
from db.models_billing import GatewayEvent as EventRow
from db.models_billing import MembershipPayment, PaymentKind

# The JSON's names for the standings ("active" rather than the lane's "member").
STATUS_NAMES = {Standing.MEMBER: "active", Standing.PAST_DUE: "past_due", Standing.PAUSED: "paused",
                Standing.EXPIRED: "expired", Standing.CANCELLED: "cancelled"}
PAYMENT_NAMES = {PaymentKind.RENEWAL: "renewals", PaymentKind.RENEWAL_FAILED: "failed_renewals",
                 PaymentKind.RECOVERED: "recovered", PaymentKind.REFUND: "refunds", PaymentKind.DISPUTE: "disputes"}


def members_by_standing(db: Any, policy: EntitlementPolicy, now: dt.datetime) -> dict[str, int]:
    today = policy.today(now)
    counts: Counter[str] = Counter({name: 0 for name in STATUS_NAMES.values()})
    with db.read() as s:
        # sqlmodel's select() is typed for at most four columns: the fifth is added.
        for status, paid, resumes, cancelling, expires in s.exec(select(
                col(Membership.status), col(Membership.paid_through), col(Membership.resumes_on),
                col(Membership.cancel_at_period_end)).add_columns(col(Membership.expires_on))):
            judged = entitlement(status, paid_through=paid, resumes_on=resumes, cancel_at_period_end=cancelling,
                                 expires_on=expires, today=today, grace_days=policy.grace_days)
            counts[STATUS_NAMES[judged.standing]] += 1
    return dict(counts)


def billing_status(db: Any, settings: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    policy = EntitlementPolicy.from_settings(settings)
    with db.read() as s:
        row = s.get(SyncRow, "events")
        last = s.get(EventRow, row.last_event_id) if row is not None and row.last_event_id else None
        payments = {name: 0 for name in PAYMENT_NAMES.values()}
        for kind, count in s.exec(select(MembershipPayment.kind, func.count()).group_by(MembershipPayment.kind)):
            payments[PAYMENT_NAMES.get(kind, kind)] = count
        unknown = s.exec(select(func.count()).select_from(EventRow).where(EventRow.outcome == "unknown_object")).one()
    success = _aware(row.last_success_at) if row is not None else None
    health = SyncHealth(success, row.last_error if row is not None else None)
    return {
        "gateway": settings.payments.gateway,
        "last_event": None if last is None else {
            "id": last.id, "type": last.type, "created_at": _iso(last.created_at), "outcome": last.outcome},
        "sync_lag_seconds": None if success is None else round((now - success).total_seconds(), 1),
        "last_success_at": _iso(success),
        "last_error": health.last_error,
        "stale": health.stale(now, settings.billing.sync_stale_after_hours),
        "leader": row.leader if row is not None else None,
        "members": members_by_standing(db, policy, now),
        "payments": payments,
        "unknown_events": unknown,
    }


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
