"""Member visits (issue 18 item 3): an entitled member's covered car read at a lane is one visit.

A visit is a `Wash` row of kind "member", one per session (the unique session_id: a car moving from the
Pre-Gate to a lane is one visit). The plan's limit (`Plan.visit_limit` per `visit_period`, counted per
covered car over the site's day or month) is checked with the car's row locked, so two sessions of one car
read at once cannot both pass; over the limit the session gets a `VisitRefusal` (the board's LIMIT badge)
with the time of the last visit. Who is entitled is `services/entitlement.py`'s rule, as on the board.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.entitlement import Entitlement, EntitlementPolicy, Standing, entitlement
from clarity_tui.sitetime import day_window, site_date, stored_utc
from db.engine import Database
from db.models import (
    DispatchStatus,
    Lane,
    LaneKind,
    Membership,
    MembershipVehicle,
    Plan,
    PlanWashItem,
    Site,
    Vehicle,
    VehicleSession,
    VisitPeriod,
    VisitRefusal,
    Wash,
    WashItem,
    WashItemKind,
    WashKind,
    utcnow,
)

if TYPE_CHECKING:
    from clarity_tui.wiring import Services


class VisitState(StrEnum):
    VISIT = "visit"            # a member's visit (recorded, or would be at a lane)
    LIMIT = "limit"            # over the plan's limit: refused, sell a single wash
    PAST_DUE = "past_due"      # offer Update card, or a single wash
    PAUSED = "paused"
    EXPIRED = "expired"        # offer Update card (rejoin), or a single wash
    CANCELLED = "cancelled"
    NOT_MEMBER = "not_member"  # no membership covers the car (or the car is unknown)
    RETAIL = "retail"          # the session's wash is a paid single wash
    PRE_GATE = "pre_gate"      # an entitled member not yet at a lane: the visit is recorded there


_BY_STANDING = {Standing.PAST_DUE: VisitState.PAST_DUE, Standing.PAUSED: VisitState.PAUSED,
                Standing.EXPIRED: VisitState.EXPIRED, Standing.CANCELLED: VisitState.CANCELLED}


@dataclass(frozen=True)
class VisitDecision:
    state: VisitState
    wash_id: int | None = None
    last_visit_at: dt.datetime | None = None  # aware UTC
    message: str | None = None
    plan_name: str | None = None
    membership_id: int | None = None

    @property
    def offers_single_wash(self) -> bool:
        """The attendant is offered "Single wash": over the limit, or a membership that does not let it through."""
        return self.state in (VisitState.LIMIT, VisitState.PAST_DUE, VisitState.PAUSED, VisitState.EXPIRED,
                              VisitState.CANCELLED)

    @property
    def offers_update_card(self) -> bool:
        """The attendant is offered "Update card" (PAST DUE and EXPIRED)."""
        return self.state in (VisitState.PAST_DUE, VisitState.EXPIRED)


@dataclass(frozen=True)
class WashHistoryRow:
    wash_id: int
    at: dt.datetime  # on the site's clock
    site_name: str | None
    lane_name: str | None
    package_name: str | None
    kind: str  # "member" or "retail"
    plate: str


class VisitSessionGone(UserFacingError, LookupError):
    """The session was closed or removed on another terminal."""


@dataclass(frozen=True)
class _Member:
    membership: Membership
    plan: Plan
    judged: Entitlement


def _best_membership(s: Session, vehicle_id: int, today: dt.date, policy: EntitlementPolicy) -> _Member | None:
    """The car's best membership by standing (the board's rule: a car covered twice shows the better one)."""
    rows = s.exec(select(Membership, Plan).join(Plan, col(Plan.id) == Membership.plan_id)
                  .join(MembershipVehicle, col(MembershipVehicle.membership_id) == Membership.id)
                  .where(MembershipVehicle.vehicle_id == vehicle_id)).all()
    best: _Member | None = None
    for m, plan in rows:
        judged = entitlement(m.status, paid_through=m.paid_through, resumes_on=m.resumes_on,
                             cancel_at_period_end=m.cancel_at_period_end, expires_on=m.expires_on, today=today,
                             grace_days=policy.grace_days)
        if best is None or judged.rank < best.judged.rank:
            best = _Member(m, plan, judged)
    return best


def limit_window(period: str | None, now: dt.datetime, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the site's day or month around `now`."""
    today = site_date(now, zone)
    if period == VisitPeriod.MONTH:
        first = today.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return day_window(first, zone)[0], day_window(following, zone)[0]
    return day_window(today, zone)


