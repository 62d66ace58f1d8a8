"""Which memberships count as current: the one rule the sale, the claims and the board share."""

from __future__ import annotations

from db.models import MembershipStatus

# A member still (billing may be failing or paused, but the membership has not ended).
CURRENT_STATUSES = (MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE, MembershipStatus.PAUSED)
