"""Legacy members whose plates match a camera read, tolerating misreads (issue 6).

Plate readers misread 5 to 10% of plates: O/0, I/1, B/8, S/5, Z/2, or one character missing,
extra or wrong. A legacy plate is found through the expression index on its "shape" (the
plate with every confusable character folded, see db.models.plate_shape_sql): the read's shape
and its one-edit neighbours go into one IN probe, then plate_match_score ranks what comes back.
Shared by the plate read (the bubble's LEGACY badge) and the migration's match screen.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from clarity_tui.services.plates import SHAPE_ALPHABET, normalize_plate, plate_match_score, shape_variants
from db.models import LegacyMember, LegacyMemberPlate, plate_shape_sql

__all__ = ["SHAPE_ALPHABET", "best_unmigrated_match", "plate_matches", "shape_variants"]


def plate_matches(s: Session, plate: str, *, unmigrated_only: bool = False) -> dict[int, float]:
    """Legacy member id -> its best plate_match_score (1.0 exact, 0.9 look-alike, 0.7 one off) for the read."""
    read = normalize_plate(plate)
    variants = shape_variants(read)
    if not variants:
        return {}
    query = (select(LegacyMemberPlate.legacy_member_id, LegacyMemberPlate.plate_normalized)
             .where(plate_shape_sql(LegacyMemberPlate.plate_normalized).in_(sorted(variants))))
    if unmigrated_only:
        query = query.join(LegacyMember, col(LegacyMember.id) == LegacyMemberPlate.legacy_member_id).where(
            col(LegacyMember.migrated_at).is_(None))
    best: dict[int, float] = {}
    for member_id, norm in s.exec(query).all():
        score = plate_match_score(read, norm)
        if score > best.get(member_id, 0.0):
            best[member_id] = score
    return best


def best_unmigrated_match(s: Session, plate: str) -> int | None:
    """The legacy member a read most likely belongs to (best score, then the oldest record), or None."""
    found = plate_matches(s, plate, unmigrated_only=True)
    if not found:
        return None
    return min(found, key=lambda member_id: (-found[member_id], member_id))
