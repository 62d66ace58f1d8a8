"""One row of a legacy member export: parsed, validated, and either a MemberRow or a Rejected.

Each row is validated on its own (the field parsers are in legacy/fields.py): phone to E.164 (an
Excel-mangled 1.55E+10 is rejected, never guessed), email syntax (no DNS), plates normalised, plan
mapped, dates parsed. A row is also rejected, never truncated or left for the database to refuse
(which would stop its whole batch), when it holds a NUL byte or another control character in any
cell, or a value longer than its column: the limits come from the SQLModel fields in
db/models/legacy.py (`LIMITS`).

A good row carries its columns as the databases store them (`MemberRow.params`: dates as
YYYY-MM-DD, `raw` as its JSON text), so the importer writes them as they are and a re-import
compares them with what is stored in one tuple comparison.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clarity_tui.services.identity import InvalidEmail, InvalidPhone
from clarity_tui.services.legacy.fields import (
    LIMITS,
    RowProblem,
    has_control,
    import_email,
    import_phone,
    iso_date,
    parse_date,
    split_plates,
)
from clarity_tui.services.text_safe import printable

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SHOWN_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_JSON_TEXT = json.encoder.encode_basestring_ascii  # what json.dumps does to each string (C)


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
MEMBER_COLUMNS = ("source_system", "legacy_id", *COMPARED)  # the order of MemberRow.params
_DATES = ("next_bill_on", "joined_on")


@dataclass(slots=True)
class MemberRow:
    line: int
    legacy_id: str
    params: tuple[Any, ...]  # MEMBER_COLUMNS as stored: dates as YYYY-MM-DD text, raw as its JSON text
    plates: list[tuple[str, str]]

    @property
    def values(self) -> dict[str, Any]:
        """The legacy_member columns as Python values (dates, raw as a dict)."""
        out = dict(zip(MEMBER_COLUMNS, self.params, strict=True))
        out["raw"] = json.loads(out["raw"])
        for k in _DATES:
            out[k] = dt.date.fromisoformat(out[k]) if out[k] else None
        return out

    def fingerprint(self) -> tuple:
        values = self.values
        return (tuple(values[k] for k in COMPARED), tuple(sorted(n for _, n in self.plates)))


_LABELS = {"legacy_id": "legacy id", "first_name": "first name", "last_name": "last name", "vehicle_desc": "vehicle",
           "plan_name": "plan", "status": "status"}
_FIELDS = ("legacy_id", "first_name", "last_name", "full_name", "phone", "email", "vehicle", "plan", "status",
           "next_bill", "joined")


@dataclass
class RowParser:
    """Turns one CSV record into a MemberRow or a Rejected."""

    mapping: Any  # legacy.mapping.Mapping
    index: dict[str, list[int]]
    header: list[str]
    phone_region: str
    plans: dict[str, int]  # casefolded plan code or name -> plan id

    def __post_init__(self) -> None:
        # Each field's column in the stripped cells; a field the file lacks reads the "" appended at -1.
        self._at = {fld: self.index[fld][0] if fld in self.index else -1 for fld in _FIELDS}
        self._plates = tuple(self.index.get("plates", ()))
        # Once per distinct value in the file: a family shares a phone, a plan or status name recurs.
        self._phones: dict[str, tuple[str | None, str | None]] = {}
        self._plan_ids: dict[str, tuple[int | None, str | None]] = {}
        self._statuses: dict[str, str | None] = {}
        # raw's JSON text built from the cells (json.dumps of the {header: cell} dict, byte for byte);
        # a header naming a column twice keeps the dict's own rule (the last cell wins).
        names = self.header
        self._keys = [_JSON_TEXT(h) + ": " for h in names] if len(set(names)) == len(names) else None

    def rows(self, reader: Any) -> Iterator[MemberRow | Rejected]:
        """Every non-blank record of the reader, parsed, in file order; a legacy id seen before is rejected."""
        first_line: dict[str, int] = {}
        prev_end = reader.line_num
        parse = self.parse
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Rejected(prev_end + 1, "", f"unreadable CSV ({exc})")
                prev_end = reader.line_num
                continue
            line, prev_end = prev_end + 1, reader.line_num
            joined = "".join(cells)
            if not joined or joined.isspace():  # blank: every cell empty or spaces
                continue
            parsed = parse(line, cells, joined)
            if type(parsed) is MemberRow:
                seen = first_line.setdefault(parsed.legacy_id, line)
                if seen != line:
                    yield Rejected(line, parsed.legacy_id, f"duplicate legacy id {parsed.legacy_id} "
                                                           f"(first on line {seen})")
                    continue
            yield parsed

    def parse(self, line: int, cells: list[str], joined: str | None = None) -> MemberRow | Rejected:
        at = self._at
        legacy_at = at["legacy_id"]
        if len(cells) != len(self.header):
            legacy = cells[legacy_at].strip() if legacy_at < len(cells) else ""
            if not legacy:
                return Rejected(line, "", "no legacy id")
            return Rejected(line, legacy, f"{len(cells)} fields where the header has {len(self.header)} "
                                          "(a missing quote or delimiter?)")
        if _CONTROL.search("".join(cells) if joined is None else joined):
            return Rejected(line, cells[legacy_at].strip(), self._control_problem(cells))
        s = [c.strip() for c in cells]
        s.append("")
        legacy_id = s[legacy_at]
        if not legacy_id:
            return Rejected(line, "", "no legacy id")
        if _SHOWN_CONTROL.search(legacy_id):
            return Rejected(line, legacy_id, "the legacy id holds a line break or a tab (a missing quote?)")
        if len(legacy_id) > LIMITS["legacy_id"]:
            return Rejected(line, legacy_id, f"the legacy id is {len(legacy_id)} characters long: the most is "
                                             f"{LIMITS['legacy_id']} (a shifted column?)")
        problems: list[str] = []
        first, last = s[at["first_name"]], s[at["last_name"]]
        if not first and not last and s[at["full_name"]]:
            first, last = self._split_name(s[at["full_name"]])
        if not first and not last:
            problems.append("no name")
        phone = None
        if s[at["phone"]]:
            phone, problem = self._phone(s[at["phone"]])
            if problem:
                problems.append(problem)
        email = None
        if s[at["email"]]:
            try:
                email = import_email(s[at["email"]])
            except InvalidEmail as exc:
                problems.append(f"email: {exc}")
        plates: list[tuple[str, str]] = []
        try:
            plates = split_plates([cells[i] for i in self._plates])
        except RowProblem as exc:
            problems.append(str(exc))
        plan_name = s[at["plan"]]
        plan_id, problem = self._plan(plan_name)
        if problem:
            problems.append(problem)
        order = self.mapping.date_order
        next_bill = joined_on = None
        try:
            next_bill = iso_date(s[at["next_bill"]], order)
        except RowProblem as exc:
            problems.append(f"next billing {exc}")
        try:
            joined_on = iso_date(s[at["joined"]], order)
        except RowProblem as exc:
            problems.append(f"join {exc}")
        status = self._status(s[at["status"]])
        vehicle = s[at["vehicle"]] or None
        if (len(first) > LIMITS["first_name"] or len(last) > LIMITS["last_name"] or len(plan_name) > LIMITS["plan_name"]
                or (vehicle is not None and len(vehicle) > LIMITS["vehicle_desc"])
                or (status is not None and len(status) > LIMITS["status"])):
            values = {"legacy_id": legacy_id, "first_name": first, "last_name": last, "vehicle_desc": vehicle,
                      "plan_name": plan_name, "status": status}
            for k, label in _LABELS.items():
                value = values[k]
                if value is not None and len(value) > LIMITS[k]:
                    problems.append(f"the {label} is {len(value)} characters long: the most is {LIMITS[k]}")
        if not problems and not plates and not phone:
            problems.append("neither a plate nor a phone: the member could never be found at the lane")
        if problems:
            return Rejected(line, legacy_id, "; ".join(problems))
        keys = self._keys
        if keys is not None:
            raw = "{" + ", ".join([k + _JSON_TEXT(c) for k, c in zip(keys, cells, strict=True) if c]) + "}"
        else:
            raw = json.dumps({h: c for h, c in zip(self.header, cells, strict=True) if c != ""})
        return MemberRow(line, legacy_id, (self.mapping.source_system, legacy_id, raw, first, last, phone, email,
                                           vehicle, plan_name, plan_id, status, next_bill, joined_on), plates)

    def _phone(self, text: str) -> tuple[str | None, str | None]:
        """(E.164, None) or (None, "phone: <why not>"); once per distinct value in the file."""
        known = self._phones.get(text)
        if known is None:
            try:
                known = (import_phone(text, self.phone_region), None)
            except InvalidPhone as exc:
                known = (None, f"phone: {exc}")
            self._phones[text] = known
        return known

    def _plan(self, name: str) -> tuple[int | None, str | None]:
        """(plan id, problem): once per distinct plan name in the file."""
        known = self._plan_ids.get(name)
        if known is None:
            plan_id = self._plan_for(name)
            problem = None
            if not name:
                problem = "no plan"
            elif len(name) > LIMITS["plan_name"]:
                pass  # said with the other lengths
            elif plan_id is None:
                problem = f"unknown plan '{name}': add it to [plans] in the mapping file"
            known = self._plan_ids[name] = (plan_id, problem)
        return known

    def _status(self, given: str) -> str | None:
        if given not in self._statuses:
            folded = given.casefold()
            self._statuses[given] = (self.mapping.statuses.get(folded, folded) if given else None) or None
        return self._statuses[given]

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


__all__ = ["COMPARED", "LIMITS", "MEMBER_COLUMNS", "MemberRow", "Rejected", "RowParser", "RowProblem", "has_control",
           "import_email", "import_phone", "iso_date", "parse_date", "printable", "split_plates"]
