"""Shared fixtures: real SQLite files and a real PostgreSQL server (never mocked, never skipped).

Which database a test runs on (one place: `pytest_generate_tests` below):
- Every test that uses `db_url` (directly or through `settings`, `db`, `demo_db`) runs on SQLite.
- It runs on PostgreSQL as well only where the database matters: search, the change feed, concurrency and
  races between processes, schema migrations, money races (outbox, exactly-once), billing sync and its
  leader, reports, the look-alike plate index, PIN lockout races, and SQL that differs between the two
  (dates, locking, ILIKE, partial indexes). Such a module says so with
  `pytestmark = pytest.mark.both_databases` (or a single test with `@pytest.mark.both_databases`).
- `pytest --both-databases` runs every database test on both, as the suite did before (a nightly check), but
  for the tests that choose their databases themselves.
- A test that parametrises `db_url` itself (`@pytest.mark.parametrize("db_url", [...], indirect=True)`) keeps
  its own choice.

Templates, made once per test process (per xdist worker) and copied for each test:
- SQLite: a migrated file and a demo-seeded one; `db` copies the right one into the test's own path
  (SQLite's backup API), so a test never runs the migrations or the demo seed itself.
- PostgreSQL: a migrated template database and a demo-seeded one; each test gets its own database
  (CREATE DATABASE ... TEMPLATE), dropped in the background after the test (`_Dropper`: a DROP DATABASE
  waits for a checkpoint, so drops go in batches that share one).
The demo template is made by the same `seed_demo(db, customers=40, legacy=20)` a test would run, with the
same fixed random seed, on the same day (its dates come from today); only the PIN hashes' random salts and
the rows' creation times differ, as they did between two runs before. `demo_db` still calls `seed_demo`
(a no-op on the seeded copy), so a test that brings its own database gets the same demo site.

Order: the slowest tests (SLOW_FIRST) are collected first, so pytest-xdist (`--dist load`, small chunks:
pyproject.toml) starts them first and the run does not end waiting on one long test.
"""

from __future__ import annotations

import atexit
import os
import queue
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from clarity_tui.config import Settings, SiteConfig
from db.engine import Database
from tests.helpers.gc_tuning import collect_then_freeze
from tests.helpers.gc_tuning import tune as tune_gc
from tests.helpers.pg import PG_ADMIN_URL, admin_execute, pg_conninfo

# Fixtures several test directories use (the demo site with cars in the lanes; a twin database).
pytest_plugins = ["tests.helpers.fixtures_lanes", "tests.helpers.fixtures_twin"]


# The demo site every `demo_db` test starts from.
DEMO_CUSTOMERS, DEMO_LEGACY = 40, 20

# The tests that take longest (a run with --junitxml, 2026-11-30, after the fork server), slowest first: test ids or their prefixes (a file, a
# test with all its parameters). xdist hands tests out in collection order, so these start first.
SLOW_FIRST: tuple[str, ...] = (
    "tests/site/test_readme_commands.py",
    "tests/site/test_boot_race.py",
    "tests/billing/test_adversarial_lifecycle.py::test_sigkill_at_every_step",
    "tests/test_bench_smoke.py::test_money_race_smoke",
    "tests/site/test_load_smoke.py",
    "tests/billing/test_event_window.py",
    "tests/test_bench_smoke.py",
    "tests/hardware/test_plate_webhook_fuzz.py::test_fuzz_random_bodies_headers_and_slow_clients",
    "tests/sale/test_typeahead_sale.py",
    "tests/site/test_typeahead.py",
    "tests/migration/test_flow_ui.py",
    "tests/site/test_words_and_keys.py",
    "tests/billing/test_billing_cli.py",
    "tests/migration/test_contact_duplicates.py",
    "tests/sale/test_flow_ui.py",
    "tests/billing/test_adversarial_lifecycle.py",
    "tests/hardware/test_hardware_screen.py",
    "tests/site/test_signin.py",
    "tests/site/test_operators_screen.py",
    "tests/payments/test_family_billing.py",
    "tests/sale/test_snapshots.py",
    "tests/customers/test_record_ui.py",
)


def _test_settings(url: str) -> Settings:
    # The site's day is UTC's, whatever zone the test machine is in (the fixed test clocks are UTC).
    return Settings(database_url=url, terminal_id="lane-1-term", site=SiteConfig(timezone="UTC"))


# --- the test process ----------------------------------------------------------------------------------


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Registered before the plugins' and the tests' own exit handlers, so it runs after all of them: a worker
    # then ends without tearing its heap down object by object, which held the run's end 4 s (the controller
    # waits for every worker's process). Results and reports are sent before; nothing of a test runs here.
    atexit.register(lambda: (sys.stdout.flush(), sys.stderr.flush(), os._exit(0)))


@pytest.hookimpl(trylast=True)  # after the plugins' own: its cleanup then runs before theirs (see below)
def pytest_configure(config: pytest.Config) -> None:
    tune_gc()  # tests/helpers/gc_tuning.py says why
    # At the end pytest's unraisable-exception plugin collects five times over (so that finalizers' errors are
    # reported); over a worker's whole heap that held the run's end 7 s. This cleanup runs before it: one full
    # collection (finalizers run, and their errors still reach the plugin), then what survived is frozen, so
    # the plugin's five passes only look at what those finalizers made.
    config.add_cleanup(collect_then_freeze)


