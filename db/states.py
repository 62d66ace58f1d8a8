"""The states rows move through, and which of them count as open or current: one definition each.

Light on purpose (no SQLAlchemy): the lanes board reads it before the ORM is loaded. The SQL that
filters on these states (partial indexes, the board's raw queries) is built from the tuples here by
`sql_in`, never written out by hand (tests/test_one_source_rules.py holds them equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class SessionStatus(StrEnum):
    WAITING = "waiting"
    IN_SERVICE = "in_service"
    DONE = "done"
    ABANDONED = "abandoned"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class OrderState(StrEnum):
    DRAFT = "draft"
    CHECKOUT = "checkout"
    TERMS = "terms"
    SIGNED = "signed"
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    PENDING_SYNC = "pending_sync"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


# A car on the lanes (one open session per car: migration 0006).
OPEN_SESSION_STATES: tuple[str, ...] = (SessionStatus.WAITING.value, SessionStatus.IN_SERVICE.value)
# Orders still being worked on (nothing decided yet, or money moving): one per session (migration 0004).
OPEN_ORDER_STATES: tuple[str, ...] = tuple(s.value for s in (
    OrderState.DRAFT, OrderState.CHECKOUT, OrderState.TERMS, OrderState.SIGNED, OrderState.PAYMENT_PENDING,
    OrderState.PAID))
# Memberships that still belong to a member, best first (the board's badge ranks by this order).
CURRENT_MEMBERSHIP_STATES: tuple[str, ...] = (
    MembershipStatus.ACTIVE.value, MembershipStatus.PAST_DUE.value, MembershipStatus.PAUSED.value)


def sql_in(column: str, values: Iterable[str]) -> str:
    """`column IN ('a', 'b')` for fixed, known values (quotes doubled, as SQL wants)."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"{column} IN ({quoted})"
