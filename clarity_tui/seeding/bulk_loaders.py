"""The bulk loader's writers: SQLite through the raw connection (executemany), PostgreSQL through COPY.

Each loads everything in one transaction, with secondary indexes (and PostgreSQL's foreign keys) dropped
while loading and rebuilt once at the end; the next batch is built in a thread meanwhile.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from clarity_tui.seeding.bulk_rows import ID_TABLES, TABLES, Batch, IdBlocks
from db.engine import Database

_DONE = object()
T = TypeVar("T")


def _as_is(batch: Batch) -> Batch:
    return batch


def _pipelined(batches: Iterable[Batch], prepare: Callable[[Batch], T]) -> Iterator[T]:
    """Build (and prepare) the next batch in a thread while the database stores this one.

    The database engine (SQLite's C code, the PostgreSQL server) runs without the GIL,
    so on two cores generation and storage overlap.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                item = prepare(batch)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)

    worker = threading.Thread(target=produce, name="bulk-seed-producer", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)  # what prepare() returned
    finally:
        stop.set()
        worker.join()


def sqlite_load(db: Database, make_batches: Callable[[IdBlocks], Iterable[Batch]], progress: Callable[[str], None]) -> None:
    """One write transaction through the raw sqlite3 connection: all or nothing."""
    raw = db.engine.raw_connection()
    try:
        con = raw.driver_connection
        assert con is not None, "a pooled connection always has its driver connection"
        cur = con.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")  # our ids are consistent by construction (checked in tests)
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-262144")  # 256 MiB
        cur.execute("PRAGMA temp_store=MEMORY")
        try:
            # The write lock is held from here to COMMIT, so the ids we allocate stay ours.
            cur.execute("BEGIN IMMEDIATE")
            index_sql = cur.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN "
                f"({','.join('?' * len(TABLES))})",
                tuple(TABLES),
            ).fetchall()
            # Rebuilding secondary indexes once is several times faster than updating them row by row.
            for name, _ in index_sql:
                cur.execute(f'DROP INDEX "{name}"')
            ids = IdBlocks({t: cur.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {t}").fetchone()[0] for t in ID_TABLES})
            for batch in _pipelined(make_batches(ids), _as_is):
                for table, rows in batch.rows.items():
                    if rows:
                        cols = TABLES[table]
                        cur.executemany(
                            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows
                        )
            progress("building indexes")
            for _, sql in index_sql:
                cur.execute(sql)
            cur.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA cache_size=-2000")
            cur.execute("PRAGMA temp_store=DEFAULT")
            cur.execute("PRAGMA foreign_keys=ON")
        progress("analyzing")
        cur.execute("ANALYZE")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()


def _copy_line(row: tuple) -> str:
    return "\t".join(["\\N" if value is None else str(value) for value in row])


def _copy_text(batch: Batch) -> dict[str, str]:
    return {table: "\n".join(map(_copy_line, rows)) + "\n" for table, rows in batch.rows.items() if rows}


def postgres_load(db: Database, make_batches: Callable[[IdBlocks], Iterable[Batch]], counts: dict[str, int],
                   progress: Callable[[str], None]) -> None:
    """One transaction: drop secondary indexes and foreign keys, COPY, rebuild them. All or nothing."""
    raw = db.engine.raw_connection()
    con = raw.driver_connection
    assert con is not None, "a pooled connection always has its driver connection"
    try:
        tables = list(TABLES)
        with con.cursor() as cur:
            # Ids are reserved from the sequences first (setval is not transactional), so
            # concurrent inserts by other sessions never collide with ours.
            ids = IdBlocks({})
            reserved: dict[str, tuple[str, int]] = {}
            for table in ID_TABLES:
                seq = cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
                start = cur.execute(
                    f"SELECT greatest((SELECT coalesce(max(id), 0) FROM {table}), "
                    f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq})) + 1"
                ).fetchone()[0]
                end = start + counts[table] - 1
                if counts[table]:
                    cur.execute("SELECT setval(%s, %s)", (seq, end))
                reserved[table] = (seq, end)
                ids.next[table] = start
            con.commit()
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            indexes = cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (tables,),
            ).fetchall()
            fkeys = cur.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
                (tables,),
            ).fetchall()
            for table, name, _ in fkeys:
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                cur.execute(f"DROP INDEX {name}")
            for prepared in _pipelined(make_batches(ids), _copy_text):
                for table, data in prepared.items():
                    with cur.copy(f"COPY {table} ({', '.join(TABLES[table])}) FROM STDIN") as copy:
                        copy.write(data)
            progress("building indexes and checking foreign keys")
            for _, sql in indexes:
                cur.execute(sql)
            for table, name, definition in fkeys:
                cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            con.commit()
            # Give back the unused part of each reserved id block, unless someone drew after it.
            for table, (seq, end) in reserved.items():
                if not counts[table]:
                    continue
                cur.execute(
                    f"SELECT setval(%s, greatest((SELECT coalesce(max(id), 1) FROM {table}), 1)) "
                    f"WHERE (SELECT last_value FROM {seq}) = %s",
                    (seq, end),
                )
            con.commit()
            progress("analyzing")
            for table in tables:
                cur.execute(f"ANALYZE {table}")
            con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        raw.close()

