"""Entitlement depends on the date (issue 13 item 2): the one rule the board, the session and the CLI use."""

from __future__ import annotations

import datetime as dt

import pytest

from clarity_tui.services.board_view import Badge, BubbleView, badge_for
from clarity_tui.services.entitlement import Standing, entitlement

TODAY = dt.date(2026, 11, 30)
D = dt.timedelta


@pytest.mark.parametrize(
    ("status", "kw", "standing", "overdue"),
    [
        # Paid through today or later: a member.
        ("active", {"paid_through": TODAY}, Standing.MEMBER, 0),
        ("active", {"paid_through": TODAY + D(20)}, Standing.MEMBER, 0),
        # The grace: a renewal the gateway has not reported yet (3 days by default).
        ("active", {"paid_through": TODAY - D(3)}, Standing.MEMBER, 0),
        # Past the grace: fails closed, whatever the stored status says.
        ("active", {"paid_through": TODAY - D(4)}, Standing.PAST_DUE, 4),
        ("active", {"paid_through": TODAY - D(40)}, Standing.PAST_DUE, 40),
        # The billing engine says past due: no grace, with the days since the paid-through date.
        ("past_due", {"paid_through": TODAY - D(12)}, Standing.PAST_DUE, 12),
        ("past_due", {"paid_through": TODAY + D(2)}, Standing.PAST_DUE, 0),
        # A pause ends on its resume date, even with no event.
        ("paused", {"paid_through": TODAY + D(5), "resumes_on": TODAY + D(1)}, Standing.PAUSED, 0),
        ("paused", {"paid_through": TODAY + D(5), "resumes_on": TODAY}, Standing.MEMBER, 0),
        ("paused", {"paid_through": TODAY - D(10), "resumes_on": TODAY}, Standing.PAST_DUE, 10),
        ("paused", {"paid_through": TODAY - D(10)}, Standing.PAUSED, 0),
        # A cancel at period end takes effect on that date.
        ("active", {"paid_through": TODAY + D(1), "cancel_at_period_end": True}, Standing.MEMBER, 0),
        ("active", {"paid_through": TODAY, "cancel_at_period_end": True}, Standing.EXPIRED, 0),
        ("active", {"paid_through": TODAY + D(9), "cancel_at_period_end": True, "expires_on": TODAY},
         Standing.EXPIRED, 0),
        ("expired", {"paid_through": TODAY + D(9)}, Standing.EXPIRED, 0),
        ("cancelled", {"paid_through": TODAY + D(9)}, Standing.CANCELLED, 0),
        # No billing date at all (a complimentary membership): judged by its status alone.
        ("active", {"paid_through": None}, Standing.MEMBER, 0),
        # SQLite hands dates back as text.
        ("active", {"paid_through": (TODAY - D(4)).isoformat()}, Standing.PAST_DUE, 4),
    ],
)
def test_the_lane_shows_member_only_while_status_and_paid_through_plus_grace_allow(status, kw, standing, overdue) -> None:  # noqa: ANN001
    judged = entitlement(status, today=TODAY, grace_days=3, **kw)
    assert (judged.standing, judged.days_overdue) == (standing, overdue)


def test_the_grace_is_a_setting() -> None:
    assert entitlement("active", paid_through=TODAY - D(4), today=TODAY, grace_days=7).standing == Standing.MEMBER
    assert entitlement("active", paid_through=TODAY - D(1), today=TODAY, grace_days=0).standing == Standing.PAST_DUE


def test_badges_and_their_labels() -> None:
    assert badge_for(Standing.PAST_DUE, None) == Badge.PAST_DUE
    assert badge_for(Standing.EXPIRED, None) == Badge.EXPIRED
    # An ended membership gives way to a legacy match (the car may be migrated).
    assert badge_for(Standing.CANCELLED, 7) == Badge.LEGACY
    assert badge_for(None, None) == Badge.NEW
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    bubble = BubbleView(1, 1, "ABC123", None, None, None, Badge.PAST_DUE, "A B", "Basic", now, "waiting", None,
                        False, 1.0, days_overdue=12)
    assert bubble.badge_label == "PAST DUE 12d"
