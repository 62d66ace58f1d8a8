"""Which membership counts as current: the one rule the sale, the record, the claims, the benefits and the board share.

A membership is current while it has not ended (billing may be failing or paused). When a customer holds
several, the best status wins (active, then past due, then paused) and, within one status, the newest.
The statuses and their order are db.states.CURRENT_MEMBERSHIP_STATES (the board's raw SQL uses them too).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from db.models import Membership
from db.states import CURRENT_MEMBERSHIP_STATES, MembershipStatus

# Best first: the order is the rank `current_membership` picks by.
CURRENT_STATUSES: tuple[MembershipStatus, ...] = tuple(MembershipStatus(s) for s in CURRENT_MEMBERSHIP_STATES)
_RANK = {status: rank for rank, status in enumerate(CURRENT_MEMBERSHIP_STATES)}


def is_current(status: str) -> bool:
    """True while a membership with this status still belongs to a member."""
    return status in _RANK


def current_rank(status: str) -> int:
    """0 for the best current status; ended statuses rank after every current one."""
    return _RANK.get(status, len(_RANK))


def current_membership(s: Session, customer_id: int | None) -> Membership | None:
    """The customer's current membership (the best status, then the newest), or None."""
    if customer_id is None:
        return None
    rows = s.exec(select(Membership).where(Membership.customer_id == customer_id,
                                           col(Membership.status).in_(CURRENT_STATUSES))
                  .order_by(col(Membership.id).desc())).all()
    return min(rows, key=lambda m: current_rank(m.status)) if rows else None
