"""The PostgreSQL server the tests use: its admin URL, a database's URL on it, and admin statements."""

from __future__ import annotations

import os

PG_ADMIN_URL = os.environ.get("CLARITY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_conninfo(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)
