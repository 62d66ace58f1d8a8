"""The SQL of customer search (services/search.py): one small indexed select per criterion, run straight
on the driver's connection.

Every criterion is an index prefix range on a folded key (`col >= 'zoom' AND col < 'zoon'`), never
`LIKE '%term%'`, so a query stays a few index probes at a million customers. On PostgreSQL, comparisons
use COLLATE "C" (byte order) to match the indexes of migration 0003; on SQLite the default BINARY
collation already is byte order.

Why it is written the way it is (measured at 1,000,000 customers, each search on a newly opened
database as `customers search` runs it; see bench/search.py):
- Plain SQL text, not SQLAlchemy expressions: building and compiling a union of up to eight selects
  cost more than running it.
- The driver's own cursor, not `Connection.exec_driver_sql`: SQLAlchemy's transaction and result
  set-up (on SQLite a BEGIN and ROLLBACK around the reads) were a quarter of a cold search on
  SQLite, a third of the client's CPU on PostgreSQL.
- PostgreSQL: columns and parameters are cast to text. A varchar column compared with an untyped
  parameter sends a new backend searching every `>=` operator for the best candidate (its catalog
  caches start empty); `text >= text` is one exact lookup (parse analysis 1.2 -> 0.7 ms). The cast
  is a relabelling that the planner strips, so the COLLATE "C" indexes still drive the probes
  (tests/customers/test_search.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from db.engine import Database


@dataclass(frozen=True)
class Probe:
    """One criterion: plain SQL yielding (tag, cid, key) rows, and its parameters in order."""

    sql: str
    params: tuple[str, ...]


MAX_CODE_POINT = 0x10FFFF


def upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (by code point, which is byte
    order in UTF-8): its last character's successor, skipping the surrogates no driver can encode; past the
    last code point, the successor of the prefix without it. A prefix of nothing but U+10FFFF has no such
    bound: every string above it starts with it, so U+10FFFF repeated past any stored length bounds it."""
    while prefix and ord(prefix[-1]) == MAX_CODE_POINT:
        prefix = prefix[:-1]
    if not prefix:
        return chr(MAX_CODE_POINT) * 256
    nxt = ord(prefix[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)


class SearchSql:
    """Builds the probes for one database kind."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self._ph = "%s::text" if postgres else "?"  # the driver's placeholder (psycopg / sqlite3)

    def _col(self, column: str) -> str:
        return f'{column}::text COLLATE "C"' if self.postgres else column

    def range(self, column: str, prefix: str) -> tuple[str, tuple[str, str]]:
        col = self._col(column)
        return f"{col} >= {self._ph} AND {col} < {self._ph}", (prefix, upper_bound(prefix))

    def prefix(self, tag: str, column: str, prefix: str, limit: int) -> Probe:
        where, params = self.range(column, prefix)
        return self.probe(tag, column, where, params, limit)

    def probe(self, tag: str, column: str, where: str, params: tuple[str, ...], limit: int,
              table: str = "customer", id_col: str = "id") -> Probe:
        return Probe(f"SELECT '{tag}' AS tag, {id_col} AS cid, {column} AS key FROM {table} "
                     f"WHERE {where} ORDER BY {self._col(column)} LIMIT {int(limit)}", params)

    def full_name(self, last: str, first: str, limit: int) -> Probe:
        last_where, last_params = self.range("search_last", last)
        first_where, first_params = self.range("search_first", first)
        return self.probe("full", "search_last", f"{last_where} AND {first_where}", last_params + first_params, limit)

    def plate_variants(self, variants: Sequence[str], limit: int) -> Probe:
        # Byte-order comparison like the other probes, or PostgreSQL cannot use the
        # COLLATE "C" index of migration 0003 and scans every vehicle.
        where = (f"{self._col('plate_normalized')} IN ({', '.join([self._ph] * len(variants))}) "
                 "AND customer_id IS NOT NULL")
        return Probe(f"SELECT 'plate~' AS tag, customer_id AS cid, plate_normalized AS key FROM vehicle "
                     f"WHERE {where} LIMIT {int(limit)}", tuple(variants))

    def plate_prefix(self, plate: str, limit: int) -> Probe:
        where, params = self.range("plate_normalized", plate)
        return self.probe("plate", "plate_normalized", f"{where} AND customer_id IS NOT NULL", params, limit,
                          table="vehicle", id_col="customer_id")

    @staticmethod
    def union(probes: Sequence[Probe]) -> tuple[str, tuple[str, ...]]:
        """Every probe in one statement (SQLite wants each LIMIT inside its own subquery)."""
        sql = " UNION ALL ".join(f"SELECT * FROM ({probe.sql}) AS p{i}" for i, probe in enumerate(probes))
        return sql, tuple(p for probe in probes for p in probe.params)

    @staticmethod
    def customers(ids: Sequence[int]) -> str:
        """The customers `ids` (rows with a NULL vehicle id), then their vehicles' plates (rows with the
        vehicle id and only the customer id and plate): two index lookups, no join for a new backend
        to plan. The ids are written into the SQL as integers (they come from the database): no
        parameter types to resolve either."""
        listed = ", ".join(str(int(cid)) for cid in ids)
        return ("SELECT id, customer_number, first_name, last_name, phone_e164, email, search_last, search_first, "
                f"NULL AS plate, NULL AS vehicle_id FROM customer WHERE id IN ({listed}) UNION ALL "
                "SELECT customer_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, plate, id FROM vehicle "
                f"WHERE customer_id IN ({listed})")


@contextmanager
def driver_cursor(db: Database) -> Iterator[Any]:
    """A cursor of the driver's own, on a pooled connection, for reads only.

    Each statement is its own read: on PostgreSQL in autocommit (no BEGIN and ROLLBACK round trips;
    two statements under READ COMMITTED see two snapshots anyway), on SQLite as the engine's connections
    already run (pysqlite's transaction handling is off). The connection goes back to the pool as it
    came (autocommit off); one that lost its server is invalidated (another failure is reset by the pool)."""
    raw = db.engine.raw_connection()
    driver: Any = raw.driver_connection
    switch = not db.is_sqlite and not driver.autocommit
    try:
        if switch:
            driver.autocommit = True
        cursor = driver.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    except Exception as exc:
        dialect = db.engine.dialect
        if isinstance(exc, dialect.loaded_dbapi.Error) and dialect.is_disconnect(exc, raw.dbapi_connection, None):
            raw.invalidate(exc)
            switch = False
        raise
    finally:
        try:
            if switch:
                driver.autocommit = False
        except Exception as exc:  # noqa: BLE001 - unusable: never hand it out again
            raw.invalidate(exc)
        raw.close()
