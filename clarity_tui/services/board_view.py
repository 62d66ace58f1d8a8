"""The lanes board read model, in plain SQL over a DB-API connection.

Deliberately free of SQLAlchemy and pydantic: the app paints its first board
with a raw sqlite3/psycopg connection before the ORM is imported (start-up
time), and SessionService.board() runs the very same queries through the
engine's pooled connection, so there is one implementation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clarity_tui.services.entitlement import Entitlement, EntitlementPolicy, Standing, entitlement
from clarity_tui.services.plates import normalize_plate, plate_shape
from db.plate_shape import plate_shape_sql_text
from db.states import CURRENT_MEMBERSHIP_STATES, OPEN_SESSION_STATES, sql_in


class Badge(StrEnum):
    MEMBER = "member"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    LEGACY = "legacy"
    NEW = "new"
    LIMIT = "limit"  # an entitled member's car over its plan's visit limit (issue 18): sell a single wash


BADGE_LABELS = {
    Badge.MEMBER: "MEMBER",
    Badge.PAST_DUE: "PAST DUE",
    Badge.PAUSED: "PAUSED",
    Badge.EXPIRED: "EXPIRED",
    Badge.CANCELLED: "CANCELLED",
    Badge.LEGACY: "LEGACY",
    Badge.NEW: "NEW",
    Badge.LIMIT: "LIMIT",
}

# Standings that still belong to a member (the plan name is shown with them).
_MEMBER_STANDINGS = (Standing.MEMBER, Standing.PAST_DUE, Standing.PAUSED)


@dataclass(frozen=True)
class BubbleView:
    session_id: int
    lane_id: int
    plate: str
    make: str | None
    model: str | None
    colour: str | None
    badge: Badge
    customer_name: str | None
    plan_name: str | None
    arrived_at: dt.datetime
    status: str
    held_by: str | None
    pending_sync: bool
    confidence: float
    days_overdue: int = 0
    # A walk-up whose plate has the shape of a current member's car (RMK-323I for RMK-3231): "≈ member?".
    lookalike: bool = False

    @property
    def badge_label(self) -> str:
        """"PAST DUE 12d" while overdue; the badge's label otherwise."""
        label = BADGE_LABELS[self.badge]
        return f"{label} {self.days_overdue}d" if self.badge == Badge.PAST_DUE and self.days_overdue else label

    @property
    def vehicle_line(self) -> str:
        return " ".join(p for p in (self.colour, self.make, self.model) if p) or "Unknown vehicle"


@dataclass(frozen=True)
class LaneView:
    lane_id: int
    name: str
    kind: str
    bubbles: tuple[BubbleView, ...]


def membership_rank(status: str) -> int:
    """Current memberships best first (db.states.CURRENT_MEMBERSHIP_STATES), then every other status."""
    ranked = CURRENT_MEMBERSHIP_STATES
    return ranked.index(status) if status in ranked else len(ranked)


def badge_for(standing: Standing | None, legacy_member_id: int | None) -> Badge:
    """The car's badge: its best membership's standing; an ended one gives way to a legacy match."""
    if standing is not None and (standing in _MEMBER_STANDINGS or legacy_member_id is None):
        return Badge(standing.value)
    if legacy_member_id is not None:
        return Badge.LEGACY
    return Badge.NEW


def as_utc(value: Any) -> dt.datetime:
    """SQLite hands back text, PostgreSQL a datetime: both become aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# Holds older than this are ignored: a terminal that died keeps no session hostage.
HOLD_TTL = dt.timedelta(minutes=15)

_LANES_SQL = "SELECT id, name, kind FROM lane WHERE active = {true} ORDER BY position, id"
# The board's lists of states come from db/states.py (tests/test_one_source_rules.py reads them back).
OPEN_SESSIONS_WHERE = sql_in("s.status", OPEN_SESSION_STATES)
CURRENT_MEMBERSHIPS_WHERE = sql_in("m.status", CURRENT_MEMBERSHIP_STATES)
_SESSIONS_SQL = """
SELECT s.id, s.lane_id, s.plate, s.make, s.model, s.colour, s.arrived_at, s.status, s.held_by, s.held_at,
       s.confidence, s.customer_id, s.legacy_member_id, c.first_name, c.last_name, s.vehicle_id,
       EXISTS (SELECT 1 FROM visit_refusal r WHERE r.session_id = s.id)
FROM vehicle_session s
LEFT JOIN customer c ON c.id = s.customer_id
WHERE {where}
ORDER BY s.arrived_at, s.id
"""
# The badge is the car's, not the customer's: a member's second car that no membership covers
# is not MEMBER.
_MEMBERSHIPS_SQL = """
SELECT mv.vehicle_id, m.status, m.pending_sync, p.name, m.paid_through, m.resumes_on, m.cancel_at_period_end,
       m.expires_on
