"""Importing a legacy POS member export (CSV) into `legacy_member` / `legacy_member_plate`.

    mapping = load_mapping("sitewatch")            # or a path to a mapping TOML
    result = LegacyImporter(db, mapping).run(path) # ImportResult: counts + rejected rows

The file: UTF-8 (with or without BOM; cp1252 as a fallback), CRLF or LF, quoted fields,
any column order. The mapping (legacy/mapping.py) names the columns (several spellings each),
maps legacy plan names to our plan codes, and declares the order of an ambiguous numeric date
("03/04/2026": MDY or DMY).

Each row is validated on its own (legacy/parsers.py): a bad row is rejected with its line number
and the reason; the others go in. That covers values longer than their column, NUL bytes and
control characters, so the database never has to refuse a row. If it still does (a constraint
the validation does not know), that batch is retried row by row and only the refused row is
rejected: one bad row never stops its batch, and a re-run makes progress.

Idempotent upsert by (source system, legacy id): a row equal to what is stored is
"unchanged", a different one "updated", and a member who has already migrated is never
overwritten ("kept"). One transaction per batch, so an interrupted import keeps the
batches it committed; running the same command again resumes (committed rows come back
unchanged) and finishes the rest.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Text, any_, bindparam, cast, delete, func, insert, select, update
from sqlalchemy import exc as sa_exc

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.legacy.mapping import (
    LegacyImportError,
    Mapping,
)
from clarity_tui.services.legacy.parsers import (
    COMPARED,
    MemberRow,
    Rejected,
    RowParser,
    has_control,
    printable,
    records,
)
from db.models import Plan, metadata, utcnow

BATCH_SIZE = 5000  # rows per transaction: fewer commits and round trips; a resume redoes at most one


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
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LegacyImportError(f"File {path} cannot be read ({exc.strerror or exc}).") from None
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
        if any(has_control(h) for h in header):
            raise LegacyImportError(f"File {path} has control characters in its header row "
                                    f"({printable(','.join(header), 120)}): is it a CSV export?")
        parser = RowParser(self.mapping, self._header_index(header), [h.strip().lstrip("\ufeff") for h in header],
                           self.phone_region, self._plans)
        first_line: dict[str, int] = {}
        for line, cells in records(reader):
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
        result.rejected.sort(key=lambda r: r.line)  # rows the database refused come back after their batch
        if not dry_run:
            with self.db.write() as s:
                audit.record(s, self.actor, "legacy.import", "legacy_member", None,
                             after={k: v for k, v in result.as_dict().items() if k != "rejections"})
        return result

    def _flush(self, batch: list[MemberRow], result: ImportResult, dry_run: bool) -> None:
        """One transaction for the batch. Should the database still refuse a row (a constraint the
        validation does not know), the batch is written again row by row and only that row is rejected."""
        try:
            counts = self._write(batch, dry_run)
        except Exception as exc:
            if not self._refused(exc):
                raise self._stopped(batch, result, exc) from exc
            counts = _Counts()
            for row in batch:
                try:
                    counts.add(self._write([row], dry_run))
                except Exception as row_exc:
                    if not self._refused(row_exc):
                        raise self._stopped([row], result, row_exc) from row_exc
                    result.rejected.append(Rejected(row.line, row.legacy_id, f"the database refused the row "
                                                    f"({_first_line(row_exc)}): fix it in the file and import again"))
        counts.add_to(result)
        result.batches_committed += 1
        result.last_line_committed = batch[-1].line

    def _refused(self, exc: BaseException) -> bool:
        """The database said no to the data (a constraint, a value it cannot store), not a lost
        connection or a full disk: those stop the import, which resumes when run again."""
        if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError)):
            return True
        if isinstance(exc, (LegacyImportError, sa_exc.SQLAlchemyError, OSError)):
            return False
        dbapi = getattr(getattr(getattr(self.db, "engine", None), "dialect", None), "dbapi", None)
        refusals = tuple(getattr(dbapi, n) for n in ("DataError", "IntegrityError") if hasattr(dbapi, n))
        return isinstance(exc, (ValueError, *refusals))

    def _stopped(self, batch: list[MemberRow], result: ImportResult, exc: BaseException) -> LegacyImportError:
        if isinstance(exc, LegacyImportError):
            return exc
        return LegacyImportError(
            f"The import stopped at the batch starting on line {batch[0].line}: {_first_line(exc)}. "
            f"{result.batches_committed} batch(es) up to line {result.last_line_committed} are saved; fix the "
            "problem and run the same command again: it resumes (saved rows come back unchanged).")

    def _write(self, batch: list[MemberRow], dry_run: bool) -> _Counts:
        lm, lp = metadata.tables["legacy_member"], metadata.tables["legacy_member_plate"]
        source = self.mapping.source_system
        counts = _Counts()
        with self.db.write() as s:
            conn = s.connection()
            ids = [r.legacy_id for r in batch]
            existing: dict[str, Any] = {}
            # `raw` as its stored text: compared with the new row's JSON text, parsed only when they differ.
            compared = [cast(lm.c[k], Text).label(k) if k == "raw" else lm.c[k] for k in COMPARED]
            for row in conn.execute(select(lm.c.id, lm.c.legacy_id, lm.c.migrated_at, *compared)
                                    .where(lm.c.source_system == source, _one_of(conn, lm.c.legacy_id, ids))
                                    .with_for_update()):  # PostgreSQL: a lane's migration waits for us
                existing[row.legacy_id] = row
            plates: dict[int, list[str]] = {}
            if existing:
                # Two plain columns: the driver's rows as they come (no result processing per row).
                found = conn.execute(select(lp.c.legacy_member_id, lp.c.plate_normalized)
                                     .where(_one_of(conn, lp.c.legacy_member_id, [r.id for r in existing.values()])))
                for pid, norm in found.cursor.fetchall():
                    plates.setdefault(pid, []).append(norm)
                found.close()
            now = utcnow()
            new_rows: list[MemberRow] = []
            changed: list[tuple[int, MemberRow]] = []
            for r in batch:
                old = existing.get(r.legacy_id)
                if old is None:
                    new_rows.append(r)
                    continue
                if old.migrated_at is not None:
                    counts.kept_migrated += 1
                    continue
                if _same(old, plates.get(old.id, []), r):
                    counts.unchanged += 1
                else:
                    changed.append((old.id, r))
            counts.imported, counts.updated = len(new_rows), len(changed)
            if dry_run:
                s.rollback()
                return counts
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
        return counts


@dataclass
class _Counts:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_migrated: int = 0

    def add(self, other: _Counts) -> None:
        for k in ("imported", "updated", "unchanged", "kept_migrated"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def add_to(self, result: ImportResult) -> None:
        for k in ("imported", "updated", "unchanged", "kept_migrated"):
            setattr(result, k, getattr(result, k) + getattr(self, k))


def _first_line(exc: BaseException) -> str:
    """What went wrong in one line, never the SQL: the driver's own message when there is one."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return printable(text, 160)


