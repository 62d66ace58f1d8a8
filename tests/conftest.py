"""Shared fixtures: real SQLite files and a real PostgreSQL server (never mocked, never skipped).

PostgreSQL: every test gets its own database, cloned from a migrated template
(CREATE DATABASE ... TEMPLATE), so tests are isolated and fast.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from clarity_tui.config import Settings

PG_ADMIN_URL = os.environ.get("CLARITY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_conninfo(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, made once per test run."""
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is required for the test suite and is not reachable at {PG_ADMIN_URL}: {exc}. "
                    "Start it (see README) or set CLARITY_TEST_PG_URL.")
    name = f"clarity_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    from db import migrate
    from db.engine import make_engine

    engine = make_engine(_pg_conninfo(name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema), for migration tests."""
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    yield _pg_conninfo(name)
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_conninfo(name)
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'site.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    """Parametrises a test over SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'site.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(db_url: str) -> Settings:
    # The site's day is UTC's, whatever zone the test machine is in (the fixed test clocks are UTC).
    return Settings(database_url=db_url, terminal_id="lane-1-term", site={"timezone": "UTC"})


@pytest.fixture
def db(settings: Settings):  # noqa: ANN201
    from clarity_tui.services.bootstrap import open_database

    database = open_database(settings)
    yield database
    database.dispose()


@pytest.fixture
def demo_db(db):  # noqa: ANN001, ANN201
    """The database with a small demo site: plans, 40 customers, 20 legacy members, terms, operators."""
    from clarity_tui.services.demo import seed_demo

    seed_demo(db, customers=40, legacy=20)
    return db


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    """Tests never read the developer's own settings or data directory."""
    for key in list(os.environ):
        if key.startswith("CLARITY_") and key != "CLARITY_TEST_PG_URL":
            monkeypatch.delenv(key)
    empty_settings = tmp_path / "settings.toml"
    empty_settings.write_text("# tests: defaults only\n")
    monkeypatch.setenv("CLARITY_CONFIG", str(empty_settings))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))  # the crash log (clarity_tui/crash_log.py)


@pytest.fixture(autouse=True)
def _steady_cursor_in_snapshots(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot shows the focused Input's cursor, whenever it is taken.

    Input blinks its cursor every 0.5 s; on a loaded machine the picture could be taken in the dark half
    of the blink, and the same screen rendered with one colour class fewer.
    """
    if "snap_compare" not in request.fixturenames:
        return
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
