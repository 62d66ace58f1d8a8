"""The numbers operators watch (issue 18, item 7): each figure of services/lane_metrics.py from rows written
directly, on the site's days (America/Chicago), and a 30-day series in the same few queries as one day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from clarity_tui.services.actor import Actor
from clarity_tui.services.lane_metrics import MetricsError, day_figures, figures_for, series
from clarity_tui.services.permissions import PermissionDenied
from db.models import OrderKind, OrderState, Role
from db.models.wash import CommissionEntry
from db.models_billing import PaymentKind
from tests.helpers.lane_day import LaneDay

pytestmark = pytest.mark.both_databases  # reports: SQL over dates on both databases (tests/conftest.py)

CHICAGO = ZoneInfo("America/Chicago")
DAY = dt.date(2026, 11, 20)  # CST (UTC-6): the site's day is 06:00 UTC to 06:00 UTC the next day


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=CHICAGO).astimezone(dt.UTC)


def test_each_figure_of_a_day_comes_from_its_rows(db) -> None:
    lane = LaneDay(db)
    for at in (local(DAY, 0, 0), local(DAY, 9), local(DAY, 13), local(DAY, 23, 59)):
        lane.wash("retail", at)
    lane.wash("retail", local(DAY - dt.timedelta(days=1), 23, 59))  # the day before
    lane.wash("retail", local(DAY + dt.timedelta(days=1), 0, 0))  # the day after
    lane.wash("member", local(DAY, 8))
    lane.wash("member", local(DAY, 17))
    lane.wash("member", local(dt.date(2026, 11, 3), 12))  # earlier this month: visits per member count it
    lane.wash("member", local(dt.date(2026, 10, 31), 12))  # last month: not

    # Memberships current on the day: 3 from the 1st, a paused and a past-due one from the day itself, and one
    # that ends tomorrow; one starts tomorrow (not yet), one ended in October (no longer).
    start = dt.date(2026, 11, 1)
    current = [lane.membership(start) for _ in range(3)]
    lane.membership(DAY, "paused")
    lane.membership(DAY, "past_due")
    lane.membership(start, "cancelled", expires_on=DAY + dt.timedelta(days=1))
    lane.membership(DAY + dt.timedelta(days=1))
    lane.membership(dt.date(2026, 9, 1), "expired", expires_on=dt.date(2026, 10, 1))
    lane.refusal(local(DAY, 10), current[0])

    alex_1 = lane.sale(local(DAY, 9, 5), "Alex Attendant")
    alex_2 = lane.sale(local(DAY, 13, 5), "Alex Attendant", credit_cents=1200)  # "Join today" after a $12 wash
    blair = lane.sale(local(DAY, 15), "Blair Booth", state=OrderState.PENDING_SYNC)  # paid, gateway to follow
    lane.sale(local(DAY, 16), "Alex Attendant", kind=OrderKind.MIGRATION)  # a migration is not a sale
    lane.sale(local(DAY, 16), "Alex Attendant", state=OrderState.CANCELLED)
    lane.sale(local(DAY, 16), "Alex Attendant", kind=OrderKind.PLAN_CHANGE)
    lane.sale(local(DAY + dt.timedelta(days=1), 1), "Alex Attendant")  # tomorrow's

    lane.commission("Alex Attendant", 500, local(DAY, 9, 5), alex_1)
    lane.commission("Alex Attendant", 500, local(DAY, 13, 5), alex_2)
    lane.commission("Alex Attendant", -500, local(DAY, 18), alex_1, CommissionEntry.CLAWBACK)  # refunded
    lane.commission("Blair Booth", 700, local(DAY, 15), blair)

    # Ends on the day: a cancel after the last retry failed (card failure); a cancel whose failed invoice was
    # then paid, an expiry at the period's end and a cancel with no end date recorded (voluntary).
    card = lane.membership(start, "cancelled", expires_on=DAY)
    lane.payment(PaymentKind.RENEWAL_FAILED, local(DAY, 2), card, "in_card")
    lane.payment(PaymentKind.RENEWAL_FAILED, local(DAY, 3), card, "in_card")
    paid_late = lane.membership(start, "cancelled", expires_on=DAY)
    lane.payment(PaymentKind.RENEWAL_FAILED, local(dt.date(2026, 11, 10), 2), paid_late, "in_late")
    lane.payment(PaymentKind.RECOVERED, local(DAY, 4), paid_late, "in_late")
    lane.membership(start, "expired", expires_on=DAY)
    lane.membership(start, "cancelled", updated_at=local(DAY, 22))
    # A sale declined at the lane cancels the membership it made: no member was lost.
    never = lane.membership(DAY, "cancelled", updated_at=local(DAY, 11))
    lane.sale(local(DAY, 11), "Alex Attendant", state=OrderState.FAILED, membership_id=never)
    lane.payment(PaymentKind.RENEWAL, local(DAY, 5), current[0], "in_a")
    lane.payment(PaymentKind.RENEWAL, local(DAY, 5), current[1], "in_b")
    lane.payment(PaymentKind.REFUND, local(DAY, 5), current[1], "re_b")  # not a renewal

    f = day_figures(db, DAY, CHICAGO)
    assert (f.retail_washes, f.member_visits, f.limit_refusals) == (4, 2, 1)
    assert (f.memberships_sold, f.conversion_rate) == (3, 0.75)
    assert (f.upsell_credits, f.upsell_credit_cents) == (1, 1200)
    assert f.sales_by_operator == {"Alex Attendant": 2, "Blair Booth": 1}
    assert f.commissions == {"Alex Attendant": 500, "Blair Booth": 700}
    assert (f.renewals, f.renewal_failures) == (3, 2)  # two paid first time and one recovered; two failed tries
    assert (f.churn_voluntary, f.churn_card_failure) == (3, 1)
    assert f.current_members == 6
    assert f.visits_per_member == pytest.approx(3 / 6)  # Nov 3's visit and today's two
    body = f.as_json()
    assert {"retail_washes", "member_visits", "limit_refusals", "memberships_sold", "conversion_rate",
            "upsell_credits", "commissions"} <= body.keys()
    assert body["day"] == "2026-11-20" and body["visits_per_member"] == 0.5


def test_a_quiet_day_has_no_rates(db) -> None:
    f = day_figures(db, DAY, CHICAGO)
    assert (f.retail_washes, f.memberships_sold, f.conversion_rate, f.visits_per_member) == (0, 0, None, None)
    assert f.commissions == {} and f.sales_by_operator == {}


def test_days_are_the_sites_days_across_midnight_and_the_clock_change(db) -> None:
    lane = LaneDay(db)
    evening = dt.datetime(2026, 11, 21, 2, 30, tzinfo=dt.UTC)  # Nov 20, 8:30 pm in Chicago
    lane.wash("retail", evening)
    lane.sale(evening, "Alex Attendant")
    assert day_figures(db, DAY, CHICAGO).retail_washes == 1
    assert day_figures(db, DAY + dt.timedelta(days=1), CHICAGO).retail_washes == 0
    assert day_figures(db, DAY, dt.UTC).retail_washes == 0  # on UTC days it is the next day's
    assert day_figures(db, DAY + dt.timedelta(days=1), dt.UTC).memberships_sold == 1
    # Nov 1 2026 is 25 hours long in Chicago (CDT, UTC-5, to CST, UTC-6): 05:00 UTC Nov 1 to 06:00 UTC Nov 2.
    fall_back = dt.date(2026, 11, 1)
    lane.wash("member", dt.datetime(2026, 11, 1, 4, 59, tzinfo=dt.UTC))  # Oct 31, 11:59 pm CDT
    lane.wash("member", dt.datetime(2026, 11, 1, 5, 0, tzinfo=dt.UTC))  # Nov 1, midnight CDT
    lane.wash("member", dt.datetime(2026, 11, 2, 5, 59, tzinfo=dt.UTC))  # Nov 1, 11:59 pm CST
    days = series(db, fall_back, CHICAGO, days=2)
    assert [(d.day, d.member_visits) for d in days] == [(dt.date(2026, 10, 31), 1), (fall_back, 2)]


def test_a_month_of_days_costs_the_queries_of_one(db) -> None:
    lane = LaneDay(db)
    end = dt.date(2026, 11, 30)
    for back in range(0, 30, 3):
        day = end - dt.timedelta(days=back)
        lane.wash("retail", local(day, 10))
        lane.wash("retail", local(day, 11))
        lane.wash("member", local(day, 12))
        order = lane.sale(local(day, 10, 30), "Alex Attendant" if back % 2 else "Blair Booth")
        lane.commission("Alex Attendant" if back % 2 else "Blair Booth", 500, local(day, 10, 30), order)
        lane.payment(PaymentKind.RENEWAL, local(day, 6))
    lane.membership(dt.date(2026, 10, 1))
    lane.membership(dt.date(2026, 10, 1), "cancelled", expires_on=dt.date(2026, 11, 15))

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        month = series(db, end, CHICAGO, days=30)
        for_month = len(statements)
        statements.clear()
        series(db, end, CHICAGO, days=120)
        for_four_months = len(statements)
        statements.clear()
        one = series(db, end, CHICAGO, days=1)
        for_one = len(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # One query per source (and one more when memberships ended in the days shown), whatever the days.
    assert for_month == for_four_months <= 11, statements
    assert for_one <= for_month
    assert [d.day for d in month] == [end - dt.timedelta(days=29 - i) for i in range(30)]
    assert month[-1] == one[0]
    assert sum(d.retail_washes for d in month) == 20 and sum(d.memberships_sold for d in month) == 10
    assert sum(d.renewals for d in month) == 10
    assert [d.churn_voluntary for d in month if d.churn_voluntary] == [1]
    by_day = {d.day: d for d in month}
    assert by_day[dt.date(2026, 11, 15)].current_members == 1  # the cancelled one ended that day
    assert by_day[dt.date(2026, 11, 14)].current_members == 2
    assert by_day[end].conversion_rate == 0.5
    # Visits per member start again on the 1st: Nov 30 counts this month's ten visits, over one member.
    assert by_day[end].visits_per_member == 10.0
    for day in (dt.date(2026, 11, 3), dt.date(2026, 11, 9), end):
        assert by_day[day] == day_figures(db, day, CHICAGO)


def test_the_figures_are_for_those_who_read_the_whole_site(db) -> None:
    manager = Actor("Morgan Manager", Role.MANAGER)
    assert len(figures_for(db, DAY, CHICAGO, actor=manager, days=7)) == 7
    with pytest.raises(PermissionDenied, match="Alex Attendant \\(attendant\\) may not view reports"):
        figures_for(db, DAY, CHICAGO, actor=Actor("Alex Attendant", Role.ATTENDANT))
    with pytest.raises(MetricsError, match="choose 1 to 366"):
        series(db, DAY, CHICAGO, days=0)