def _last_visit(s: Session, vehicle_id: int, start: dt.datetime, end: dt.datetime) -> tuple[int, dt.datetime | None]:
    """The car's member visits in [start, end): how many, and when the last was."""
    count, last = s.exec(select(func.count(col(Wash.id)), func.max(Wash.at)).where(
        Wash.vehicle_id == vehicle_id, Wash.kind == WashKind.MEMBER, Wash.at >= start, Wash.at < end)).one()
    return int(count or 0), _aware(last)


def _over_limit(s: Session, vehicle_id: int, plan: Plan, now: dt.datetime,
                zone: dt.tzinfo) -> tuple[bool, dt.datetime | None]:
    """(the car has used up its plan's visits in the site's day or month, when its last visit was)."""
    if plan.visit_limit is None:
        return False, None
    start, end = limit_window(plan.visit_period, now, zone)
    count, last = _last_visit(s, vehicle_id, start, end)
    return count >= plan.visit_limit, last


def _changed_since_refused(s: Session, session_id: int, m: Membership) -> bool:
    """The membership changed after the session was refused (its plan, its card): the refusal is judged again."""
    refused_at = _aware(s.exec(select(VisitRefusal.at).where(VisitRefusal.session_id == session_id)).first())
    changed_at = _aware(m.updated_at)
    return refused_at is not None and changed_at is not None and changed_at > refused_at


def _aware(value: dt.datetime | str | None) -> dt.datetime | None:
    """SQLite's aggregates hand back text; stored times are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return stored_utc(value)


def _plan_package(s: Session, plan_id: int) -> str | None:
    """The plan's wash: the dearest package it includes (None if it includes none)."""
    return s.exec(select(WashItem.code).join(PlanWashItem, col(PlanWashItem.item_id) == WashItem.id)
                  .where(PlanWashItem.plan_id == plan_id, WashItem.kind == WashItemKind.PACKAGE)
                  .order_by(col(WashItem.price_cents).desc(), col(WashItem.id))).first()


def limit_message(plan: Plan, last_visit_at: dt.datetime | None, now: dt.datetime, zone: dt.tzinfo) -> str:
    n, period = plan.visit_limit or 0, plan.visit_period or VisitPeriod.DAY
    limit = f"{n} wash{'es' if n != 1 else ''} a {period}"
    when = ""
    if last_visit_at is not None:
        local = last_visit_at.astimezone(zone)
        day = "today" if local.date() == site_date(now, zone) else f"on {local:%b} {local.day}"
        when = f": last visit {day} at {local:%H:%M}"
    return f"Over the {plan.name} plan's limit of {limit}{when}. Sell a single wash."


def standing_message(state: VisitState, plan: Plan, judged: Entitlement, m: Membership) -> str:
    if state == VisitState.PAST_DUE:
        days = f" ({judged.days_overdue} days)" if judged.days_overdue else ""
        return f"The {plan.name} membership is past due{days}: update the card, or sell a single wash."
    if state == VisitState.PAUSED:
        until = f" until {m.resumes_on:%b} {m.resumes_on.day}" if m.resumes_on else ""
        return f"The {plan.name} membership is paused{until}: sell a single wash."
    if state == VisitState.EXPIRED:
        return f"The {plan.name} membership has expired: update the card to rejoin, or sell a single wash."
    return f"The {plan.name} membership was cancelled: sell a single wash or a new membership."


