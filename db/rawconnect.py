"""DB-API connections without SQLAlchemy, for the first paint and the change feed.

Importing SQLAlchemy costs more than Textual itself; these two paths only need
one connection and a few plain queries.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from typing import Any
from urllib.parse import quote, unquote

from db.schema_head import HEAD_REVISION

# Tables that revision 0001 creates: a database holding all three is ours (at some revision).
CLARITY_MARKER_TABLES = frozenset({"site", "lane", "vehicle_session"})
# `PRAGMA quick_check` reads every page: 4 ms for the demo database, 1.5 s for 1,000,000 customers
# (755 MB, warm cache). Files up to this size are checked on every open; bigger ones by `doctor`.
QUICK_CHECK_ON_OPEN_MAX_BYTES = 64 * 1024 * 1024


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file(url: str) -> str | None:
    """'sqlite:////abs/path.db' -> '/abs/path.db' (None for in-memory)."""
    if not is_sqlite_url(url):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return unquote(path) or None if path not in ("", ":memory:") else None


def pg_conninfo(url: str) -> str:
    """A libpq URL for psycopg: drop SQLAlchemy's '+driver' suffix."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def read_only_uri(path: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode=ro"


def refuse_non_file(path: str) -> None:
    """Refuse a path that exists and is not a regular file (a FIFO, a device, a socket): opening one
    can block for ever (a FIFO waits for a writer). Raises db.errors.DatabaseUnreachable. A folder is
    left to the caller's own message; a missing path is a new database."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    from db.errors import not_a_file

    raise not_a_file(path, mode)


def connect_raw(url: str, *, read_only: bool = False) -> Any:
    if is_sqlite_url(url):
        path = sqlite_file(url)
        if path is None:
            raise ValueError("an in-memory SQLite database cannot be shared")
        from db.errors import note_location

        note_location(path)
        refuse_non_file(path)
        if read_only:
            conn = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False, isolation_level=None)
        else:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn
    import psycopg

    return psycopg.connect(pg_conninfo(url), autocommit=True, connect_timeout=5)


def schema_at_head(url: str) -> bool:
    """True when the database exists and its schema is the newest migration.

    Never creates or modifies anything (SQLite is opened read-only), so callers
    can fall back to the full open-and-upgrade path on False.
    """
    if is_sqlite_url(url):
        path = sqlite_file(url)
        import os

        if path is None or not os.path.isfile(path):
            return False  # missing, a folder, a FIFO...: the full open path explains it
    try:
        conn = connect_raw(url, read_only=True)
    except Exception:  # noqa: BLE001 - any problem: let the full path explain it
        return False
    try:
        cur = conn.cursor()
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
        return row is not None and row[0] == HEAD_REVISION
    except Exception:  # noqa: BLE001 - an older schema or none: the full path explains it
        return False
    finally:
        conn.close()


def foreign_tables(tables: list[str]) -> list[str]:
    """The tables that make a database another program's: [] when it is empty or ours.

    Ours = it holds Clarity's first tables (whatever its revision: too new is reported separately).
    An empty alembic_version (downgraded to base) counts as empty."""
    others = [t for t in tables if t != "alembic_version" and not t.startswith("sqlite_")]
    if not others or set(others) >= CLARITY_MARKER_TABLES:
        return []
    return others


def quick_check(conn: sqlite3.Connection, max_errors: int = 1) -> list[str]:
    """SQLite's `PRAGMA quick_check`: [] when the file is sound, else its first problems.
    (A damaged page can also raise sqlite3.DatabaseError instead of being listed.)

    Its text is decoded leniently: random bytes in a page show up in the messages it quotes, and
    must not turn a damaged file into a UnicodeDecodeError."""
    saved = conn.text_factory
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({int(max_errors)})").fetchall()]
    except UnicodeDecodeError as exc:  # SQLite's error message quotes the damaged bytes
        from db.errors import undecodable_text

        return [undecodable_text(exc) or "unreadable bytes in the file"]
    finally:
        conn.text_factory = saved
    if rows == ["ok"]:
        return []
    lines = [line.strip() for row in rows for line in row.splitlines()]
    return [line for line in lines if line and not line.startswith("***")] or rows


def preflight_sqlite(path: str, *, quick_check_max_bytes: int | None = QUICK_CHECK_ON_OPEN_MAX_BYTES) -> None:
    """Before a SQLite file is opened for real (and possibly written): refuse a damaged file and
    another program's database. Reads only (a read-only connection), so the file is never changed.

    Raises db.errors.DatabaseCorrupt / NotAClarityDatabase, and DatabaseUnreachable for a path that
    is not a regular file (a FIFO would block the open for ever). Anything else (locked, cannot
    open, a folder) is left to the normal open path, which explains it."""
    from db.errors import DatabaseCorrupt, as_problem, corrupt, not_clarity, undecodable_text

    refuse_non_file(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # not there yet: a new database
    if size == 0 or os.path.isdir(path):
        return
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        others = foreign_tables(tables)
        if others:
            raise not_clarity(path, others)
        wal = path + "-wal"
        total = size + (os.path.getsize(wal) if os.path.exists(wal) else 0)
        if tables and (quick_check_max_bytes is None or total <= quick_check_max_bytes):
            problems = quick_check(conn)
            if problems:
                raise corrupt(path, problems[0])
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # UnicodeDecodeError: SQLite quoted damaged bytes
        problem = as_problem(exc, where=path)
        if isinstance(problem, DatabaseCorrupt):
            raise problem from None
        if isinstance(exc, UnicodeDecodeError):
            raise corrupt(path, undecodable_text(exc) or "unreadable bytes in the file") from None
    finally:
        conn.close()