def _one_of(conn: Any, column: Any, values: list[Any]) -> Any:
    """`column IN values`. On PostgreSQL one array parameter (`= ANY($1)`): a prepared (generic) plan
    of a 2,000-item IN list filters row by row, measured 5-10 s a batch; ANY(array) stays an index probe."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, value=list(values), type_=ARRAY(column.type)))
    # SQLite: one JSON parameter too; an expanded IN list of 2,000 values costs more to render than to run.
    ids = func.json_each(bindparam(None, value=json.dumps(list(values)), type_=Text)).table_valued("value")
    return column.in_(select(ids.c.value))


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
    # Values a column's processor turns into text (dates, datetimes) are few per file: each is processed once.
    processed: list[tuple[int, Any, dict[Any, Any]]] = []
    for i, c in enumerate(cols):
        proc = table.c[c].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if proc is not None:
            processed.append((i, proc, {}))
    get = operator.itemgetter(*cols)
    params: list[Any] = []
    for r in rows:
        values = list(get(r)) if len(cols) > 1 else [get(r)]
        for i, proc, memo in processed:
            v = values[i]
            if v is None:
                continue
            if isinstance(v, (dict, list)):
                values[i] = proc(v)
            else:
                done = memo.get(v)
                if done is None:
                    done = memo[v] = proc(v)
                values[i] = done
        params.append(tuple(values))
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn.exec_driver_sql(sql, params)


_RAW_AT = COMPARED.index("raw")
_OTHERS = operator.itemgetter(*[k for k in COMPARED if k != "raw"])


def _same(old: Any, old_plates: list[str], row: MemberRow) -> bool:
    """Whether the stored member equals the row (`old.raw` is the stored JSON text, parsed only when that
    text is not the row's own serialisation)."""
    new = row.values
    stored = tuple(old)[3:]  # the COMPARED columns, after id, legacy_id and migrated_at
    if stored[:_RAW_AT] + stored[_RAW_AT + 1:] != _OTHERS(new):
        return False
    raw = stored[_RAW_AT]
    if raw != json.dumps(new["raw"]) and (raw is None or json.loads(raw) != new["raw"]):
        return False
    return sorted(old_plates) == sorted(n for _, n in row.plates)
