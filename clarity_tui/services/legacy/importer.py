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

Speed (issue 17): rows carry their columns as stored (legacy/parsers.py), the SQL runs on the driver's
cursor (legacy/store.py: COPY on PostgreSQL, executemany on SQLite), new members get their ids up front
so their plates need no look-up, "unchanged" is one tuple comparison with the stored row, and automatic
garbage collection waits until each batch is written.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.legacy.mapping import LegacyImportError, Mapping
from clarity_tui.services.legacy.parsers import (
    MemberRow,
    Rejected,
    RowParser,
    has_control,
    printable,
)
from clarity_tui.services.legacy.pipeline import BatchWriter
from clarity_tui.services.legacy.result import Counts, ImportResult
from clarity_tui.services.legacy.store import MEMBER, PLATE, Statements, fetch_plates
from db.models import Plan, metadata, utcnow

BATCH_SIZE = 5000  # rows per transaction: fewer commits and round trips; a resume redoes at most one


class LegacyImporter:
    """Reads a legacy export with a mapping and upserts it, batch by batch."""

    def __init__(self, db: Any, mapping: Mapping, *, actor: Actor | None = None, phone_region: str = "US",
                 batch_size: int = BATCH_SIZE, pipelined: bool | None = None) -> None:
        self.db = db
        self.mapping = mapping
        self.actor = actor or Actor.system("legacy-import")
        self.phone_region = phone_region
        self.batch_size = batch_size
        # A writer thread (legacy/pipeline.py) on PostgreSQL, whose writes are mostly the server's work: the next
        # batch is parsed meanwhile (100k rows, 4 interleaved pairs: first import faster in 4 of 4, re-import in
        # 4 of 4). Not on SQLite, whose driver takes the GIL back for every row (always slower).
        self.pipelined = pipelined  # None: by database
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
        ways than it gains on two cores."""
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
        yield from parser.rows(reader)

    def run(self, path: str | Path, *, dry_run: bool = False) -> ImportResult:
        self._load_plans()
        result = ImportResult(self.mapping.source_system, self.mapping.name, dry_run)
        batch: list[MemberRow] = []
        threaded = not self.db.is_sqlite if self.pipelined is None else self.pipelined
        writer = BatchWriter(lambda rows: self._flush(rows, result, dry_run), threaded=threaded)
        with _young_collections_only(), writer as submit:
            for item in self.rows(path):
                result.read += 1
                if isinstance(item, Rejected):
                    result.rejected.append(item)
                    continue
                batch.append(item)
                if len(batch) >= self.batch_size:
                    submit(batch)
                    batch = []
            if batch:
                submit(batch)
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
            counts = Counts()
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

    def _write(self, batch: list[MemberRow], dry_run: bool) -> Counts:
        stm = _statements(self.db.engine.dialect)
        counts = Counts()
        with self.db.write() as s:
            conn = s.connection()
            cur = conn.connection.driver_connection.cursor()
            try:
                new_rows, changed = self._compare(stm, cur, batch, counts)
                if dry_run:
                    s.rollback()
                    return counts
                self._store(stm, conn, cur, new_rows, changed, counts)
            finally:
                cur.close()
            audit.record(s, self.actor, "legacy.import_batch", "legacy_member", None,
                         after={"source_system": self.mapping.source_system, "first_line": batch[0].line,
                                "last_line": batch[-1].line, "imported": counts.imported, "updated": counts.updated})
        return counts

    def _compare(self, stm: Statements, cur: Any, batch: list[MemberRow],
                 counts: Counts) -> tuple[list[MemberRow], list[tuple[int, MemberRow]]]:
        """The batch's new rows and changed ones (with their member ids); unchanged and migrated ones counted."""
        cur.execute(stm.existing, (self.mapping.source_system, stm.keys([r.legacy_id for r in batch])))
        existing = {row[1]: row for row in cur.fetchall()}
        plates = fetch_plates(stm, cur, [row[0] for row in existing.values()]) if existing else {}
        new_rows: list[MemberRow] = []
        changed: list[tuple[int, MemberRow]] = []
        for r in batch:
            old = existing.get(r.legacy_id)
            if old is None:
                new_rows.append(r)
            elif old[2]:
                counts.kept_migrated += 1
            elif _same(old, plates.get(old[0]), r):
                counts.unchanged += 1
            else:
                changed.append((old[0], r))
        counts.imported, counts.updated = len(new_rows), len(changed)
        return new_rows, changed

    def _store(self, stm: Statements, conn: Any, cur: Any, new_rows: list[MemberRow],
               changed: list[tuple[int, MemberRow]], counts: Counts) -> None:
        lm, lp = metadata.tables[MEMBER], metadata.tables[PLATE]
        now = _stored_now(conn.dialect)
        plate_rows: list[tuple[Any, ...]] = []
        if new_rows:
            ids = stm.new_ids(cur, len(new_rows))
            _insert_many(conn, lm, [(i, now, now, *r.params) for i, r in zip(ids, new_rows, strict=True)])
            for i, r in zip(ids, new_rows, strict=True):
                plate_rows += [(i, raw, norm) for raw, norm in r.plates]
        if changed:
            # Only members not migrated meanwhile (on a lane, since we read them): those are kept as they are.
            cur.execute(stm.lock_unmigrated, (stm.keys([i for i, _ in changed]),))
            unmigrated = {i for (i,) in cur.fetchall()}
            if len(unmigrated) < len(changed):
                counts.kept_migrated += len(changed) - len(unmigrated)
                counts.updated = len(unmigrated)
                changed = [(i, r) for i, r in changed if i in unmigrated]
        if changed:
            cur.execute(stm.delete_plates, (stm.keys([i for i, _ in changed]),))
            cur.executemany(stm.update, [(*r.params[2:], now, i) for i, r in changed])
            for i, r in changed:
                plate_rows += [(i, raw, norm) for raw, norm in r.plates]
        if plate_rows:
            _insert_many(conn, lp, plate_rows)


