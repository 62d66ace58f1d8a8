"""Member visits when the membership changes while the car waits at the lane: the attendant upgrades a car
refused over its limit, or a past-due member updates their card. The car is entitled now, so it is not
shown LIMIT (or PAST DUE) and the key that sends it to the tunnel records its visit and sends it.

Real parts: the database (SQLite and PostgreSQL), the session and visit services on the site's clock, the
tunnel dispatch with the simulated controller."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.card_present import reader_attended
from clarity_tui.services.orders.wash_sale import WashSaleService
from clarity_tui.services.tunnel_dispatch import TunnelDispatch, TunnelDispatchError
from clarity_tui.services.visits import VisitState
from db.engine import Database
from db.models import Membership, Plan, Role, VisitRefusal, Wash, WashKind
from hardware.card_reader.simulated import SimulatedCardReader
from hardware.tunnel.simulated import SimulatedTunnel
from tests.helpers.visits import CHICAGO, MORNING, close, policy, read_at, visit_member, visits_service

pytestmark = pytest.mark.both_databases

ALEX = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term")
LATER = MORNING + dt.timedelta(hours=2)  # 11:00 the same site day


def dispatcher(db: Database, tunnel: SimulatedTunnel, when: dt.datetime) -> TunnelDispatch:
    return TunnelDispatch(db, tunnel, ALEX, policy=policy(CHICAGO), clock=lambda: when)


def member_washes(db: Database, vehicle_id: int) -> list[Wash]:
    with db.read() as s:
        return list(s.exec(select(Wash).where(Wash.vehicle_id == vehicle_id, Wash.kind == WashKind.MEMBER)
                           .order_by(col(Wash.id))))


def refusals(db: Database, session_id: int) -> int:
    with db.read() as s:
        return len(s.exec(select(VisitRefusal).where(VisitRefusal.session_id == session_id)).all())


def test_a_car_refused_over_its_limit_then_upgraded_at_the_lane_is_let_through(db: Database) -> None:
    """Before: the refusal stood whatever the plan became (LIMIT on the session, on the board), and the car
    had no visit to send ("This car has no paid or entitled wash yet"). Now a refusal is judged again when
    the membership changed after it."""
    member = visit_member(db, limit=1, plan_name="Basic")
    close(db, read_at(db, member.plate, "Lane 1", MORNING))
    second = read_at(db, member.plate, "Lane 2", LATER)
    assert visits_service(db, LATER).status(second).state == VisitState.LIMIT
    assert refusals(db, second) == 1
    # The attendant sells the upgrade: the car's plan now has no limit.
    with db.write() as s:
        unlimited = Plan(code="ADV-UNL", name="Unlimited", price_cents=3999, visit_limit=None)
        s.add(unlimited)
        s.flush()
        s.exec(update(Membership).where(col(Membership.id) == member.membership_id)
               .values(plan_id=unlimited.id, updated_at=LATER + dt.timedelta(minutes=1)))  # as plan_changes does

    status = visits_service(db, LATER).status(second)
    assert (status.state, status.plan_name, status.message) == (VisitState.VISIT, "Unlimited", None)
    tunnel = SimulatedTunnel()
    outcome = dispatcher(db, tunnel, LATER).dispatch_session(second)
    assert outcome.status == "sent", outcome
    assert [t.plate for t in tunnel.sent] == [member.plate] and tunnel.gates_opened == ["Lane 2"]
    first_visit, visit = member_washes(db, member.vehicle_id)
    assert (visit.session_id, visit.membership_id, visit.id) == (second, member.membership_id, outcome.wash_id)
    assert refusals(db, second) == 0  # the board's LIMIT badge is the refusal: gone with it
    assert visits_service(db, LATER).status(second).wash_id == visit.id


def test_a_limit_raised_for_the_month_still_refuses_a_car_that_is_over_it(db: Database) -> None:
    """The guard on the fix: the refusal is judged again, not dropped, so a car still over the (new) limit
    stays refused and the tunnel key records no visit. (Before the fix it fails only on the new arguments.)"""
    member = visit_member(db, limit=1, plan_name="Basic")
    close(db, read_at(db, member.plate, "Lane 1", MORNING))
    close(db, read_at(db, member.plate, "Lane 1", MORNING + dt.timedelta(hours=1)))  # refused
    third = read_at(db, member.plate, "Lane 2", LATER)
    with db.write() as s:
        s.exec(update(Plan).where(col(Plan.id) == member.plan_id).values(visit_limit=1, visit_period="month"))
        s.exec(update(Membership).where(col(Membership.id) == member.membership_id)
               .values(updated_at=LATER + dt.timedelta(minutes=1)))
    assert visits_service(db, LATER).status(third).state == VisitState.LIMIT
    with pytest.raises(TunnelDispatchError, match="^This car has no paid or entitled wash yet"):
        dispatcher(db, SimulatedTunnel(), LATER).dispatch_session(third)
    assert len(member_washes(db, member.vehicle_id)) == 1 and refusals(db, third) == 1


def test_a_past_due_member_who_updates_the_card_at_the_lane_can_be_sent(db: Database) -> None:
    """Before: read while past due, the car had no visit, and none was recorded once the card paid: the
    tunnel key said "This car has no paid or entitled wash yet"."""
    member = visit_member(db, status="past_due", paid_through=dt.date(2026, 11, 1))
    session = read_at(db, member.plate, "Lane 3", MORNING)
    assert visits_service(db, MORNING).status(session).state == VisitState.PAST_DUE
    assert member_washes(db, member.vehicle_id) == []
    with db.write() as s:  # the new card paid the invoice: the billing engine's outcome
        s.exec(update(Membership).where(col(Membership.id) == member.membership_id)
               .values(status="active", paid_through=dt.date(2026, 12, 1)))
    tunnel = SimulatedTunnel()
    outcome = dispatcher(db, tunnel, LATER).dispatch_session(session)
    assert outcome.status == "sent", outcome
    (visit,) = member_washes(db, member.vehicle_id)
    assert (visit.session_id, visit.id, visit.dispatch_status) == (session, outcome.wash_id, "sent")


def test_a_member_entitled_at_the_lane_who_buys_an_extra_is_a_visit_not_a_retail_wash(db: Database) -> None:
    """Before: the paid extra made the session's only wash a *retail* one with no package (a member counted
    as a retail wash in the conversion rate, their visit never recorded, the tunnel sent no package)."""
    member = visit_member(db, status="past_due", paid_through=dt.date(2026, 11, 1), includes=("BASIC", "ULT"))
    session = read_at(db, member.plate, "Lane 1", MORNING)
    with db.write() as s:  # the card updated at the lane paid the invoice
        s.exec(update(Membership).where(col(Membership.id) == member.membership_id)
               .values(status="active", paid_through=dt.date(2026, 12, 1)))
    sale = WashSaleService(db, SimulatedGateway(db), ALEX, terminal="lane-1-term", zone=CHICAGO,
                           clock=lambda: LATER, grace_days=3)
    order_id = sale.open_for_session(session).order_id
    view = sale.choose(order_id, None, ["ceramic"])
    assert view.member_plan == "Gold" and view.total_cents == 3000
    with reader_attended(SimulatedCardReader(delay=0)):
        assert sale.pay(order_id).paid
    with db.read() as s:
        washes = list(s.exec(select(Wash).where(Wash.session_id == session)))
    assert [(w.kind, w.package_code, w.extras, w.order_id, w.membership_id) for w in washes] == [
        (WashKind.MEMBER, "ULT", ["CERAMIC"], order_id, member.membership_id)]