# --- which database ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--both-databases", action="store_true",
                     help="run every database test on SQLite and PostgreSQL (default: PostgreSQL only where "
                          "a module or test is marked both_databases)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_url" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "db_url" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test chose its database itself
    backends = [pytest.param("sqlite", id="sqlite")]
    if metafunc.config.getoption("--both-databases") or metafunc.definition.get_closest_marker("both_databases"):
        backends.append(pytest.param("postgres", id="postgres", marks=pytest.mark.postgres))
    metafunc.parametrize("db_url", backends, indirect=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The test modules and all they import are loaded now: freeze them, so that the collections the tests
    # cause walk only what the tests make.
    collect_then_freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first (SLOW_FIRST, in its order; stable: the rest keep theirs)."""

    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)


# --- PostgreSQL ----------------------------------------------------------------------------------------


class _Dropper:
    """Drops the tests' PostgreSQL databases on a background thread: a test does not wait for the server.

    A DROP DATABASE waits for a checkpoint (seconds on a busy machine), and drops waiting at the same time
    share one: so the names queue up while a batch is dropped, and the next batch goes at once, several
    connections side by side. The session waits for the last drop."""

    CONNECTIONS = 8

    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def drop(self, name: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
            self._thread.start()
        self._queue.put(name)

    def _run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.CONNECTIONS) as pool:
            while True:
                batch = [self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                list(pool.map(self._drop_one, [name for name in batch if name is not None]))
                if None in batch:
                    return

    @staticmethod
    def _drop_one(name: str) -> None:
        import psycopg

        try:
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass  # a leftover test database must not fail another test

    def finish(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=300)
            self._thread = None


_dropper = _Dropper()


def _pg_clone(template: str) -> str:
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, made once per test process."""
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is required for the test suite and is not reachable at {PG_ADMIN_URL}: {exc}. "
                    "Start it (see README) or set CLARITY_TEST_PG_URL.")
    name = f"clarity_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    from db import migrate
    from db.engine import make_engine

    engine = make_engine(pg_conninfo(name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    _dropper.finish()
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_demo_template(pg_template: str) -> Iterator[str]:
    """The migrated template with the demo site seeded, made once per test process."""
    name = _pg_clone(pg_template)
    _seed_demo_site(pg_conninfo(name))
    yield name
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def drop_pg_database() -> Iterator[Callable[[str], None]]:
    """Drops a test's PostgreSQL database by name in the background; the session waits for the drops."""
    yield _dropper.drop
    _dropper.finish()


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema), for migration tests."""
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    yield pg_conninfo(name)
    _dropper.drop(name)


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    name = _pg_clone(pg_template)
    yield pg_conninfo(name)
    _dropper.drop(name)


@pytest.fixture
def pg_demo_url(pg_demo_template: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own with the demo site seeded."""
    name = _pg_clone(pg_demo_template)
    yield pg_conninfo(name)
    _dropper.drop(name)


# --- SQLite ----------------------------------------------------------------------------------------------


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a closed SQLite file (the backup API: no half-checkpointed WAL)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file (no site, no data), made once per test process."""
    from clarity_tui.services.bootstrap import open_database

    path = tmp_path_factory.mktemp("sqlite-template") / "migrated.db"
    open_database(_test_settings(f"sqlite:///{path}"), ensure_site=False).dispose()
    return path


@pytest.fixture(scope="session")
def sqlite_demo_template(sqlite_template: Path) -> Path:
    """The migrated SQLite file with the demo site seeded, made once per test process."""
    path = sqlite_template.with_name("demo.db")
    _copy_sqlite(sqlite_template, path)
    _seed_demo_site(f"sqlite:///{path}")
    return path


def _seed_demo_site(url: str) -> None:
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo

    database = open_database(_test_settings(url), ensure_site=False)
    try:
        seed_demo(database, customers=DEMO_CUSTOMERS, legacy=DEMO_LEGACY)
    finally:
        database.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'site.db'}"


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """`sqlite_url` with the migrated schema already there (a copy of the template)."""
    from db.engine import sqlite_path

    path = sqlite_path(sqlite_url)
    assert path is not None
    _copy_sqlite(sqlite_template, path)
    return sqlite_url


# --- the database a test uses ----------------------------------------------------------------------------


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database URL: SQLite, or PostgreSQL too where marked (see the module docstring)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'site.db'}"
    return request.getfixturevalue("pg_demo_url" if "demo_db" in request.fixturenames else "pg_url")


@pytest.fixture
def settings(db_url: str) -> Settings:
    return _test_settings(db_url)


@pytest.fixture
def db(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Database]:
    from clarity_tui.services.bootstrap import open_database
    from db.engine import sqlite_path

    path = sqlite_path(settings.resolved_database_url())
    if path is not None and not path.exists():
        # The migrations (and the demo seed) ran once, on the template: this test gets a copy.
        template = "sqlite_demo_template" if "demo_db" in request.fixturenames else "sqlite_template"
        _copy_sqlite(request.getfixturevalue(template), path)
    database = open_database(settings)
    yield database
    database.dispose()


@pytest.fixture
def demo_db(db: Database) -> Database:
    """The database with a small demo site: plans, 40 customers, 20 legacy members, terms, operators.

    `db` starts from the seeded template; `seed_demo` then finds the site there and adds nothing."""
    from clarity_tui.seeding.demo import seed_demo

    seed_demo(db, customers=DEMO_CUSTOMERS, legacy=DEMO_LEGACY)
    return db


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
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