FROM membership m JOIN plan p ON p.id = m.plan_id JOIN membership_vehicle mv ON mv.membership_id = m.id
WHERE mv.vehicle_id IN ({ids})
"""


def _fetch(conn: Any, sql: str) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        cur.close()


def read_bubbles(conn: Any, is_sqlite: bool, session_ids: list[int] | None = None, now: dt.datetime | None = None,
                 policy: EntitlementPolicy | None = None) -> list[BubbleView]:
    """Active sessions (or the given ones, whatever their status) as bubbles. Ids are ints: safe to inline."""
    policy = policy or EntitlementPolicy()
    now = now or dt.datetime.now(dt.UTC)
    today = policy.today(now)
    where = OPEN_SESSIONS_WHERE
    if session_ids is not None:
        if not session_ids:
            return []
        where = f"s.id IN ({','.join(str(int(i)) for i in session_ids)})"
    rows = _fetch(conn, _SESSIONS_SQL.format(where=where))
    vehicle_ids = sorted({r[15] for r in rows if r[15] is not None})
    best: dict[int, tuple[Entitlement, bool, str]] = {}
    if vehicle_ids:
        for (vehicle_id, status, pending_sync, plan_name, paid_through, resumes_on, cancel_at_end,
             expires_on) in _fetch(conn, _MEMBERSHIPS_SQL.format(ids=",".join(map(str, vehicle_ids)))):
            judged = entitlement(status, paid_through=paid_through, resumes_on=resumes_on,
                                 cancel_at_period_end=bool(cancel_at_end), expires_on=expires_on, today=today,
                                 grace_days=policy.grace_days)
            current = best.get(vehicle_id)
            if current is None or judged.rank < current[0].rank:
                best[vehicle_id] = (judged, bool(pending_sync), plan_name)
    lookalikes = _member_lookalikes(conn, [r[2] for r in rows if r[11] is None])
    bubbles = []
    for (sid, lane_id, plate, make, model, colour, arrived_at, status, held_by, held_at, confidence,
         customer_id, legacy_id, first, last, vehicle_id, refused) in rows:
        membership = best.get(vehicle_id) if vehicle_id is not None and customer_id is not None else None
        standing = membership[0].standing if membership else None
        badge = badge_for(standing, legacy_id)
        if refused and badge == Badge.MEMBER:
            badge = Badge.LIMIT  # refused over the plan's limit (an ended membership shows its own badge)
        if held_by and held_at is not None and now - as_utc(held_at) > HOLD_TTL:
            held_by = None
        bubbles.append(
            BubbleView(
                session_id=sid,
                lane_id=lane_id,
                plate=plate,
                make=make,
                model=model,
                colour=colour,
                badge=badge,
                customer_name=f"{first or ''} {last or ''}".strip() if customer_id is not None else None,
                plan_name=membership[2] if membership and standing in _MEMBER_STANDINGS else None,
                arrived_at=as_utc(arrived_at),
                status=status,
                held_by=held_by,
                pending_sync=bool(membership and membership[1]),
                confidence=float(confidence),
                days_overdue=membership[0].days_overdue if membership else 0,
                lookalike=customer_id is None and normalize_plate(plate) in lookalikes,
            )
        )
    return bubbles


# The plate's shape in SQL, the same expression as the index on vehicle plates (ix_vehicle_plate_shape,
# migration 0010) is built on, so the index answers the probe.
SHAPE_SQL = plate_shape_sql_text("v.plate_normalized")
_LOOKALIKES_SQL = f"""
SELECT DISTINCT v.plate_normalized, {SHAPE_SQL}
FROM vehicle v JOIN membership_vehicle mv ON mv.vehicle_id = v.id JOIN membership m ON m.id = mv.membership_id
WHERE {SHAPE_SQL} IN ({{shapes}}) AND {CURRENT_MEMBERSHIPS_WHERE}
"""
_SAFE_SHAPE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _member_lookalikes(conn: Any, plates: list[str]) -> set[str]:
    """Of these walk-up plates, the normalised ones that have the shape of a current member's car (camera
    confusions only: one probe per plate; the session screen lists one-character misses too)."""
    wanted = {normalize_plate(p) for p in plates}
    shapes = {plate_shape(p) for p in wanted}
    shapes = {s for s in shapes if s and set(s) <= _SAFE_SHAPE}  # A-Z/0-9 only: safe to inline
    if not shapes:
        return set()
    found = _fetch(conn, _LOOKALIKES_SQL.format(shapes=",".join(f"'{s}'" for s in sorted(shapes))))
    return {p for p in wanted for normalized, shape in found if shape == plate_shape(p) and normalized != p}


def read_board(conn: Any, is_sqlite: bool, now: dt.datetime | None = None,
               policy: EntitlementPolicy | None = None) -> list[LaneView]:
    """Every active lane with its waiting and in-service sessions, in arrival order."""
    lanes = _fetch(conn, _LANES_SQL.format(true="1" if is_sqlite else "true"))
    by_lane: dict[int, list[BubbleView]] = {lane_id: [] for lane_id, _, _ in lanes}
    for bubble in read_bubbles(conn, is_sqlite, now=now, policy=policy):
        by_lane.setdefault(bubble.lane_id, []).append(bubble)
    return [LaneView(lane_id, name, kind, tuple(by_lane[lane_id])) for lane_id, name, kind in lanes]


@dataclass(frozen=True)
class SyncHealth:
    """How the billing sync is doing, for the board's banner."""

    last_success_at: dt.datetime | None
    last_error: str | None

    def stale(self, now: dt.datetime, after_hours: float) -> bool:
        """No success for longer than `after_hours` (or never, after a failure). A site whose sync has
        never run (no row yet) is not stale: the first pass runs at start-up."""
        if self.last_success_at is None:
            return bool(self.last_error)
        return now - self.last_success_at > dt.timedelta(hours=after_hours)


_SYNC_SQL = "SELECT last_success_at, last_error FROM billing_sync WHERE name = 'events'"


def read_sync_health(conn: Any) -> SyncHealth:
    rows = _fetch(conn, _SYNC_SQL)
    if not rows:
        return SyncHealth(None, None)
    success, error = rows[0]
    return SyncHealth(as_utc(success) if success is not None else None, error)