def _existing(s: Session, session_id: int) -> VisitDecision | None:
    """What the session already has: its wash (a visit, or a paid single wash) or its refusal."""
    wash = s.exec(select(Wash).where(Wash.session_id == session_id)).first()
    if wash is not None:
        state = VisitState.VISIT if wash.kind == WashKind.MEMBER else VisitState.RETAIL
        return VisitDecision(state, wash.id, membership_id=wash.membership_id)
    refusal = s.exec(select(VisitRefusal).where(VisitRefusal.session_id == session_id)).first()
    if refusal is not None:
        return VisitDecision(VisitState.LIMIT, last_visit_at=_aware(refusal.last_visit_at),
                             membership_id=refusal.membership_id)
    return None


def decide(s: Session, session: VehicleSession, *, now: dt.datetime, zone: dt.tzinfo, policy: EntitlementPolicy,
           record: bool) -> VisitDecision:
    """The session's visit: recorded (or refused) when `record` and the car is at a lane; read-only otherwise."""
    assert session.id is not None  # a stored row
    lane = s.get(Lane, session.lane_id)
    at_lane = lane is not None and lane.kind == LaneKind.LANE
    # A camera read of a car no membership covers records nothing: it costs no more queries (the hot path).
    member = None
    if session.vehicle_id is not None and session.customer_id is not None:
        member = _best_membership(s, session.vehicle_id, policy.today(now), policy)
    if member is None or session.vehicle_id is None:
        found = None if record else _existing(s, session.id)
        return found or VisitDecision(VisitState.NOT_MEMBER)
    m, plan = member.membership, member.plan
    if member.judged.standing != Standing.MEMBER:
        state = _BY_STANDING[member.judged.standing]
        found = _existing(s, session.id)
        if found is not None and found.wash_id is not None:
            return found  # a visit let through (or a paid wash) stands
        return VisitDecision(state, message=standing_message(state, plan, member.judged, m), plan_name=plan.name,
                             membership_id=m.id)
    if record and at_lane:
        # The car's row, locked while counting: a second session of the car waits here (PostgreSQL; on
        # SQLite the write transaction already holds the database's one writer lock).
        s.exec(select(Vehicle.id).where(Vehicle.id == session.vehicle_id).with_for_update()).first()
    found = _existing(s, session.id)
    if (found is not None and found.state == VisitState.LIMIT and _changed_since_refused(s, session.id, m)
            and not _over_limit(s, session.vehicle_id, plan, now, zone)[0]):
        # Refused, then the membership changed at the lane (an upgrade, a new card): not over now.
        if record:
            s.exec(delete(VisitRefusal).where(col(VisitRefusal.session_id) == session.id))
        found = None
    if found is not None:
        message = limit_message(plan, found.last_visit_at, now, zone) if found.state == VisitState.LIMIT else None
        return replace(found, plan_name=plan.name, message=message)
    if not at_lane:
        return VisitDecision(VisitState.PRE_GATE, plan_name=plan.name, membership_id=m.id)
    over, last = _over_limit(s, session.vehicle_id, plan, now, zone)
    if over:
        if record:
            _refuse(s, session, m, last, now)
        return VisitDecision(VisitState.LIMIT, last_visit_at=last, plan_name=plan.name, membership_id=m.id,
                             message=limit_message(plan, last, now, zone))
    if not record:
        return VisitDecision(VisitState.VISIT, plan_name=plan.name, membership_id=m.id)
    assert lane is not None and m.id is not None
    wash = Wash(session_id=session.id, kind=WashKind.MEMBER, plate=session.plate, vehicle_id=session.vehicle_id,
                customer_id=m.customer_id, membership_id=m.id, site_id=lane.site_id, lane_id=lane.id,
                package_code=_plan_package(s, plan.id or 0), at=now, dispatch_status=DispatchStatus.WAITING)
    try:
        with s.begin_nested():
            s.add(wash)
    except IntegrityError:  # another process recorded this session's visit first: it is the one
        return _existing(s, session.id) or VisitDecision(VisitState.NOT_MEMBER)
    return VisitDecision(VisitState.VISIT, wash.id, plan_name=plan.name, membership_id=m.id)


