"""Licence plates: normalisation, validation and plate-reader-tolerant matching.

The one rule for what a plate may be (issue 15), used by every path that stores one: the camera webhook
(through SessionService.record_plate_read), manual entry at the lane, the sale's garage and the legacy import.

- Letters A-Z and digits 0-9; spaces, dashes and dots are separators and are ignored when plates are compared.
- A letter outside A-Z is transliterated where a standard mapping exists: the Unicode compatibility
  decomposition without its accents (Ä→A, É→E, Ｚ→Z), plus a few Latin letters that do not decompose
  (ß→SS, Ø→O, Æ→AE, Œ→OE, Ł→L, Đ/Ð→D, Þ→TH). Any other letter or digit (Cyrillic, Greek, CJK ...) is refused:
  dropping it would let a plate match another car, and a look-alike (Cyrillic А) must never pass for A.
- Control and format characters (Unicode category C*: ESC, NUL, newlines, bidi overrides ...) are refused,
  so nothing that drives a terminal ever reaches the database.
- 2 to 10 letters and digits (US plates have at most 8, European ones at most 10), and at most 16 characters
  as read or typed, separators included: the size of the plate columns.
"""

from __future__ import annotations

import re
import unicodedata

from clarity_tui.errors import UserFacingError
from db.plate_shape import CONFUSIONS

MIN_PLATE_LENGTH = 2
MAX_PLATE_LENGTH = 10  # letters and digits, after normalisation
MAX_PLATE_TEXT = 16  # the plate as read or typed, separators included (VehicleSession.plate and the like)
_MAX_RAW = 64  # longer input is refused before it is looked at character by character

_NON_ALNUM = re.compile(r"[^A-Z0-9]")
_ASCII_PLATE = re.compile(r"[A-Z0-9 .\-]*")
_ASCII_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DOTS = frozenset(".\u00b7")  # a dot, and the middle dot some European plates print between groups
# Latin letters with no compatibility decomposition, as their usual transliteration (after upper-casing).
_LATIN_EXTRA = {"ẞ": "SS", "Ø": "O", "Æ": "AE", "Œ": "OE", "Ł": "L", "Đ": "D", "Ð": "D", "Þ": "TH",
                "Ħ": "H", "Ŧ": "T", "Ŋ": "N", "Ŀ": "L"}

# Characters that plate cameras confuse (db/plate_shape.py: the one map, also behind the SQL shape indexes).
_SHAPE_TABLE = str.maketrans(CONFUSIONS)


class InvalidPlate(UserFacingError, ValueError):
    pass


def _classify(ch: str) -> tuple[str, str]:
    """One upper-cased character -> (kind, A-Z/0-9 text). Kinds: alnum, sep, mark, control, foreign, other."""
    if ch in _ASCII_ALNUM:
        return "alnum", ch
    category = unicodedata.category(ch)
    if category[0] == "C":
        return "control", ""
    if category in ("Zs", "Pd") or ch in _DOTS:
        return "sep", ""
    if category[0] == "M":  # a combining accent typed or sent on its own (decomposed text)
        return "mark", ""
    if category[0] == "L" or category == "Nd":
        if ch in _LATIN_EXTRA:
            return "alnum", _LATIN_EXTRA[ch]
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).upper()
        if base and all(c in _ASCII_ALNUM for c in base):
            return "alnum", base
        return "foreign", ""
    return "other", ""


def normalize_plate(raw: str) -> str:
    """Upper-case, transliterated, no spaces/dashes/dots. 'abc-1 23' -> 'ABC123', 'Äbc 123' -> 'ABC123'.

    Never raises (searches use it on whatever was typed): a letter with no Latin mapping is kept as it is, so
    it matches no stored plate rather than vanishing; control characters and symbols are dropped."""
    text = (raw or "").upper()
    if text.isascii():
        return _NON_ALNUM.sub("", text)
    out = []
    for ch in text:
        kind, value = _classify(ch)
        if kind == "alnum":
            out.append(value)
        elif kind == "foreign":
            out.append(ch)
    return "".join(out)


def _shown(raw: str) -> str:
    """The input, quoted and short, for a message: repr() escapes every character that is not printable."""
    return repr(raw if len(raw) <= 24 else raw[:23] + "…")


def validate_plate(raw: str) -> str:
    """The normalised plate, or InvalidPlate saying why. What passes is safe to store as `raw.strip().upper()`."""
    if not isinstance(raw, str):
        raise InvalidPlate("A plate must be text.")
    if len(raw) > _MAX_RAW:
        raise InvalidPlate(f"A plate of {len(raw)} characters is not a plate: use {MIN_PLATE_LENGTH} to "
                           f"{MAX_PLATE_LENGTH} letters or digits.")
    text = raw.strip().upper()
    if text.isascii() and _ASCII_PLATE.fullmatch(text):
        plate = _NON_ALNUM.sub("", text)
    else:
        out = []
        for position, ch in enumerate(text, start=1):
            kind, value = _classify(ch)
            if kind == "control":
                raise InvalidPlate(f"The plate holds a control character (U+{ord(ch):04X}, at position {position}): "
                                   "it is not a plate and was not recorded.")
            if kind == "foreign":
                raise InvalidPlate(f"{_shown(raw)} is not a plate: {ch!r} (U+{ord(ch):04X}) is not a Latin letter or "
                                   "digit; use A-Z and 0-9 (accented letters count as their base letter: Ä is A).")
            if kind == "other":
                raise InvalidPlate(f"{_shown(raw)} is not a plate: {ch!r} is not a letter, digit, space or dash.")
            out.append(value)
        plate = "".join(out)
    if not MIN_PLATE_LENGTH <= len(plate) <= MAX_PLATE_LENGTH:
        raise InvalidPlate(f"{_shown(raw)} is not a plate: use {MIN_PLATE_LENGTH} to {MAX_PLATE_LENGTH} letters or "
                           "digits (spaces and dashes are ignored).")
    if len(text) > MAX_PLATE_TEXT:
        raise InvalidPlate(f"{_shown(raw)} is not a plate: at most {MAX_PLATE_TEXT} characters with its spaces and "
                           "dashes.")
    return plate


def plate_shape(plate: str) -> str:
    """Collapse camera-confusable characters: plates with equal shapes may be the same car."""
    return normalize_plate(plate).translate(_SHAPE_TABLE)


SHAPE_ALPHABET = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" if c not in CONFUSIONS)


def shape_variants(read: str) -> set[str]:
    """Shapes a stored plate may have for this read: the same after camera confusions, or one character
    missing, extra or wrong (what plate_match_score accepts), as keys of a shape index (db.plate_shape.plate_shape_sql).
    Used by the legacy match and the current-customer look-alikes (services/plate_lookalikes.py)."""
    base = plate_shape(read)
    if not base:
        return set()
    out = {base}
    for i in range(len(base)):
        out.add(base[:i] + base[i + 1:])  # the read has an extra character
        for ch in SHAPE_ALPHABET:
            out.add(base[:i] + ch + base[i + 1:])  # one character wrong
    for i in range(len(base) + 1):
        for ch in SHAPE_ALPHABET:
            out.add(base[:i] + ch + base[i:])  # the read missed a character
    return {v for v in out if len(v) >= 2}


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
