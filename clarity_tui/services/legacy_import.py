"""Importing a legacy POS member export (CSV) into `legacy_member` / `legacy_member_plate`.

    mapping = load_mapping("sitewatch")            # or a path to a mapping TOML
    result = LegacyImporter(db, mapping).run(path) # ImportResult: counts + rejected rows

The file: UTF-8 (with or without BOM; cp1252 as a fallback), CRLF or LF, quoted fields,
any column order. The mapping names the columns (several spellings each), maps legacy
plan names to our plan codes, and declares the order of an ambiguous numeric date
("03/04/2026": MDY or DMY).

Each row is validated on its own: phone to E.164 (an Excel-mangled 1.55E+10 is rejected,
never guessed), email syntax (no DNS), plates normalised, plan mapped, dates parsed. A bad
row is rejected with its line number and the reason; the others go in.

Idempotent upsert by (source system, legacy id): a row equal to what is stored is
"unchanged", a different one "updated", and a member who has already migrated is never
overwritten ("kept"). One transaction per batch, so an interrupted import keeps the
batches it committed; running the same command again resumes (committed rows come back
unchanged) and finishes the rest.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import phonenumbers
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from sqlalchemy import JSON, any_, bindparam, delete, insert, select, update

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from clarity_tui.services.plates import InvalidPlate, validate_plate
from db.models import LegacyMember, LegacyMemberPlate, Plan, utcnow

BATCH_SIZE = 2000
FIELDS = ("legacy_id", "first_name", "last_name", "full_name", "phone", "email", "plates", "vehicle", "plan",
          "status", "next_bill", "joined")
DATE_ORDERS = ("MDY", "DMY", "YMD")
_PLATE_SPLIT = re.compile(r"[;,/|]+")
_NUMERIC_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_TEXT_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d-%b-%Y", "%d-%b-%y", "%d %b %Y", "%d %B %Y", "%b %d %Y",
                      "%B %d %Y", "%Y-%b-%d")


class LegacyImportError(Exception):
    """A problem with the whole file or mapping (not one row); str() says what to fix."""


# --- mapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    name: str
    source_system: str
    columns: dict[str, tuple[str, ...]]
    plans: dict[str, str] = field(default_factory=dict)  # casefolded legacy plan name -> plan code
    statuses: dict[str, str] = field(default_factory=dict)  # casefolded legacy status -> our word
    date_order: str = "MDY"
    name_order: str = "first_last"  # a full-name column without a comma: "Jane Doe" (or "Doe Jane")
    encoding: str = "utf-8-sig"
    delimiter: str = ","


BUILTIN_MAPPINGS = ("generic", "sitewatch")


def load_mapping(name_or_path: str | Path | None = None) -> Mapping:
    """A shipped mapping by name ("generic", "sitewatch"), or a mapping TOML file."""
    target = str(name_or_path or "generic")
    if target in BUILTIN_MAPPINGS:
        text = resources.files("clarity_tui").joinpath("data", "legacy_mappings", f"{target}.toml").read_text("utf-8")
        origin = f"built-in mapping '{target}'"
    else:
        path = Path(target)
        if not path.is_file():
            raise LegacyImportError(f"Mapping file {path} does not exist: give a TOML mapping file, or one of "
                               f"{', '.join(BUILTIN_MAPPINGS)}.")
        text, origin = path.read_text("utf-8"), f"mapping file {path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LegacyImportError(f"The {origin} is not valid TOML: {exc}.") from exc
    return parse_mapping(data, origin)


def parse_mapping(data: dict[str, Any], origin: str = "mapping") -> Mapping:
    head = data.get("mapping", {})
    cols = data.get("columns", {})
    unknown = sorted(set(cols) - set(FIELDS))
    if unknown:
        raise LegacyImportError(f"The {origin} names unknown fields {', '.join(unknown)}: use {', '.join(FIELDS)}.")
    columns = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in cols.items()}
    if "legacy_id" not in columns:
        raise LegacyImportError(f"The {origin} has no [columns] legacy_id: every row needs the legacy member id.")
    order = str(head.get("date_order", "MDY")).upper()
    if order not in DATE_ORDERS:
        raise LegacyImportError(f"The {origin} has date_order '{order}': use one of {', '.join(DATE_ORDERS)}.")
    name_order = str(head.get("name_order", "first_last"))
    if name_order not in ("last_first", "first_last"):
        raise LegacyImportError(f"The {origin} has name_order '{name_order}': use last_first or first_last.")
    return Mapping(
        name=str(head.get("name", origin)), source_system=str(head.get("source_system", "legacy")),
        columns=columns,
        plans={str(k).casefold().strip(): str(v).upper() for k, v in data.get("plans", {}).items()},
        statuses={str(k).casefold().strip(): str(v) for k, v in data.get("statuses", {}).items()},
        date_order=order, name_order=name_order, encoding=str(head.get("encoding", "utf-8-sig")),
        delimiter=str(head.get("delimiter", ",")),
    )


# --- field parsers ------------------------------------------------------------------------------


class RowProblem(ValueError):
    pass


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
    raise RowProblem(f"date '{text}' is not a date (use YYYY-MM-DD, MM/DD/YYYY or 'Nov 22, 2026')")


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


@functools.lru_cache(maxsize=64)
def _calling_code(region: str) -> int:
    return phonenumbers.country_code_for_region(region)


def import_phone(text: str, region: str = "US") -> str:
    """identity.normalize_phone, faster for a whole file: a plain North American number typed
    in the site's own (NANP) region is checked with phonenumbers' is_valid_number_for_region
    directly (no text parsing, no search for the region); anything else, and every failure,
    goes through normalize_phone itself (same result, same message)."""
    t = text.strip()
    if _PLAIN_PHONE.match(t) and _calling_code(region) == 1:
        digits = _NON_DIGIT.sub("", t)
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) == 10:
            number = phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))
            if phonenumbers.is_valid_number_for_region(number, region):
                return "+1" + digits
    return normalize_phone(t, region)


def split_plates(cells: Iterable[str]) -> list[tuple[str, str]]:
    """(raw, normalised) for every plate in the cells; several per cell split on ; , / |."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for cell in cells:
        for raw in _PLATE_SPLIT.split(cell or ""):
            raw = raw.strip()
            if not raw:
                continue
            try:
                norm = validate_plate(raw)
            except InvalidPlate as exc:
                raise RowProblem(f"plate {exc}") from None
            if norm not in seen:
                seen.add(norm)
                out.append((raw.upper()[:16], norm))
    return out


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    line: int
    legacy_id: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "legacy_id": self.legacy_id, "reason": self.reason}


