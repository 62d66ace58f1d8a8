"""Vehicle sessions: plate reads become sessions; the board reads them back.

The board always re-reads the database (never a cached copy), so every
terminal sees the same thing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.entitlement import EntitlementPolicy
from clarity_tui.services.membership_rules import current_rank
from clarity_tui.services.board_view import (
    Badge,
    BubbleView,
    LaneView,
    SyncHealth,
    read_board,
    read_bubbles,
    read_sync_health,
)
from clarity_tui.services.identity import display_name
from clarity_tui.services.legacy_match import best_unmigrated_match
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plates import normalize_plate, validate_plate
from clarity_tui.services.visits import VisitDecision, decide, record_lane_read
from clarity_tui.sitetime import site_zone
from db.engine import Database
from db.models import (
    OPEN_PLATE_INDEX,
    Customer,
    Lane,
    LegacyMember,
    Membership,
    Plan,
    SessionStatus,
    Site,
    Vehicle,
    VehicleSession,
    utcnow,
)
from db.states import OPEN_SESSION_STATES
from hardware.plate_reader import PlateEvent

if TYPE_CHECKING:
    from clarity_tui.wiring import Services

ACTIVE_SESSION_STATES = tuple(SessionStatus(s) for s in OPEN_SESSION_STATES)  # one definition: db.states

log = logging.getLogger(__name__)


class UnknownLane(ValueError):
    """A camera message for no lane or camera of that name (its sender is told, not an attendant)."""


class SessionGone(UserFacingError, LookupError):
    """The session was closed or removed on another terminal."""


@dataclass(frozen=True)
class MembershipView:
    membership_id: int
    plan_name: str
    status: str
    next_billing_on: dt.date | None
    expires_on: dt.date | None
    pending_sync: bool


@dataclass(frozen=True)
class SessionDetail:
    bubble: BubbleView
    lane_name: str
    plate_region: str
    customer_id: int | None
    customer_number: str | None
    phone: str | None
    email: str | None
    membership: MembershipView | None
    legacy_member_id: int | None
    legacy_name: str | None
    legacy_plan: str | None
    legacy_next_bill_on: dt.date | None
    # The member's visit (issue 18): LIMIT with the last visit's time, PAST DUE / EXPIRED with what to offer.
    visit: VisitDecision | None = None


class SessionService:
    def __init__(self, db: Database, policy: EntitlementPolicy | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        # Who is a member today (grace days, the site's calendar): from settings where the caller has them.
        self.policy = policy
        self.clock = clock  # when a member's visit happened (the simulator's clock in a simulated day)

    @classmethod
    def from_services(cls, services: Services) -> SessionService:
        """The running terminal's sessions, with its site's entitlement policy (grace days, calendar)."""
        return cls(services.db, services.entitlement_policy, services.clock)

    # --- site set-up -------------------------------------------------------

    def ensure_site(self, code: str, name: str, phone_region: str, lanes: list[tuple[str, str, str | None]]) -> int:
        """Create the site and its lanes if missing (idempotent). lanes: (name, kind, camera_id)."""
        with self.db.read() as s:
            # Every start calls this: a read is enough when nothing is missing.
            site = s.exec(select(Site).where(Site.code == code)).first()
            if site is not None and site.id is not None:
                names = set(s.exec(select(Lane.name).where(Lane.site_id == site.id)))
                if all(name in names for name, _, _ in lanes):
                    return site.id
        with self.db.write() as s:
            site = s.exec(select(Site).where(Site.code == code)).first()
            if site is None:
                site = Site(code=code, name=name, phone_region=phone_region)
                s.add(site)
                s.flush()
            site_id = site.id
            assert site_id is not None  # flushed above
            existing = {lane.name: lane for lane in s.exec(select(Lane).where(Lane.site_id == site_id))}
            for position, (lane_name, kind, camera_id) in enumerate(lanes):
                lane = existing.get(lane_name)
                if lane is None:
                    s.add(Lane(site_id=site_id, name=lane_name, kind=kind, position=position, camera_id=camera_id))
            return site_id

    def lane_ids_by_key(self, s: Session) -> dict[str, int]:
        """Lane lookup by name (case-insensitive) and by camera id."""
        keys: dict[str, int] = {}
        for lane in s.exec(select(Lane).where(col(Lane.active).is_(True))):
            assert lane.id is not None  # a stored row
            keys[lane.name.lower()] = lane.id
            if lane.camera_id:
                keys[lane.camera_id.lower()] = lane.id
        return keys

    # --- plate reads -----------------------------------------------------------

    def record_plate_read(self, event: PlateEvent, actor: Actor) -> int:
        """Turn a plate read into the car's session (one transaction). Returns the session id.

        One open session per car: a read of a car that already has one moves it to this
        lane (the car drove on) and keeps its customer, holds and orders. A read in the
        same lane changes nothing: cameras read the same car many times. Two cameras
        posting the same car at once are settled by the unique index on open plates:
        the loser's insert fails, and its retry moves the winner's session.
        """
        plate = validate_plate(event.plate)
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                with self.db.write() as s:
                    lane_id = self.lane_ids_by_key(s).get(event.lane.lower())
                    if lane_id is None:
                        raise UnknownLane(f"No lane or camera called '{event.lane}': check the lane/camera mapping in the settings.")
                    # FOR UPDATE (PostgreSQL): concurrent moves queue, so no version bump is lost.
                    current = s.exec(
                        select(VehicleSession)
                        .where(VehicleSession.plate_normalized == plate, col(VehicleSession.status).in_(ACTIVE_SESSION_STATES))
                        .with_for_update()
                    ).first()
                    if current is not None and current.id is not None:
                        if _move(s, current, lane_id, event, actor):
                            self._lane_read(s, current)
                        return current.id
                    row = _open(s, plate, lane_id, event, actor)
                    self._lane_read(s, row)
                    assert row.id is not None  # flushed
                    return row.id
            except IntegrityError as exc:
                if attempt == _READ_ATTEMPTS or not _is_open_plate_clash(exc):
                    raise
                log.info("plate %s: another camera opened its session first; moving that one", plate)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _lane_read(self, s: Session, row: VehicleSession) -> None:
        """A member's car at a lane is a visit (or LIMIT), in the read's own transaction."""
        policy = self.policy or EntitlementPolicy()
        record_lane_read(s, row, now=self.clock(), zone=policy.zone or site_zone(None), policy=policy)

    def _visit(self, s: Session, row: VehicleSession) -> VisitDecision:
        policy = self.policy or EntitlementPolicy()
        return decide(s, row, now=self.clock(), zone=policy.zone or site_zone(None), policy=policy, record=False)

    def set_status(self, session_id: int, status: SessionStatus, actor: Actor) -> None:
        """Done, no sale, abandoned: by whoever sees the car (session.status), or the tunnel."""
        require(actor, Permission.SESSION_STATUS)
        with self.db.write() as s:
            row = s.get(VehicleSession, session_id)
            if row is None:
                raise SessionGone(f"Session {session_id} no longer exists.")
            before = audit.snapshot(row, ["status"])
            row.status = status
            row.version += 1
            if status in (SessionStatus.DONE, SessionStatus.ABANDONED):
                row.closed_at = utcnow()
                row.held_by = None
            audit.record(s, actor, f"session.{status}", "vehicle_session", session_id, before=before, after={"status": str(status)})

    def hold(self, session_id: int, holder: str | None) -> None:
        """Record which terminal/operator has the session open (None releases it)."""
        with self.db.write() as s:
            row = s.get(VehicleSession, session_id)
            if row is None:
                raise SessionGone(f"Session {session_id} no longer exists.")
            row.held_by = holder
            row.held_at = utcnow() if holder else None

    def claim(self, session_id: int, holder: str) -> str:
        """Open the session here unless another terminal/operator holds it (a hold younger than
        HOLD_TTL): theirs is kept, so both screens show who has it. Returns the holder now."""
        from clarity_tui.services.board_view import HOLD_TTL

        with self.db.write() as s:
            row = s.get(VehicleSession, session_id)
            if row is None:
                raise SessionGone(f"Session {session_id} no longer exists.")
            held_at = row.held_at if row.held_at is None or row.held_at.tzinfo else row.held_at.replace(tzinfo=dt.UTC)
            if row.held_by and row.held_by != holder and held_at is not None and utcnow() - held_at < HOLD_TTL:
                return row.held_by
            row.held_by, row.held_at = holder, utcnow()
            return holder

    def release(self, session_id: int, holder: str) -> None:
        """Leave the session: only our own hold is released, never another terminal's."""
        with self.db.write() as s:
            row = s.get(VehicleSession, session_id)
            if row is not None and row.held_by == holder:
                row.held_by, row.held_at = None, None

    # --- reading the board -----------------------------------------------------

    def board(self, now: dt.datetime | None = None) -> list[LaneView]:
        with self._raw() as conn:
            return read_board(conn, self.db.is_sqlite, now, self.policy)

    def sync_health(self) -> SyncHealth:
        """How the billing sync is doing (the board's banner)."""
        with self._raw() as conn:
            return read_sync_health(conn)

    @contextmanager
    def _raw(self) -> Iterator[Any]:
        """A pooled DB-API connection for the plain-SQL read model (see board_view)."""
        conn = self.db.engine.raw_connection()
        try:
            yield conn
        finally:
            conn.rollback()  # end the read transaction PostgreSQL opened implicitly
            conn.close()

    def detail(self, session_id: int) -> SessionDetail:
        with self.db.read() as s:
            v = s.get(VehicleSession, session_id)
            if v is None:
                raise SessionGone(f"Session {session_id} no longer exists.")
            with self._raw() as conn:
                bubble = read_bubbles(conn, self.db.is_sqlite, [session_id], policy=self.policy)[0]
            lane = s.get(Lane, v.lane_id)
            customer = s.get(Customer, v.customer_id) if v.customer_id else None
            membership_view = None
            if customer is not None:
                rows = s.exec(
                    select(Membership, Plan.name).join(Plan, col(Plan.id) == Membership.plan_id).where(Membership.customer_id == customer.id)
                ).all()
                if rows:
                    m, plan_name = min(rows, key=lambda r: current_rank(r[0].status))
                    assert m.id is not None  # a stored row
                    membership_view = MembershipView(m.id, plan_name, m.status, m.next_billing_on, m.expires_on, m.pending_sync)
            legacy = s.get(LegacyMember, v.legacy_member_id) if v.legacy_member_id else None
            return SessionDetail(
                bubble=bubble,
                lane_name=lane.name if lane else "?",
                plate_region=v.plate_region,
                customer_id=customer.id if customer else None,
                customer_number=customer.customer_number if customer else None,
                phone=customer.phone_e164 if customer else None,
                email=customer.email if customer else None,
                membership=membership_view,
                legacy_member_id=legacy.id if legacy else None,
                legacy_name=display_name(legacy.first_name, legacy.last_name) if legacy else None,
                legacy_plan=legacy.plan_name if legacy else None,
                legacy_next_bill_on=legacy.next_bill_on if legacy else None,
                visit=self._visit(s, v),
            )

    def expire_stale(self, older_than: dt.timedelta, actor: Actor, status: SessionStatus = SessionStatus.ABANDONED,
                     *, keep_lane_kind: str | None = None) -> int:
        """Close sessions older than `older_than` that no terminal holds (keeps the board honest).

        Abandoned by default (the car left unseen); the simulator passes DONE for cars it washed,
        and keeps the ones still at the pre-gate (`keep_lane_kind`)."""
        require(actor, Permission.SESSION_STATUS)
        cutoff = utcnow() - older_than
        with self.db.write() as s:
            query = select(VehicleSession).where(
                col(VehicleSession.status).in_(ACTIVE_SESSION_STATES), VehicleSession.arrived_at < cutoff, or_(col(VehicleSession.held_by).is_(None))
            )
            if keep_lane_kind is not None:
                query = query.join(Lane, col(Lane.id) == VehicleSession.lane_id).where(Lane.kind != keep_lane_kind)
            rows = s.exec(query).all()
            for row in rows:
                row.status = status
                row.closed_at = utcnow()
                audit.record(s, actor, f"session.{status}", "vehicle_session", row.id)
            return len(rows)


