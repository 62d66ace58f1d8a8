"""The field parsers of a legacy member row: dates, email, phone, plates, and the column limits.

Each one gives what the identity and plate services give (same values, same messages), faster for a
whole file: see each function. A problem is a RowProblem (or the service's own error) naming the value.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from typing import Any

import phonenumbers
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from sqlalchemy import String
from sqlmodel import AutoString

from clarity_tui.errors import UserFacingError
from clarity_tui.services.identity import InvalidEmail, normalize_email, normalize_phone
from clarity_tui.services.plates import MAX_PLATE_LENGTH, MIN_PLATE_LENGTH, InvalidPlate, validate_plate
from clarity_tui.services.text_safe import printable
from db.models import metadata

# Column sizes, from the models' Field(max_length=...): one place to change them.
LIMITS: dict[str, int] = {
    c.name: c.type.length
    for table in ("legacy_member", "legacy_member_plate") for c in metadata.tables[table].c
    if isinstance(c.type, (String, AutoString)) and c.type.length
}
# C0 controls but tab, LF and CR (a quoted cell may span lines), DEL, and C1 controls. NUL is one:
# PostgreSQL refuses it in text, and an ESC sequence would later reach an operator's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SHOWN_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLATE_SPLIT = re.compile(r"[;,/|]+")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_TEXT_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d-%b-%Y", "%d-%b-%y", "%d %b %Y", "%d %B %Y", "%b %d %Y",
                      "%B %d %Y", "%Y-%b-%d")


class RowProblem(UserFacingError, ValueError):
    pass


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


# --- field parsers ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def parse_date(text: str, order: str = "MDY") -> dt.date | None:
    """ISO, numeric with / - . (ambiguous day/month resolved by `order`), or with a month name.

    A trailing time ("11/22/2026 0:00", "2026-11-22T00:00:00") is ignored. Empty -> None."""
    t = text.strip()
    if not t:
        return None
    t = re.split(r"[ T](?=\d{1,2}:\d{2})", t, maxsplit=1)[0].strip()
    m = _NUMERIC_DATE.match(t)
    if m:
        a, b, c = m.groups()
        if len(a) == 4:
            y, mo, d = int(a), int(b), int(c)
        elif len(c) in (2, 4):
            first, second, y = int(a), int(b), int(c)
            if len(c) == 2:
                y += 2000 if y < 70 else 1900
            if first > 12 >= second:
                d, mo = first, second
            elif second > 12 >= first:
                mo, d = first, second
            elif order == "DMY":
                d, mo = first, second
            else:
                mo, d = first, second
        else:
            raise RowProblem(f"date '{text}' is not a date")
        try:
            return dt.date(y, mo, d)
        except ValueError:
            raise RowProblem(f"date '{text}' does not exist") from None
    for fmt in _TEXT_DATE_FORMATS:
        try:
            return dt.datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    raise RowProblem(f"date '{printable(text, 40)}' is not a date (use YYYY-MM-DD, MM/DD/YYYY or 'Nov 22, 2026')")


@functools.lru_cache(maxsize=8192)
def iso_date(text: str, order: str = "MDY") -> str | None:
    """parse_date as stored (YYYY-MM-DD text): what both databases take, and what the re-import compares."""
    parsed = parse_date(text, order)
    return None if parsed is None else parsed.isoformat()


_CASE_INSENSITIVE_MAILBOXES = frozenset(n.lower() for n in CASE_INSENSITIVE_MAILBOX_NAMES)
_PLAIN_EMAIL = re.compile(r"^([A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+(?:\.[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+)*)@([A-Za-z0-9.-]+)$")


@functools.lru_cache(maxsize=4096)
def _email_domain(domain: str) -> str | None:
    """The normalised domain (email-validator's rules), or None when it is not valid."""
    try:
        return normalize_email("a@" + domain).rpartition("@")[2]
    except InvalidEmail:
        return None


def import_email(text: str) -> str:
    """identity.normalize_email, faster for a whole file: a plain ASCII address has its domain
    validated once per domain (by email-validator) and its dot-atom local part checked here;
    anything else, and every failure, goes through email-validator itself (same message)."""
    t = text.strip()
    m = _PLAIN_EMAIL.match(t)
    if m and len(m.group(1)) <= 64 and len(t) <= 254 and m.group(1).lower() not in _CASE_INSENSITIVE_MAILBOXES:
        domain = _email_domain(m.group(2))
        if domain is not None:
            return f"{m.group(1)}@{domain}"
    return normalize_email(t)


_PLAIN_PHONE = re.compile(r"^[\d\s().\-]+$")
_NON_DIGIT = re.compile(r"\D")
# phonenumbers' own order of number types (_number_type_helper): a number is valid for a region when it
# fits the general description and one of these.
_NUMBER_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
                 "fixed_line", "mobile")


