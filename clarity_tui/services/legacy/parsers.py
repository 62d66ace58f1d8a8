"""One row of a legacy member export: parsed, validated, and either a MemberRow or a Rejected.

Each row is validated on its own: phone to E.164 (an Excel-mangled 1.55E+10 is rejected,
never guessed), email syntax (no DNS), plates normalised, plan mapped, dates parsed. A row
is also rejected, never truncated or left for the database to refuse (which would stop its
whole batch), when it holds a NUL byte or another control character in any cell, or a value
longer than its column: the limits come from the SQLModel fields in db/models/legacy.py (`LIMITS`).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from sqlalchemy import String
from sqlmodel import AutoString

from clarity_tui.errors import UserFacingError
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
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
_Desc = tuple[frozenset[int], "re.Pattern[str]"]


@functools.lru_cache(maxsize=64)
def _calling_code(region: str) -> int:
    return phonenumbers.country_code_for_region(region)


def _desc(desc: Any) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)


@functools.lru_cache(maxsize=64)
def _region_rules(region: str) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """The region's general description and number types, compiled once: the test phonenumbers'
    is_valid_number_for_region makes, without its per-call metadata lookups and regex cache."""
    from phonenumbers.phonemetadata import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    general = _desc(metadata.general_desc) if metadata is not None else None
    if general is None:
        return None
    # Any type will do, so the commonest (fixed line, mobile) are tried first.
    types = tuple(d for d in (_desc(getattr(metadata, t, None)) for t in reversed(_NUMBER_TYPES)) if d is not None)
    return general, types


def _fits(nsn: str, desc: _Desc) -> bool:
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


def _valid_nanp(national_number: int, region: str) -> bool:
    """phonenumbers.is_valid_number_for_region for a +1 number and a +1 region."""
    rules = _region_rules(region)
    if rules is None:
        number = phonenumbers.PhoneNumber(country_code=1, national_number=national_number)
        return phonenumbers.is_valid_number_for_region(number, region)
    nsn = str(national_number)
    general, types = rules
    return _fits(nsn, general) and any(_fits(nsn, d) for d in types)


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
        if len(digits) == 10 and _valid_nanp(int(digits), region):
            return "+1" + digits
    return normalize_phone(t, region)


def split_plates(cells: Iterable[str]) -> list[tuple[str, str]]:
    """(raw, normalised) for every plate in the cells; several per cell split on ; , / |."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for cell in cells:
        if not cell:
            continue
        if cell.isalnum() and cell.isascii() and MIN_PLATE_LENGTH <= len(cell) <= min(MAX_PLATE_LENGTH, LIMITS["plate_normalized"]):
            # The usual cell, one plain plate: validate_plate would return it upper-cased.
            norm = cell.upper()
            if norm not in seen:
                seen.add(norm)
                out.append((norm[: LIMITS["plate_raw"]], norm))
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
                seen.add(norm)
                out.append((raw.upper()[: LIMITS["plate_raw"]], norm))  # the spelling shown; the key is `norm`
    return out


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    line: int
    legacy_id: str
    reason: str

    def __post_init__(self) -> None:
        # Printed to an operator's terminal and written to JSON: never raw control characters.
        object.__setattr__(self, "legacy_id", printable(self.legacy_id))
        object.__setattr__(self, "reason", printable(self.reason, 400))

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "legacy_id": self.legacy_id, "reason": self.reason}


COMPARED = ("raw", "first_name", "last_name", "phone_e164", "email", "vehicle_desc", "plan_name", "plan_id", "status",
            "next_bill_on", "joined_on")


@dataclass
class MemberRow:
    line: int
    legacy_id: str
    values: dict[str, Any]  # legacy_member columns (without id/timestamps/migration fields)
    plates: list[tuple[str, str]]

    def fingerprint(self) -> tuple:
        return (tuple(self.values[k] for k in COMPARED), tuple(sorted(n for _, n in self.plates)))


def records(reader: Any) -> Iterator[tuple[int, list[str] | str]]:
    """(first line number, cells) per non-blank record; an unreadable record carries its error text."""
    prev_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield prev_end + 1, f"unreadable CSV ({exc})"
            prev_end = reader.line_num
            continue
        line, prev_end = prev_end + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield line, cells


_LABELS = {"legacy_id": "legacy id", "first_name": "first name", "last_name": "last name", "vehicle_desc": "vehicle",
           "plan_name": "plan", "status": "status"}


