"""Kept for its importers: the rule lives in services/membership_rules.py."""

from __future__ import annotations

from clarity_tui.services.membership_rules import CURRENT_STATUSES, current_membership, current_rank, is_current

__all__ = ["CURRENT_STATUSES", "current_membership", "current_rank", "is_current"]
