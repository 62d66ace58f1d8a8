"""Licence plates: normalisation, validation and plate-reader-tolerant matching."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^A-Z0-9]")
_VALID = re.compile(r"^[A-Z0-9]{2,10}$")

# Characters that plate cameras confuse. Each maps to a canonical "shape" so
# that "8OB 1234" and "BOB I234" compare equal.
CONFUSIONS = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}
_SHAPE_TABLE = str.maketrans(CONFUSIONS)


class InvalidPlate(ValueError):
    pass


def normalize_plate(raw: str) -> str:
    """Upper-case, no spaces/dashes/dots. 'abc-1 23' -> 'ABC123'."""
    return _NON_ALNUM.sub("", (raw or "").upper())


def validate_plate(raw: str) -> str:
    plate = normalize_plate(raw)
    if not _VALID.match(plate):
        raise InvalidPlate(
            f"'{raw}' is not a plate: use 2 to 10 letters or digits (spaces and dashes are ignored)."
        )
    return plate


def plate_shape(plate: str) -> str:
    """Collapse camera-confusable characters: plates with equal shapes may be the same car."""
    return normalize_plate(plate).translate(_SHAPE_TABLE)


def _within_one_edit(a: str, b: str) -> bool:
    """True if a and b differ by at most one insertion/deletion/substitution."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = j = edits = 0
    while i < la and j < lb:
        if a[i] == b[j]:
            i += 1
            j += 1
            continue
        edits += 1
        if edits > 1:
            return False
        if la == lb:
            i += 1
        j += 1
    return edits + (lb - j) + (la - i) <= 1


def plate_match_score(read: str, candidate: str) -> float:
    """1.0 exact; 0.9 same after camera confusions; 0.7 one character missing/extra/wrong; 0 otherwise."""
    a, b = normalize_plate(read), normalize_plate(candidate)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    sa, sb = plate_shape(a), plate_shape(b)
    if sa == sb:
        return 0.9
    if _within_one_edit(sa, sb):
        return 0.7
    return 0.0


def fuzzy_variants(plate: str) -> set[str]:
    """Normalised strings a database lookup should try for a read (exact and one-deletion forms).

    Used to narrow candidates with an index before scoring with plate_match_score.
    """
    p = normalize_plate(plate)
    variants = {p}
    variants.update(p[:i] + p[i + 1 :] for i in range(len(p)))
    return {v for v in variants if v}