def _desc_pattern(desc: Any) -> str | None:
    """A description as one pattern: its possible lengths (a lookahead) and its pattern, whole string."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = "|".join(rf"\d{{{n}}}" for n in desc.possible_length)
    return (rf"(?=(?:{lengths})\Z)" if lengths else "") + rf"(?:{desc.national_number_pattern})\Z"


@functools.lru_cache(maxsize=64)
def _region_check(region: str) -> re.Pattern[str] | None:
    """The test phonenumbers' is_valid_number_for_region makes (the general description, then any number
    type, each with its possible lengths), compiled once into one pattern: one match per number."""
    from phonenumbers.phonemetadata import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    general = _desc_pattern(metadata.general_desc) if metadata is not None else None
    if general is None:
        return None
    # Any type will do, so the commonest (mobile, fixed line) come first; equal ones once.
    types = dict.fromkeys(p for p in (_desc_pattern(getattr(metadata, t, None)) for t in reversed(_NUMBER_TYPES)) if p)
    return re.compile(rf"(?={general})(?:{'|'.join(f'(?:{p})' for p in types)})")


@functools.lru_cache(maxsize=64)
def _calling_code(region: str) -> int:
    return phonenumbers.country_code_for_region(region)


def _valid_nanp(nsn: str, region: str) -> bool:
    """phonenumbers.is_valid_number_for_region for a +1 number (its national number) and a +1 region."""
    check = _region_check(region)
    if check is None:
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(nsn))
        return phonenumbers.is_valid_number_for_region(number, region)
    return check.match(nsn) is not None


def import_phone(text: str, region: str = "US") -> str:
    """identity.normalize_phone, faster for a whole file: a plain North American number typed in the
    site's own (NANP) region is checked against the region's compiled patterns directly (no text
    parsing, no search for the region);
    anything else, and every failure, goes through normalize_phone itself (same result, same message)."""
    t = text.strip()
    if _PLAIN_PHONE.match(t) and _calling_code(region) == 1:
        digits = _NON_DIGIT.sub("", t)
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        # A leading 0 is not part of a national number (phonenumbers reads it as an int): the full parse.
        if len(digits) == 10 and digits[0] != "0" and _valid_nanp(digits, region):
            return "+1" + digits
    return normalize_phone(t, region)


# A plain cell (ASCII letters and digits only) is one plate as it stands: validate_plate would return it upper-cased.
_PLAIN_PLATE_MAX = min(MAX_PLATE_LENGTH, LIMITS["plate_normalized"])


def split_plates(cells: Iterable[str]) -> list[tuple[str, str]]:
    """(raw, normalised) for every plate in the cells; several per cell split on ; , / |."""
    out: list[tuple[str, str]] = []
    seen: list[str] = []  # a row has one or two plates: a list beats a set
    raw_max = LIMITS["plate_raw"]
    for cell in cells:
        if not cell:
            continue
        if cell.isalnum() and cell.isascii() and MIN_PLATE_LENGTH <= len(cell) <= _PLAIN_PLATE_MAX:
            norm = cell.upper()
            if norm not in seen:
                seen.append(norm)
                out.append((norm[:raw_max], norm))
            continue
        for raw in _PLATE_SPLIT.split(cell):
            raw = raw.strip()
            if not raw:
                continue
            try:
                norm = validate_plate(raw)
            except InvalidPlate as exc:
                raise RowProblem(f"plate {exc}") from None
            if len(norm) > LIMITS["plate_normalized"]:
                raise RowProblem(f"plate '{raw}' is longer than {LIMITS['plate_normalized']} characters")
            if norm not in seen:
                seen.append(norm)
                out.append((raw.upper()[:raw_max], norm))  # the spelling shown; the key is `norm`
    return out


__all__ = ["LIMITS", "RowProblem", "has_control", "import_email", "import_phone", "iso_date", "parse_date",
           "split_plates"]
