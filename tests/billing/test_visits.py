"""Member visits and limits (issue 18 item 3): a visit per session, the plan's limit in the site's calendar,
refusals with the last visit's time, and two terminals racing one car."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import col, select

from clarity_tui.services.visits import VisitState
from db.models import Customer, Membership, Vehicle, VisitRefusal, Wash
from tests.helpers.visits import CHICAGO, MORNING, close, race, read_at, visit_member, visits_service

pytestmark = pytest.mark.both_databases


def _washes(db, vehicle_id: int) -> list[Wash]:
    with db.read() as s:
        return list(s.exec(select(Wash).where(Wash.vehicle_id == vehicle_id).order_by(col(Wash.id))))


def _refusals(db, vehicle_id: int) -> list[VisitRefusal]:
    with db.read() as s:
        return list(s.exec(select(VisitRefusal).where(VisitRefusal.vehicle_id == vehicle_id)))


def test_a_member_read_at_the_pre_gate_then_two_lanes_is_one_visit(db) -> None:
    member = visit_member(db)
    sid = read_at(db, member.plate, "Pre-Gate", MORNING)
    assert _washes(db, member.vehicle_id) == []  # not at a lane yet
    assert visits_service(db, MORNING).status(sid).state == VisitState.PRE_GATE
    assert read_at(db, member.plate, "Lane 1", MORNING) == sid
    assert read_at(db, member.plate, "Lane 2", MORNING) == sid  # drove on: the same session, the same visit
    [wash] = _washes(db, member.vehicle_id)
    assert (wash.session_id, wash.kind, wash.membership_id, wash.customer_id) == \
        (sid, "member", member.membership_id, member.customer_id)
    assert (wash.package_code, wash.dispatch_status) == ("ULT", "waiting")  # the dearest package, not the extra
    assert wash.site_id is not None and wash.lane_id is not None
    decision = visits_service(db, MORNING).status(sid)
    assert (decision.state, decision.wash_id) == (VisitState.VISIT, wash.id)
    assert not decision.offers_single_wash and not decision.offers_update_card


def test_a_plan_with_no_package_records_the_visit_without_one(db) -> None:
    member = visit_member(db, includes=("CERAMIC",))
    read_at(db, member.plate, "Lane 1", MORNING)
    [wash] = _washes(db, member.vehicle_id)
    assert wash.package_code is None


@pytest.mark.parametrize(("status", "paid_through", "state"), [
    ("past_due", dt.date(2026, 11, 8), VisitState.PAST_DUE),
    ("active", dt.date(2026, 11, 1), VisitState.PAST_DUE),  # lapsed: paid through 9 days ago, 3 days' grace
    ("expired", dt.date(2026, 11, 1), VisitState.EXPIRED),
    ("cancelled", dt.date(2026, 11, 1), VisitState.CANCELLED),
])
def test_no_visit_for_a_member_who_is_not_entitled(db, status: str, paid_through: dt.date,
                                                    state: VisitState) -> None:
    member = visit_member(db, status=status, paid_through=paid_through)
    sid = read_at(db, member.plate, "Lane 1", MORNING)
    assert _washes(db, member.vehicle_id) == [] and _refusals(db, member.vehicle_id) == []
    decision = visits_service(db, MORNING).status(sid)
    assert decision.state == state and decision.offers_single_wash
    assert decision.offers_update_card == (state in (VisitState.PAST_DUE, VisitState.EXPIRED))
    assert decision.message is not None and "single wash" in decision.message


def test_no_visit_for_an_unknown_car_or_a_members_car_no_membership_covers(db) -> None:
    member = visit_member(db)
    with db.write() as s:
        second = Vehicle(customer_id=member.customer_id, plate="UNC-0001", plate_normalized="UNC0001",
                         plate_region="US-TX")
        s.add(second)
        s.flush()
        second_id = second.id
    unknown = read_at(db, "ZZZ-9999", "Lane 1", MORNING)
    uncovered = read_at(db, "UNC-0001", "Lane 2", MORNING)
    with db.read() as s:
        assert s.exec(select(Wash)).all() == []
    service = visits_service(db, MORNING)
    assert service.status(unknown).state == VisitState.NOT_MEMBER
    assert service.status(uncovered).state == VisitState.NOT_MEMBER
    assert service.history(vehicle_id=second_id) == []


def test_a_second_visit_the_same_site_day_is_refused_with_the_last_visits_time_and_passes_the_next_day(db) -> None:
    member = visit_member(db, limit=1, period="day", plan_name="Gold")
    first = read_at(db, member.plate, "Lane 1", MORNING)  # 09:00 in Chicago
    close(db, first)
    # 20:30 in Chicago is already tomorrow in UTC: still the site's same day.
    evening = dt.datetime(2026, 11, 11, 2, 30, tzinfo=dt.UTC)
    second = read_at(db, member.plate, "Lane 2", evening)
    assert len(_washes(db, member.vehicle_id)) == 1
    [refusal] = _refusals(db, member.vehicle_id)
    assert refusal.session_id == second
    decision = visits_service(db, evening).status(second)
    assert decision.state == VisitState.LIMIT and decision.offers_single_wash and not decision.offers_update_card
    assert decision.last_visit_at == MORNING
    assert decision.message == ("Over the Gold plan's limit of 1 wash a day: last visit today at 09:00. "
                                "Sell a single wash.")
    read_at(db, member.plate, "Lane 3", evening)  # drove on: still the one refusal
    assert len(_refusals(db, member.vehicle_id)) == 1
    close(db, second)
    next_morning = dt.datetime(2026, 11, 11, 14, 0, tzinfo=dt.UTC)  # 08:00 the next site day
    third = read_at(db, member.plate, "Lane 1", next_morning)
    assert len(_washes(db, member.vehicle_id)) == 2
    assert visits_service(db, next_morning).status(third).state == VisitState.VISIT
    # Told the next day, the refused session's last visit is "on Nov 10".
    assert "last visit on Nov 10 at 09:00" in (visits_service(db, next_morning).status(second).message or "")


def test_a_monthly_limit_counts_the_site_month(db) -> None:
    member = visit_member(db, limit=2, period="month", plan_name="Silver")
    for when in (dt.datetime(2026, 11, 2, 15, tzinfo=dt.UTC), dt.datetime(2026, 11, 20, 15, tzinfo=dt.UTC)):
        close(db, read_at(db, member.plate, "Lane 1", when))
    # 20:00 on Nov 30 in Chicago (Dec 1 in UTC): still November at the site.
    month_end = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
    refused = read_at(db, member.plate, "Lane 1", month_end)
    assert len(_washes(db, member.vehicle_id)) == 2
    decision = visits_service(db, month_end).status(refused)
    assert decision.state == VisitState.LIMIT
    assert decision.message == ("Over the Silver plan's limit of 2 washes a month: last visit on Nov 20 at 09:00. "
                                "Sell a single wash.")
    close(db, refused)
    december = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
    assert visits_service(db, december).status(read_at(db, member.plate, "Lane 1", december)).state == VisitState.VISIT
    assert len(_washes(db, member.vehicle_id)) == 3


def test_a_plan_with_no_limit_lets_every_visit_through(db) -> None:
    member = visit_member(db, limit=None)
    for hour in (15, 17, 19):
        close(db, read_at(db, member.plate, "Lane 1", MORNING.replace(hour=hour)))
    assert len(_washes(db, member.vehicle_id)) == 3
    assert _refusals(db, member.vehicle_id) == []


def test_the_history_names_the_site_lane_and_package_on_the_sites_clock(db) -> None:
    member = visit_member(db)
    close(db, read_at(db, member.plate, "Lane 2", MORNING))
    close(db, read_at(db, member.plate, "Lane 1", MORNING + dt.timedelta(days=1)))
    service = visits_service(db, MORNING)
    rows = service.history(vehicle_id=member.vehicle_id)
    assert [(r.at.strftime("%Y-%m-%d %H:%M"), r.lane_name, r.package_name, r.kind, r.plate) for r in rows] == [
        ("2026-11-11 09:00", "Lane 1", "Ultimate", "member", member.plate),
        ("2026-11-10 09:00", "Lane 2", "Ultimate", "member", member.plate),
    ]
    assert rows[0].site_name == "Clarity Express Wash" and rows[0].at.tzinfo is CHICAGO
    assert service.history(customer_id=member.customer_id) == rows
    with db.read() as s:  # another customer's record shows none of them
        other = s.exec(select(Customer).where(Customer.id != member.customer_id)).first()
    assert other is None or service.history(customer_id=other.id) == []


# --- races, in real processes -----------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))  # each round a fresh race: a missing lock loses about half of them
def test_two_sessions_of_one_car_read_at_once_make_one_visit_and_one_refusal(db, db_url, round_: int) -> None:
    member = visit_member(db, limit=1)
    first = read_at(db, member.plate, "Pre-Gate", MORNING)  # at the Pre-Gate: no visit yet
    close(db, first)
    second = read_at(db, member.plate, "Pre-Gate", MORNING)
    with db.write() as s:  # both sessions are at lanes now, neither decided (as two terminals would find them)
        from db.models import Lane, VehicleSession

        lanes = {lane.name: lane.id for lane in s.exec(select(Lane))}
        s.get(VehicleSession, first).lane_id = lanes["Lane 1"]
        s.get(VehicleSession, second).lane_id = lanes["Lane 2"]
    results = race(db_url, [("record", first), ("record", second)], MORNING)
    assert sorted(state for state, _ in results) == ["limit", "visit"]
    assert len(_washes(db, member.vehicle_id)) == 1
    assert len(_refusals(db, member.vehicle_id)) == 1


def test_one_session_recorded_by_two_processes_at_once_is_one_visit(db, db_url) -> None:
    member = visit_member(db, limit=1)
    sid = read_at(db, member.plate, "Pre-Gate", MORNING)
    with db.write() as s:
        from db.models import Lane, VehicleSession

        s.get(VehicleSession, sid).lane_id = s.exec(select(Lane.id).where(Lane.name == "Lane 1")).one()
    results = race(db_url, [("record", sid), ("record", sid)], MORNING)
    [wash] = _washes(db, member.vehicle_id)
    assert results == [("visit", wash.id), ("visit", wash.id)]
    assert _refusals(db, member.vehicle_id) == []


def test_two_cameras_reading_one_member_at_once_record_one_visit(db, db_url) -> None:
    member = visit_member(db, limit=1)
    ids = race(db_url, [("read", (member.plate, "Lane 1")), ("read", (member.plate, "Lane 2"))], MORNING)
    assert ids[0] == ids[1]  # one session, moved
    [wash] = _washes(db, member.vehicle_id)
    assert wash.session_id == ids[0]
    assert _refusals(db, member.vehicle_id) == []
    with db.read() as s:
        assert s.get(Membership, member.membership_id) is not None


def test_the_session_detail_carries_the_visit_for_the_session_screen(db) -> None:
    from clarity_tui.services.sessions import SessionService
    from tests.helpers.visits import policy

    member = visit_member(db, limit=1, plan_name="Gold")
    close(db, read_at(db, member.plate, "Lane 1", MORNING))
    refused = read_at(db, member.plate, "Lane 2", MORNING + dt.timedelta(hours=2))
    detail = SessionService(db, policy(), clock=lambda: MORNING + dt.timedelta(hours=2)).detail(refused)
    assert detail.visit is not None and detail.visit.state == VisitState.LIMIT
    assert detail.visit.last_visit_at == MORNING and detail.visit.offers_single_wash
    assert detail.visit.last_visit_at.astimezone(CHICAGO).strftime("%H:%M") == "09:00"
