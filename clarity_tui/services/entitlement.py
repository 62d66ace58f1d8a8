"""Who gets a member's wash today: the one rule the board, the session screen and the CLI share.

Members are recognised by plate at the lane, so a stale MEMBER is a free wash. The badge depends on
the date, not only on the stored status:

- MEMBER while the member has paid through today, or is within `grace_days` of that date (a renewal
  the gateway has not reported yet). Past the grace it is PAST DUE, whatever the stored status says:
  when the sync stops, nothing moves `paid_through` on, so entitlement fails closed by itself.
- PAST DUE (with the days since the date they paid through) when the billing engine says so.
- PAUSED until the pause's resume date; from that date MEMBER again, even before any event says so.
- A cancel at period end takes effect on that date: EXPIRED.
- EXPIRED and CANCELLED as stored.

A membership with no `paid_through` (no billing date at all: a complimentary membership) is judged by
its status alone.

Plain Python (no SQLAlchemy): the board's start-up read model calls it before the ORM is imported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Standing(StrEnum):
    MEMBER = "member"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Best first: a car covered by two memberships shows the better one.
STANDING_RANK = (Standing.MEMBER, Standing.PAST_DUE, Standing.PAUSED, Standing.EXPIRED, Standing.CANCELLED)

DEFAULT_GRACE_DAYS = 3  # BillingConfig.grace_days' default; the board's policy before settings load


@dataclass(frozen=True)
class EntitlementPolicy:
    grace_days: int = DEFAULT_GRACE_DAYS
    zone: dt.tzinfo | None = None  # the site's zone: what "today" is (None: this terminal's)

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.zone).date() if self.zone else now.astimezone().date()

    @classmethod
    def from_settings(cls, settings: Any) -> EntitlementPolicy:
        return cls(grace_days=settings.billing.grace_days, zone=settings.site.zone)


@dataclass(frozen=True)
class Entitlement:
    standing: Standing
    days_overdue: int = 0

    @property
    def rank(self) -> int:
        return STANDING_RANK.index(self.standing)


def as_date(value: Any) -> dt.date | None:
    """SQLite hands dates back as text, PostgreSQL as dates."""
    if value is None or isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def entitlement(status: str, *, paid_through: Any, resumes_on: Any = None, cancel_at_period_end: bool = False,
                expires_on: Any = None, today: dt.date, grace_days: int = DEFAULT_GRACE_DAYS) -> Entitlement:
    paid = as_date(paid_through)
    if status == "cancelled":
        return Entitlement(Standing.CANCELLED)
    if status == "expired":
        return Entitlement(Standing.EXPIRED)
    end = as_date(expires_on) or paid
    if cancel_at_period_end and end is not None and today >= end:
        return Entitlement(Standing.EXPIRED)
    if status == "paused":
        resume = as_date(resumes_on)
        if resume is None or today < resume:
            return Entitlement(Standing.PAUSED)
        status = "active"  # the pause has ended: judged as any active member
    overdue = max(0, (today - paid).days) if paid is not None else 0
    if status == "past_due":
        return Entitlement(Standing.PAST_DUE, overdue)
    if paid is None or today <= paid + dt.timedelta(days=grace_days):
        return Entitlement(Standing.MEMBER)
    return Entitlement(Standing.PAST_DUE, overdue)