@dataclass
class MemberRow:
    line: int
    legacy_id: str
    values: dict[str, Any]  # legacy_member columns (without id/timestamps/migration fields)
    plates: list[tuple[str, str]]

    def fingerprint(self) -> tuple:
        return (tuple(self.values[k] for k in COMPARED), tuple(sorted(n for _, n in self.plates)))


COMPARED = ("raw", "first_name", "last_name", "phone_e164", "email", "vehicle_desc", "plan_name", "plan_id", "status",
            "next_bill_on", "joined_on")


@dataclass
class ImportResult:
    source_system: str
    mapping: str
    dry_run: bool
    read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_migrated: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    batches_committed: int = 0
    last_line_committed: int = 0

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {"source_system": self.source_system, "mapping": self.mapping, "dry_run": self.dry_run,
                "read": self.read, "imported": self.imported, "updated": self.updated, "unchanged": self.unchanged,
                "kept_migrated": self.kept_migrated, "rejected": self.rejected_count,
                "batches_committed": self.batches_committed,
                "rejections": [r.as_dict() for r in self.rejected]}

    def summary_line(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        kept = f", {self.kept_migrated} already migrated (kept)" if self.kept_migrated else ""
        return (f"read {self.read}, {verb} {self.imported}, updated {self.updated}, unchanged {self.unchanged}"
                f"{kept}, rejected {self.rejected_count}")


class LegacyImporter:
    """Reads a legacy export with a mapping and upserts it, batch by batch."""

    def __init__(self, db: Any, mapping: Mapping, *, actor: Actor | None = None, phone_region: str = "US",
                 batch_size: int = BATCH_SIZE) -> None:
        self.db = db
        self.mapping = mapping
        self.actor = actor or Actor.system("legacy-import")
        self.phone_region = phone_region
        self.batch_size = batch_size
        self._plans: dict[str, int] = {}

    # --- reading ------------------------------------------------------------------------------

    def _open_text(self, path: Path) -> io.StringIO:
        data = path.read_bytes()
        try:
            text = data.decode(self.mapping.encoding)
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")  # Excel on Windows
        if text.startswith("\ufeff"):
            text = text[1:]
        return io.StringIO(text, newline="")

    def _header_index(self, header: Sequence[str]) -> dict[str, list[int]]:
        folded = [h.strip().lstrip("\ufeff").casefold() for h in header]
        found: dict[str, list[int]] = {}
        for fld, names in self.mapping.columns.items():
            idx = [folded.index(n.casefold()) for n in names if n.casefold() in folded]
            if idx:
                found[fld] = idx if fld == "plates" else idx[:1]
        if "legacy_id" not in found:
            raise LegacyImportError(f"No legacy id column: the mapping '{self.mapping.name}' looks for "
                               f"{' or '.join(repr(n) for n in self.mapping.columns['legacy_id'])}, the file has "
                               f"{', '.join(repr(h) for h in header)}. Choose another --mapping.")
        if "plates" not in found and "phone" not in found:
            raise LegacyImportError("The file has neither a plate nor a phone column (per the mapping): members could "
                               "never be found at the lane. Choose another --mapping.")
        return found

    def _load_plans(self) -> None:
        with self.db.read() as s:
            plans = list(s.execute(select(Plan)).scalars())
        self._plans = {}
        for p in plans:
            self._plans[p.code.casefold()] = p.id
            self._plans.setdefault(p.name.casefold(), p.id)

    def rows(self, path: str | Path) -> Iterator[MemberRow | Rejected]:
        """Every data row, parsed and validated, in file order (duplicates rejected).

        One process, streaming: measured, a process pool loses more to pickling every row both
        ways than it gains on two cores (phonenumbers is most of the parse time either way)."""
        path = Path(path)
        if not path.is_file():
            raise LegacyImportError(f"File {path} does not exist.")
        reader = csv.reader(self._open_text(path), delimiter=self.mapping.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise LegacyImportError(f"File {path} is empty: expected a header row and members.") from None
        except csv.Error as exc:
            raise LegacyImportError(f"File {path} is not a readable CSV: {exc}.") from exc
        parser = RowParser(self.mapping, self._header_index(header), [h.strip().lstrip("\ufeff") for h in header],
                           self.phone_region, self._plans)
        first_line: dict[str, int] = {}
        for line, cells in _records(reader):
            parsed = Rejected(line, "", cells) if isinstance(cells, str) else parser.parse(line, cells)
            if isinstance(parsed, MemberRow):
                if parsed.legacy_id in first_line:
                    yield Rejected(line, parsed.legacy_id, f"duplicate legacy id {parsed.legacy_id} "
                                                           f"(first on line {first_line[parsed.legacy_id]})")
                    continue
                first_line[parsed.legacy_id] = line
            yield parsed

    def run(self, path: str | Path, *, dry_run: bool = False) -> ImportResult:
        self._load_plans()
        result = ImportResult(self.mapping.source_system, self.mapping.name, dry_run)
        batch: list[MemberRow] = []
        for item in self.rows(path):
            result.read += 1
            if isinstance(item, Rejected):
                result.rejected.append(item)
                continue
            batch.append(item)
            if len(batch) >= self.batch_size:
                self._flush(batch, result, dry_run)
                batch = []
        if batch:
            self._flush(batch, result, dry_run)
        if not dry_run:
            with self.db.write() as s:
                audit.record(s, self.actor, "legacy.import", "legacy_member", None,
                             after={k: v for k, v in result.as_dict().items() if k != "rejections"})
        return result

    def _flush(self, batch: list[MemberRow], result: ImportResult, dry_run: bool) -> None:
        lm, lp = LegacyMember.__table__, LegacyMemberPlate.__table__  # type: ignore[attr-defined]
        source = self.mapping.source_system
        try:
            with self.db.write() as s:
                conn = s.connection()
                ids = [r.legacy_id for r in batch]
                existing: dict[str, Any] = {}
                for row in conn.execute(select(lm.c.id, lm.c.legacy_id, lm.c.migrated_at,
                                               *[lm.c[k] for k in COMPARED])
                                        .where(lm.c.source_system == source, _one_of(conn, lm.c.legacy_id, ids))
                                        .with_for_update()):  # PostgreSQL: a lane's migration waits for us
                    existing[row.legacy_id] = row
                plates: dict[int, list[str]] = {}
                if existing:
                    for pid, norm in conn.execute(select(lp.c.legacy_member_id, lp.c.plate_normalized)
                                                  .where(_one_of(conn, lp.c.legacy_member_id, [r.id for r in existing.values()]))):
                        plates.setdefault(pid, []).append(norm)
                now = utcnow()
                new_rows: list[MemberRow] = []
                changed: list[tuple[int, MemberRow]] = []
                for r in batch:
                    old = existing.get(r.legacy_id)
                    if old is None:
                        new_rows.append(r)
                        continue
                    if old.migrated_at is not None:
                        result.kept_migrated += 1
                        continue
                    stored = (tuple(getattr(old, k) for k in COMPARED), tuple(sorted(plates.get(old.id, []))))
                    if stored == r.fingerprint():
                        result.unchanged += 1
                    else:
                        changed.append((old.id, r))
                result.imported += len(new_rows)
                result.updated += len(changed)
                if dry_run:
                    s.rollback()
                    return
                plate_rows: list[dict[str, Any]] = []
                if new_rows:
                    # A plain executemany (RETURNING would go row by row on SQLite), then the new ids by key.
                    _insert_many(conn, lm, [{**r.values, "imported_at": now, "updated_at": now} for r in new_rows])
                    new_ids = dict(conn.execute(select(lm.c.legacy_id, lm.c.id).where(
                        lm.c.source_system == source, _one_of(conn, lm.c.legacy_id, [r.legacy_id for r in new_rows]))).all())
                    for r in new_rows:
                        plate_rows += [{"legacy_member_id": new_ids[r.legacy_id], "plate_raw": raw,
                                        "plate_normalized": norm} for raw, norm in r.plates]
                if changed:
                    changed_ids = [i for i, _ in changed]
                    conn.execute(delete(lp).where(_one_of(conn, lp.c.legacy_member_id, changed_ids)))
                    # Conditional on "not migrated": a member migrating on a lane meanwhile is never overwritten.
                    upd = (update(lm).where(lm.c.id == bindparam("_id"), lm.c.migrated_at.is_(None))
                           .values({k: bindparam(k) for k in COMPARED} | {"updated_at": bindparam("_now")}))
                    conn.execute(upd, [{"_id": i, "_now": now, **{k: r.values[k] for k in COMPARED}}
                                       for i, r in changed])
                    for i, r in changed:
                        plate_rows += [{"legacy_member_id": i, "plate_raw": raw, "plate_normalized": norm}
                                       for raw, norm in r.plates]
                if plate_rows:
                    _insert_many(conn, lp, plate_rows)
                audit.record(s, self.actor, "legacy.import_batch", "legacy_member", None,
                             after={"source_system": source, "first_line": batch[0].line, "last_line": batch[-1].line,
                                    "imported": len(new_rows), "updated": len(changed)})
        except Exception as exc:
            if isinstance(exc, LegacyImportError):
                raise
            raise LegacyImportError(
                f"The import stopped at the batch starting on line {batch[0].line}: {exc}. "
                f"{result.batches_committed} batch(es) up to line {result.last_line_committed} are saved; fix the "
                "problem and run the same command again: it resumes (saved rows come back unchanged).") from exc
        result.batches_committed += 1
        result.last_line_committed = batch[-1].line


def _one_of(conn: Any, column: Any, values: list[Any]) -> Any:
    """`column IN values`. On PostgreSQL one array parameter (`= ANY($1)`): a prepared (generic) plan
    of a 2,000-item IN list filters row by row, measured 5-10 s a batch; ANY(array) stays an index probe."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, value=list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _insert_many(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """executemany of an INSERT. On SQLite straight to the driver with SQLAlchemy's own bind
    processors per column (its per-row statement machinery would cost more than the insert)."""
    cols = list(rows[0])
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        # COPY: psycopg adapts each value (dates, aware datetimes, text); JSON goes as its text.
        json_cols = {c for c in cols if isinstance(table.c[c].type, JSON)}
        with conn.connection.driver_connection.cursor() as cur, \
                cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([json.dumps(r[c]) if c in json_cols and r[c] is not None else r[c] for c in cols])
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    procs = [table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in cols]
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn.exec_driver_sql(sql, [tuple(v if (p is None or v is None) else p(v)
                                     for v, p in zip((r[c] for c in cols), procs, strict=True)) for r in rows])


def _records(reader: Any) -> Iterator[tuple[int, list[str] | str]]:
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


@dataclass
class RowParser:
    """Turns one CSV record into a MemberRow or a Rejected."""

    mapping: Mapping
    index: dict[str, list[int]]
    header: list[str]
    phone_region: str
    plans: dict[str, int]  # casefolded plan code or name -> plan id

    def __post_init__(self) -> None:
        # One (field, column) pair per single-column field, looked up once per row.
        self._single = tuple((fld, ids[0]) for fld, ids in self.index.items() if fld != "plates")
        self._plates = tuple(self.index.get("plates", ()))

    def parse(self, line: int, cells: list[str]) -> MemberRow | Rejected:
        header = self.header
        if len(cells) != len(header):
            legacy_at = self.index["legacy_id"][0]
            legacy = cells[legacy_at].strip() if legacy_at < len(cells) else ""
            if not legacy:
                return Rejected(line, "", "no legacy id")
            return Rejected(line, legacy, f"{len(cells)} fields where the header has {len(header)} "
                                          "(a missing quote or delimiter?)")
        fields = {fld: cells[i].strip() for fld, i in self._single}
        get = fields.get
        legacy_id = fields["legacy_id"]
        if not legacy_id:
            return Rejected(line, "", "no legacy id")
        problems: list[str] = []
        first, last = get("first_name", ""), get("last_name", "")
        if not first and not last and get("full_name"):
            first, last = self._split_name(fields["full_name"])
        if not first and not last:
            problems.append("no name")
        phone = None
        if get("phone"):
            try:
                phone = import_phone(fields["phone"], self.phone_region)
            except InvalidPhone as exc:
                problems.append(f"phone: {exc}")
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
        elif plan_id is None:
            problems.append(f"unknown plan '{plan_name}': add it to [plans] in the mapping file")
        dates: dict[str, dt.date | None] = {}
        for fld in ("next_bill", "joined"):
            try:
                dates[fld] = parse_date(get(fld, ""), self.mapping.date_order)
            except RowProblem as exc:
                problems.append(f"{'next billing' if fld == 'next_bill' else 'join'} {exc}")
        if not problems and not plates and not phone:
            problems.append("neither a plate nor a phone: the member could never be found at the lane")
        if problems:
            return Rejected(line, legacy_id, "; ".join(problems))
        status = get("status", "")
        status = self.mapping.statuses.get(status.casefold(), status.casefold()) if status else None
        raw = {h: c for h, c in zip(header, cells, strict=False) if c != ""}
        values = {"source_system": self.mapping.source_system, "legacy_id": legacy_id[:64], "raw": raw,
                  "first_name": first[:80], "last_name": last[:80], "phone_e164": phone, "email": email,
                  "vehicle_desc": get("vehicle", "")[:120] or None, "plan_name": plan_name[:80],
                  "plan_id": plan_id, "status": (status or "")[:24] or None,
                  "next_bill_on": dates["next_bill"], "joined_on": dates["joined"]}
        return MemberRow(line, legacy_id, values, plates)

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



def export_migrated(db: Any, since: dt.date | None = None, source_system: str | None = None) -> list[dict[str, Any]]:
    """Migrated legacy members (oldest first): legacy id, new billing date, who and when.

    The operator loads this into the old POS to stop billing those members there."""
    from db.models import Customer, Membership

    q = (select(LegacyMember, Customer.customer_number, Membership.next_billing_on, Membership.gateway_subscription_id)
         .join(Customer, Customer.id == LegacyMember.migrated_customer_id, isouter=True)
         .join(Membership, (Membership.legacy_member_id == LegacyMember.id)
               & (Membership.customer_id == LegacyMember.migrated_customer_id), isouter=True)
         .where(LegacyMember.migrated_at.is_not(None)))
    if since is not None:
        q = q.where(LegacyMember.migrated_at >= dt.datetime.combine(since, dt.time(), dt.UTC))
    if source_system:
        q = q.where(LegacyMember.source_system == source_system)
    out = []
    with db.read() as s:
        for lm, number, next_billing, sub in s.execute(q.order_by(LegacyMember.migrated_at, LegacyMember.id)):
            at = lm.migrated_at if lm.migrated_at.tzinfo else lm.migrated_at.replace(tzinfo=dt.UTC)
            out.append({"source_system": lm.source_system, "legacy_id": lm.legacy_id,
                        "legacy_next_bill_on": lm.next_bill_on.isoformat() if lm.next_bill_on else "",
                        "new_next_billing_on": next_billing.isoformat() if next_billing else "",
                        "customer_number": number or "", "migrated_at": at.isoformat(timespec="seconds"),
                        "migrated_by": lm.migrated_by or "", "terminal": lm.migrated_terminal or "",
                        "subscription_id": sub or ""})
    return out


EXPORT_COLUMNS = ("source_system", "legacy_id", "legacy_next_bill_on", "new_next_billing_on", "customer_number",
                  "migrated_at", "migrated_by", "terminal", "subscription_id")


def write_export_csv(rows: list[dict[str, Any]], out: io.TextIOBase | Any) -> None:
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


__all__ = [
    "BUILTIN_MAPPINGS", "EXPORT_COLUMNS", "ImportResult", "LegacyImportError", "LegacyImporter", "Mapping", "Rejected",
    "export_migrated", "load_mapping", "parse_date", "parse_mapping", "split_plates", "write_export_csv",
]
