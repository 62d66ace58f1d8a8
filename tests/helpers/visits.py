"""Members whose cars come back to the lanes (issue 18: visits and limits), and processes that race their reads."""

from __future__ import annotations

from collections.abc import Callable

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.entitlement import EntitlementPolicy
from clarity_tui.services.sessions import SessionService
from clarity_tui.services.visits import VisitService
from db.engine import Database
from db.models import (
    Customer,
    Membership,
    MembershipVehicle,
    Plan,
    PlanWashItem,
    SessionStatus,
    Vehicle,
    VehicleSession,
    WashItem,
)
from hardware.plate_reader import PlateEvent
from tests.helpers import forked

CHICAGO = ZoneInfo("America/Chicago")
# 09:00 on Nov 10 in Chicago (CST, UTC-6): the site's morning.
MORNING = dt.datetime(2026, 11, 10, 15, 0, tzinfo=dt.UTC)
PAID_THROUGH = dt.date(2026, 12, 5)

_numbers = itertools.count(1)


@dataclass
class VisitMember:
    customer_id: int
    vehicle_id: int
    membership_id: int
    plan_id: int
    plate: str


def ensure_menu(db: Database) -> None:
    """Two packages and an extra dearer than both (a plan's wash is its dearest *package*)."""
    with db.write() as s:
        if s.exec(select(WashItem).where(WashItem.code == "BASIC")).first() is None:
            s.add(WashItem(code="BASIC", name="Basic", price_cents=1000, position=1))
            s.add(WashItem(code="ULT", name="Ultimate", price_cents=2500, position=2))
            s.add(WashItem(code="CERAMIC", name="Ceramic", kind="extra", price_cents=3000, position=3))


def visit_member(db: Database, *, limit: int | None = 1, period: str = "day", status: str = "active",
                 paid_through: dt.date | None = PAID_THROUGH, plan_name: str = "Gold",
                 includes: tuple[str, ...] = ("BASIC", "ULT", "CERAMIC")) -> VisitMember:
    """A customer, a car, and a membership covering it on a plan of its own with this visit limit."""
    ensure_menu(db)
    n = next(_numbers)
    with db.write() as s:
        plan = Plan(code=f"V{n:04d}", name=plan_name, price_cents=2999, visit_limit=limit, visit_period=period)
        customer = Customer(customer_number=f"V{n:06d}", first_name="Vera", last_name=f"Visit{n}",
                            phone_e164=f"+1512666{n:04d}")
        s.add(plan)
        s.add(customer)
        s.flush()
        assert plan.id is not None and customer.id is not None
        for code in includes:
            item_id = s.exec(select(WashItem.id).where(WashItem.code == code)).one()
            assert item_id is not None
            s.add(PlanWashItem(plan_id=plan.id, item_id=item_id))
        car = Vehicle(customer_id=customer.id, plate=f"VIS-{n:04d}", plate_normalized=f"VIS{n:04d}",
                      plate_region="US-TX")
        s.add(car)
        s.flush()
        m = Membership(customer_id=customer.id, plan_id=plan.id, status=status, started_on=dt.date(2026, 10, 1),
                       paid_through=paid_through, next_billing_on=paid_through)
        s.add(m)
        s.flush()
        assert car.id is not None and m.id is not None
        s.add(MembershipVehicle(membership_id=m.id, vehicle_id=car.id))
        return VisitMember(customer.id, car.id, m.id, plan.id, car.plate)


def policy(zone: dt.tzinfo = CHICAGO) -> EntitlementPolicy:
    return EntitlementPolicy(grace_days=3, zone=zone)


def read_at(db: Database, plate: str, lane: str, when: dt.datetime, zone: dt.tzinfo = CHICAGO) -> int:
    """A camera read of `plate` at `lane` at `when`: the session's id."""
    sessions = SessionService(db, policy(zone), clock=lambda: when)
    return sessions.record_plate_read(PlateEvent(plate=plate, lane=lane), Actor.system("camera"))


def close(db: Database, session_id: int) -> None:
    """The car left (washed): its next read opens a new session."""
    with db.write() as s:
        s.exec(update(VehicleSession).where(col(VehicleSession.id) == session_id)
               .values(status=SessionStatus.DONE))


def visits_service(db: Database, when: dt.datetime, zone: dt.tzinfo = CHICAGO) -> VisitService:
    return VisitService(db, zone=zone, policy=policy(zone), clock=lambda: when)


# --- racing processes ------------------------------------------------------------------------------------


def _racer(url: str, how: str, arg: Any, when: str, *, start: Callable[[], object]) -> Any:
    """One terminal: its own engine; its call starts when every racer is connected (`start`).
    how: "record" (arg: a session id, VisitService.record) or "read" (arg: (plate, lane), a camera read)."""
    db = Database.from_url(url)
    now = dt.datetime.fromisoformat(when)
    with db.read() as s:  # connect before the race
        s.exec(select(Vehicle.id)).first()
    start()
    if how == "record":
        decision = visits_service(db, now).record(arg)
        out: Any = (str(decision.state), decision.wash_id)
    else:
        out = read_at(db, arg[0], arg[1], now)
    db.dispose()
    return out


def race(url: str, calls: list[tuple[str, Any]], when: dt.datetime) -> list[Any]:
    """Run each call in its own process (forked from the warm server), all at once; their results in order."""
    return forked.race(_racer, [(url, how, arg, when.isoformat()) for how, arg in calls])