@dataclass
class RowParser:
    """Turns one CSV record into a MemberRow or a Rejected."""

    mapping: Any  # legacy.mapping.Mapping
    index: dict[str, list[int]]
    header: list[str]
    phone_region: str
    plans: dict[str, int]  # casefolded plan code or name -> plan id

    def __post_init__(self) -> None:
        # One (field, column) pair per single-column field, looked up once per row.
        self._single = tuple((fld, ids[0]) for fld, ids in self.index.items() if fld != "plates")
        self._plates = tuple(self.index.get("plates", ()))
        self._phones: dict[str, str] = {}

    def parse(self, line: int, cells: list[str]) -> MemberRow | Rejected:
        header = self.header
        legacy_at = self.index["legacy_id"][0]
        if len(cells) != len(header):
            legacy = cells[legacy_at].strip() if legacy_at < len(cells) else ""
            if not legacy:
                return Rejected(line, "", "no legacy id")
            return Rejected(line, legacy, f"{len(cells)} fields where the header has {len(header)} "
                                          "(a missing quote or delimiter?)")
        if _CONTROL.search("".join(cells)):
            return Rejected(line, cells[legacy_at].strip(), self._control_problem(cells))
        fields = {fld: cells[i].strip() for fld, i in self._single}
        get = fields.get
        legacy_id = fields["legacy_id"]
        if not legacy_id:
            return Rejected(line, "", "no legacy id")
        if _SHOWN_CONTROL.search(legacy_id):
            return Rejected(line, legacy_id, "the legacy id holds a line break or a tab (a missing quote?)")
        if len(legacy_id) > LIMITS["legacy_id"]:
            return Rejected(line, legacy_id, f"the legacy id is {len(legacy_id)} characters long: the most is "
                                             f"{LIMITS['legacy_id']} (a shifted column?)")
        problems: list[str] = []
        first, last = get("first_name", ""), get("last_name", "")
        if not first and not last and get("full_name"):
            first, last = self._split_name(fields["full_name"])
        if not first and not last:
            problems.append("no name")
        phone = None
        if get("phone"):
            phone = self._phone(fields["phone"])
            if phone.startswith("phone: "):
                problems.append(phone)
                phone = None
        email = None
        if get("email"):
            try:
                email = import_email(fields["email"])
            except InvalidEmail as exc:
                problems.append(f"email: {exc}")
        plates: list[tuple[str, str]] = []
        try:
            plates = split_plates(cells[i] for i in self._plates)
        except RowProblem as exc:
            problems.append(str(exc))
        plan_name = get("plan", "")
        plan_id = self._plan_for(plan_name)
        if not plan_name:
            problems.append("no plan")
        elif len(plan_name) > LIMITS["plan_name"]:
            pass  # said below, with the other lengths
        elif plan_id is None:
            problems.append(f"unknown plan '{plan_name}': add it to [plans] in the mapping file")
        dates: dict[str, dt.date | None] = {}
        for fld in ("next_bill", "joined"):
            try:
                dates[fld] = parse_date(get(fld, ""), self.mapping.date_order)
            except RowProblem as exc:
                problems.append(f"{'next billing' if fld == 'next_bill' else 'join'} {exc}")
        given_status = get("status", "")
        status = self.mapping.statuses.get(given_status.casefold(), given_status.casefold()) if given_status else None
        values = {"source_system": self.mapping.source_system, "legacy_id": legacy_id,
                  "first_name": first, "last_name": last, "phone_e164": phone, "email": email,
                  "vehicle_desc": get("vehicle", "") or None, "plan_name": plan_name,
                  "plan_id": plan_id, "status": status or None,
                  "next_bill_on": dates.get("next_bill"), "joined_on": dates.get("joined")}
        problems += [f"the {_LABELS[k]} is {len(values[k])} characters long: the most is {LIMITS[k]}"
                     for k in _LABELS if values[k] is not None and len(values[k]) > LIMITS[k]]
        if not problems and not plates and not phone:
            problems.append("neither a plate nor a phone: the member could never be found at the lane")
        if problems:
            return Rejected(line, legacy_id, "; ".join(problems))
        values["raw"] = {h: c for h, c in zip(header, cells, strict=False) if c != ""}
        return MemberRow(line, legacy_id, values, plates)

    def _phone(self, text: str) -> str:
        """E.164, or "phone: <why not>"; once per distinct value in the file (a family shares a phone)."""
        known = self._phones.get(text)
        if known is None:
            try:
                known = import_phone(text, self.phone_region)
            except InvalidPhone as exc:
                known = f"phone: {exc}"
            self._phones[text] = known
        return known

    def _control_problem(self, cells: list[str]) -> str:
        for name, cell in zip(self.header, cells, strict=False):
            found = _CONTROL.search(cell)
            if found:
                what = "a NUL byte" if found.group() == "\x00" else f"a control character (U+{ord(found.group()):04X})"
                return (f"column '{name}' holds {what}: a damaged or binary export? Fix the cell in the file "
                        "and import again")
        return "a control character"

    def _split_name(self, full: str) -> tuple[str, str]:
        """"Doe, Jane" is always last-first; without a comma the mapping's name_order decides."""
        if "," in full:
            last, _, first = full.partition(",")
            return first.strip(), last.strip()
        parts = full.split()
        if len(parts) < 2:
            return "", full.strip()
        if self.mapping.name_order == "last_first":
            return " ".join(parts[1:]), parts[0]
        return " ".join(parts[:-1]), parts[-1]

    def _plan_for(self, name: str) -> int | None:
        if not name:
            return None
        key = name.casefold().strip()
        code = self.mapping.plans.get(key)
        if code is not None:
            return self.plans.get(code.casefold())
        return self.plans.get(key)  # the file already uses our plan code or name


__all__ = ["COMPARED", "LIMITS", "MemberRow", "Rejected", "RowParser", "RowProblem", "has_control", "import_email",
           "import_phone", "parse_date", "printable", "records", "split_plates"]