# A lost insert race is retried once the winner has committed; more than a couple of
# rounds would mean the car's session keeps closing and reopening under us.
_READ_ATTEMPTS = 3


def _is_open_plate_clash(exc: IntegrityError) -> bool:
    # PostgreSQL names the index, SQLite the column.
    message = str(exc.orig)
    return OPEN_PLATE_INDEX in message or "vehicle_session.plate_normalized" in message


def _open(s: Session, plate: str, lane_id: int, event: PlateEvent, actor: Actor) -> VehicleSession:
    vehicle = s.exec(select(Vehicle).where(Vehicle.plate_normalized == plate)).first()
    legacy_id = None
    if vehicle is None or vehicle.customer_id is None:
        # Exact, or what a misread of a legacy plate looks like: the bubble shows LEGACY
        # either way, and the customer confirms with "That's Me" (issue 6).
        legacy_id = best_unmigrated_match(s, plate)
    row = VehicleSession(
        lane_id=lane_id,
        plate=event.plate.strip().upper(),
        plate_region=event.region,
        plate_normalized=plate,
        make=event.make or (vehicle.make if vehicle else None),
        model=event.model or (vehicle.model if vehicle else None),
        colour=event.colour or (vehicle.colour if vehicle else None),
        confidence=event.confidence,
        image_ref=event.image_ref,
        customer_id=vehicle.customer_id if vehicle else None,
        vehicle_id=vehicle.id if vehicle else None,
        legacy_member_id=legacy_id,
    )
    s.add(row)
    s.flush()  # the unique index speaks here if another camera got in first
    audit.record(s, actor, "session.created", "vehicle_session", row.id, after=audit.snapshot(row, ["lane_id", "plate", "customer_id", "legacy_member_id"]))
    return row


def _move(s: Session, row: VehicleSession, lane_id: int, event: PlateEvent, actor: Actor) -> bool:
    """The car was read in another lane: same session there, with the surer of the two reads' details.
    False when it was read in its own lane again (nothing changes)."""
    if row.lane_id == lane_id:
        return False
    changes: dict[str, Any] = {"lane_id": lane_id}
    surer = event.confidence > row.confidence
    for name, value in (("make", event.make), ("model", event.model), ("colour", event.colour)):
        if value and (surer or not getattr(row, name)):
            changes[name] = value
    if surer:
        changes.update(plate=event.plate.strip().upper(), confidence=event.confidence)
        if event.image_ref:
            changes["image_ref"] = event.image_ref
    changes = {name: value for name, value in changes.items() if getattr(row, name) != value}
    before = audit.snapshot(row, list(changes))
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1
    audit.record(s, actor, "session.moved", "vehicle_session", row.id, before=before, after=audit.snapshot(row, list(changes)))
    return True


__all__ = [
    "Badge",
    "BubbleView",
    "LaneView",
    "SessionDetail",
    "SessionGone",
    "SessionService",
    "UnknownLane",
    "normalize_plate",
]
