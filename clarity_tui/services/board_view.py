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


class Badge(StrEnum):
    MEMBER = "member"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    LEGACY = "legacy"
    NEW = "new"


BADGE_LABELS = {
    Badge.MEMBER: "MEMBER",
    Badge.PAST_DUE: "PAST DUE",
    Badge.PAUSED: "PAUSED",
    Badge.LEGACY: "LEGACY",
    Badge.NEW: "NEW",
}

# Membership statuses that decide the badge, best first.
_RANKED_STATUSES = ("active", "past_due", "paused")
_STATUS_BADGE = {"active": Badge.MEMBER, "past_due": Badge.PAST_DUE, "paused": Badge.PAUSED}


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
    return _RANKED_STATUSES.index(status) if status in _RANKED_STATUSES else len(_RANKED_STATUSES)


def badge_for(membership_status: str | None, legacy_member_id: int | None) -> Badge:
    if membership_status in _STATUS_BADGE:
        return _STATUS_BADGE[membership_status]  # type: ignore[index]
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
_SESSIONS_SQL = """
SELECT s.id, s.lane_id, s.plate, s.make, s.model, s.colour, s.arrived_at, s.status, s.held_by, s.held_at,
       s.confidence, s.customer_id, s.legacy_member_id, c.first_name, c.last_name, s.vehicle_id
FROM vehicle_session s
LEFT JOIN customer c ON c.id = s.customer_id
WHERE s.status IN ('waiting', 'in_service') {only}
ORDER BY s.arrived_at, s.id
"""
# The badge is the car's, not the customer's: a member's second car that no membership covers
# is not MEMBER.
_MEMBERSHIPS_SQL = """
SELECT mv.vehicle_id, m.status, m.pending_sync, p.name
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


def read_bubbles(conn: Any, is_sqlite: bool, session_ids: list[int] | None = None, now: dt.datetime | None = None) -> list[BubbleView]:
    """Active sessions (or the given ones, whatever their status) as bubbles. Ids are ints: safe to inline."""
    only = ""
    sql = _SESSIONS_SQL
    if session_ids is not None:
        if not session_ids:
            return []
        sql = sql.replace("WHERE s.status IN ('waiting', 'in_service') {only}", "WHERE s.id IN ({only})")
        only = ",".join(str(int(i)) for i in session_ids)
    rows = _fetch(conn, sql.format(only=only))
    vehicle_ids = sorted({r[15] for r in rows if r[15] is not None})
    best: dict[int, tuple[str, bool, str]] = {}
    if vehicle_ids:
        for vehicle_id, status, pending_sync, plan_name in _fetch(conn, _MEMBERSHIPS_SQL.format(ids=",".join(map(str, vehicle_ids)))):
            current = best.get(vehicle_id)
            if current is None or membership_rank(status) < membership_rank(current[0]):
                best[vehicle_id] = (status, bool(pending_sync), plan_name)
    now = now or dt.datetime.now(dt.UTC)
    bubbles = []
    for (sid, lane_id, plate, make, model, colour, arrived_at, status, held_by, held_at, confidence,
         customer_id, legacy_id, first, last, vehicle_id) in rows:
        membership = best.get(vehicle_id) if vehicle_id is not None and customer_id is not None else None
        m_status = membership[0] if membership else None
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
                badge=badge_for(m_status, legacy_id),
                customer_name=f"{first or ''} {last or ''}".strip() if customer_id is not None else None,
                plan_name=membership[2] if membership and membership_rank(m_status) < len(_RANKED_STATUSES) else None,  # type: ignore[arg-type]
                arrived_at=as_utc(arrived_at),
                status=status,
                held_by=held_by,
                pending_sync=bool(membership and membership[1]),
                confidence=float(confidence),
            )
        )
    return bubbles


def read_board(conn: Any, is_sqlite: bool, now: dt.datetime | None = None) -> list[LaneView]:
    """Every active lane with its waiting and in-service sessions, in arrival order."""
    lanes = _fetch(conn, _LANES_SQL.format(true="1" if is_sqlite else "true"))
    by_lane: dict[int, list[BubbleView]] = {lane_id: [] for lane_id, _, _ in lanes}
    for bubble in read_bubbles(conn, is_sqlite, now=now):
        by_lane.setdefault(bubble.lane_id, []).append(bubble)
    return [LaneView(lane_id, name, kind, tuple(by_lane[lane_id])) for lane_id, name, kind in lanes]