def _first_line(exc: BaseException) -> str:
    """What went wrong in one line, never the SQL: the driver's own message when there is one."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return printable(text, 160)


@contextlib.contextmanager
def _young_collections_only() -> Iterator[None]:
    """No automatic garbage collection while importing (the caller collects the young generations per batch).

    Every row allocates a few tracked objects, so the collector's full passes over the whole heap
    (SQLAlchemy's and the app's objects) came round again and again: a quarter of the parse time, measured.
    The rows themselves are freed by reference counting; the young collections free any cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.lru_cache(maxsize=8)
def _statements(dialect: Any) -> Statements:
    return Statements(dialect)


def _stored_now(dialect: Any) -> Any:
    """Now, as the timestamp columns take it: SQLite's text (SQLAlchemy's own format), else the datetime."""
    now = utcnow()
    proc = metadata.tables[MEMBER].c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    return proc(now) if proc is not None else now


def _insert_many(conn: Any, table: Any, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows (tuples in store.INSERT_COLUMNS order) in the batch's transaction: COPY on PostgreSQL,
    one executemany on SQLite. (One function, so that tests can fail or kill the import right here.)"""
    cur = conn.connection.driver_connection.cursor()
    try:
        _statements(conn.dialect).insert(cur, table.name, rows)
    finally:
        cur.close()


def _same(old: Sequence[Any], old_plates: list[str] | None, row: MemberRow) -> bool:
    """Whether the stored member (`old`: id, legacy id, migrated, then the compared columns as stored text)
    equals the row: one tuple comparison; `raw` parsed only when its stored text is not the row's own."""
    new = row.params
    if old[3:] != new[2:]:
        if old[4:] != new[3:]:
            return False
        if old[3] is None or json.loads(old[3]) != json.loads(new[2]):
            return False
    stored = sorted(old_plates) if old_plates else []
    return stored == sorted(n for _, n in row.plates)
