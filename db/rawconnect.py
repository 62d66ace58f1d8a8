"""DB-API connections without SQLAlchemy, for the first paint and the change feed.

Importing SQLAlchemy costs more than Textual itself; these two paths only need
one connection and a few plain queries.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import unquote, urlsplit

from db.schema_head import HEAD_REVISION


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


def connect_raw(url: str, *, read_only: bool = False) -> Any:
    if is_sqlite_url(url):
        path = sqlite_file(url)
        if path is None:
            raise ValueError("an in-memory SQLite database cannot be shared")
        if read_only:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
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

        if path is None or not os.path.exists(path):
            return False
    try:
        conn = connect_raw(url, read_only=True)
    except Exception:  # noqa: BLE001 - any problem: let the full path explain it
        return False
    try:
        cur = conn.cursor()
        cur.execute("SELECT version_num FROM alembic_version")
        row = cur.fetchone()
        return row is not None and row[0] == HEAD_REVISION
    except Exception:  # noqa: BLE001
        return False
    finally:
        conn.close()