def _refuse(s: Session, session: VehicleSession, m: Membership, last: dt.datetime | None, now: dt.datetime) -> None:
    assert session.id is not None and session.vehicle_id is not None and m.id is not None
    try:
        with s.begin_nested():
            s.add(VisitRefusal(session_id=session.id, vehicle_id=session.vehicle_id, membership_id=m.id,
                               lane_id=session.lane_id, last_visit_at=last, at=now))
    except IntegrityError:  # refused already, by another process: one refusal per session
        pass


def record_lane_read(s: Session, session: VehicleSession, *, now: dt.datetime, zone: dt.tzinfo,
                     policy: EntitlementPolicy) -> VisitDecision:
    """The car's session landed on (or moved to) a lane: record its visit, or refuse it over the limit, in the
    caller's transaction. Idempotent: a session has one visit or one refusal."""
    return decide(s, session, now=now, zone=zone, policy=policy, record=True)


class VisitService:
    def __init__(self, db: Database, *, zone: dt.tzinfo, policy: EntitlementPolicy,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.zone = zone
        self.policy = policy
        self.clock = clock

    @classmethod
    def from_services(cls, services: Services) -> VisitService:
        return cls(services.db, zone=services.settings.site.zone, policy=services.entitlement_policy,
                   clock=services.clock)

    def _session(self, s: Session, session_id: int) -> VehicleSession:
        row = s.get(VehicleSession, session_id)
        if row is None:
            raise VisitSessionGone(f"Session {session_id} no longer exists: go back to the board.")
        return row

    def record(self, session_id: int) -> VisitDecision:
        """Record the session's visit now (what a camera read at a lane does), in its own transaction."""
        with self.db.write() as s:
            return record_lane_read(s, self._session(s, session_id), now=self.clock(), zone=self.zone,
                                    policy=self.policy)

    def status(self, session_id: int) -> VisitDecision:
        """The session's visit as the session screen shows it (LIMIT with the last visit, PAST DUE, ...)."""
        with self.db.read() as s:
            return decide(s, self._session(s, session_id), now=self.clock(), zone=self.zone, policy=self.policy,
                          record=False)

    def history(self, *, vehicle_id: int | None = None, customer_id: int | None = None, plate: str | None = None,
                limit: int = 50) -> list[WashHistoryRow]:
        """The car's (or the customer's: their washes and their cars') washes, newest first. `plate`: a car
        with no vehicle record yet (a retail customer) by the plate its washes were read with."""
        if vehicle_id is None and customer_id is None and plate is None:
            return []
        query = (select(Wash, Site.name, Lane.name, WashItem.name)
                 .join(Site, col(Site.id) == Wash.site_id, isouter=True)
                 .join(Lane, col(Lane.id) == Wash.lane_id, isouter=True)
                 .join(WashItem, col(WashItem.code) == Wash.package_code, isouter=True))
        if vehicle_id is not None:
            query = query.where(Wash.vehicle_id == vehicle_id)
        if plate is not None:
            query = query.where(Wash.plate == plate)
        if customer_id is not None:
            cars = select(Vehicle.id).where(Vehicle.customer_id == customer_id)
            query = query.where(or_(col(Wash.customer_id) == customer_id, col(Wash.vehicle_id).in_(cars)))
        query = query.order_by(col(Wash.at).desc(), col(Wash.id).desc()).limit(limit)
        with self.db.read() as s:
            return [WashHistoryRow(wash.id or 0, stored_utc(wash.at).astimezone(self.zone), site, lane, package,
                                   wash.kind, wash.plate)
                    for wash, site, lane, package in s.exec(query)]
