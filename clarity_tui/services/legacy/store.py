"""The SQL of the legacy import, in one place: statements per database, run on the driver's own cursor.

The import's rows are already in the form each database stores (legacy/parsers.py: dates as text,
`raw` as its JSON text), so the hot statements go straight to the DB-API cursor: no SQLAlchemy
statement compiled, no result rows processed. The session around them (db.write()) still owns the
transaction, and the driver's own errors keep their classes (IntegrityError, DataError) for the
importer's row-by-row retry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from clarity_tui.services.legacy.parsers import COMPARED, MEMBER_COLUMNS

MEMBER = "legacy_member"
PLATE = "legacy_member_plate"
# What _insert_many takes for each table: tuples in this column order.
INSERT_COLUMNS: dict[str, tuple[str, ...]] = {
    MEMBER: ("id", "imported_at", "updated_at", *MEMBER_COLUMNS),
    PLATE: ("legacy_member_id", "plate_raw", "plate_normalized"),
}


class Statements:
    """The import's statements for one database (SQLite, or PostgreSQL through psycopg)."""

    def __init__(self, dialect: Any) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
        p = "?" if self.sqlite else "%s"
        self.mark = p
        # A list of keys as one parameter: JSON on SQLite (json_each), an array on PostgreSQL (= ANY: an
        # index probe, where a prepared plan of a long IN list filters row by row).
        one_of = "IN (SELECT value FROM json_each(?))" if self.sqlite else "= ANY(%s)"
        # The compared columns as stored text: `raw` as its JSON text (compared with the row's own text,
        # parsed only when they differ), dates as YYYY-MM-DD whatever the server's DateStyle.
        shown = {"raw": "raw" if self.sqlite else "raw::text"}
        if not self.sqlite:
            shown |= {d: f"to_char({d}, 'YYYY-MM-DD')" for d in ("next_bill_on", "joined_on")}
        self.existing = (f"SELECT id, legacy_id, migrated_at IS NOT NULL, {', '.join(shown.get(c, c) for c in COMPARED)} "
                         f"FROM {MEMBER} WHERE source_system = {p} AND legacy_id {one_of}")
        self.plates_of = f"SELECT legacy_member_id, plate_normalized FROM {PLATE} WHERE legacy_member_id {one_of}"
        # The members to update, still not migrated; on PostgreSQL locked until the batch commits (a lane's
        # migration waits for us, and we skip a member it migrated first). SQLite's write lock does the same.
        self.lock_unmigrated = (f"SELECT id FROM {MEMBER} WHERE id {one_of} AND migrated_at IS NULL"
                                + ("" if self.sqlite else " FOR UPDATE"))
        self.update = (f"UPDATE {MEMBER} SET {', '.join(f'{c} = {p}' for c in COMPARED)}, updated_at = {p} "
                       f"WHERE id = {p}")
        self.delete_plates = f"DELETE FROM {PLATE} WHERE legacy_member_id {one_of}"
        # New members get their ids first, so their plates need no second look-up: under SQLite's write lock
        # the next ones after the largest; on PostgreSQL from the table's own sequence.
        self.next_ids = (f"SELECT coalesce(max(id), 0) FROM {MEMBER}" if self.sqlite else
                         f"SELECT nextval(pg_get_serial_sequence('{MEMBER}', 'id')) FROM generate_series(1, %s)")

    def keys(self, values: Sequence[Any]) -> Any:
        return json.dumps(list(values)) if self.sqlite else list(values)

    def new_ids(self, cur: Any, n: int) -> list[int]:
        if self.sqlite:
            top = cur.execute(self.next_ids).fetchone()[0]
            return list(range(top + 1, top + 1 + n))
        cur.execute(self.next_ids, (n,))
        return [i for (i,) in cur.fetchall()]

    def insert(self, cur: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
        cols = INSERT_COLUMNS[table]
        if self.copy:
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            return
        cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([self.mark] * len(cols))})", rows)


def fetch_plates(stm: Statements, cur: Any, member_ids: Iterable[int]) -> dict[int, list[str]]:
    cur.execute(stm.plates_of, (stm.keys(list(member_ids)),))
    plates: dict[int, list[str]] = {}
    for member_id, norm in cur.fetchall():
        plates.setdefault(member_id, []).append(norm)
    return plates


__all__ = ["INSERT_COLUMNS", "MEMBER", "PLATE", "Statements", "fetch_plates"]
