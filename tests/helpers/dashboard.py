"""A fixed month at the lanes for the dashboard's Pilot test and snapshot: the last 30 days to the fixed test
day (tests/helpers/clock.py, on the test settings' UTC days), the same rows every run."""

from __future__ import annotations

import datetime as dt

from db.engine import Database
from db.models.wash import CommissionEntry
from db.models_billing import PaymentKind
from tests.helpers.clock import FIXED_NOW
from tests.helpers.lane_day import LaneDay

TODAY = FIXED_NOW.date()


def noon(back: int) -> dt.datetime:
    """Noon UTC, `back` days before the fixed test day."""
    return dt.datetime.combine(TODAY - dt.timedelta(days=back), dt.time(12), tzinfo=dt.UTC)


def busy_month(db: Database) -> LaneDay:
    """Retail washes and member visits every day; sales by three operators, renewals, failures and ends on a fixed
    rhythm; one end after a failed renewal (card failure) and one at a period's end (cancelled)."""
    lane = LaneDay(db)
    start = TODAY - dt.timedelta(days=60)
    members = [lane.membership(start) for _ in range(8)]
    for back in range(29, -1, -1):
        at = noon(back)
        for _ in range(3 + back % 3):
            lane.wash("retail", at)
        for _ in range(1 + back % 4):
            lane.wash("member", at)
        if back % 2 == 0:
            order = lane.sale(at + dt.timedelta(minutes=5), "Alex Attendant", credit_cents=1200 if back % 4 else 0)
            lane.commission("Alex Attendant", 500, at, order)
        if back % 3 == 0:
            order = lane.sale(at + dt.timedelta(minutes=9), "Blair Booth")
            lane.commission("Blair Booth", 500, at, order)
            if back == 9:
                lane.commission("Blair Booth", -500, at + dt.timedelta(hours=1), order, CommissionEntry.CLAWBACK)
        if back % 5 == 1:
            lane.payment(PaymentKind.RENEWAL, at, members[back % 8], f"in_{back}")
        if back % 7 == 2:
            lane.payment(PaymentKind.RENEWAL_FAILED, at, members[back % 8], f"in_f{back}")
    lane.sale(noon(0), "Casey Closer")
    lane.membership(start, "expired", expires_on=TODAY - dt.timedelta(days=4))
    card = lane.membership(start, "cancelled", expires_on=TODAY - dt.timedelta(days=11))
    lane.payment(PaymentKind.RENEWAL_FAILED, noon(12), card, "in_card")
    return lane
