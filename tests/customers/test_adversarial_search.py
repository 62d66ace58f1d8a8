"""Adversarial checks of customer search on the driver's own cursor (commit 3fd8014): searches overlapping
with failing writes on one engine, the server killing a backend mid-search, hostile search terms, and the
search screen typed fast (SQLite and PostgreSQL where the database matters)."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, text
from sqlmodel import select

from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.search import SearchService
from db.engine import Database
from db.models import Customer
from tests.helpers.actors import ATTENDANT, MANAGER
from tests.helpers.customers import Tricky
from tests.helpers.pg import admin_execute
from tests.helpers.ui import make_app, wait_until

PHANTOM = "Phantom"  # the last name of rows written by transactions that then fail


def _write_then_fail(db: Database, n: int) -> None:
    """A write transaction that fails after its INSERT reached the database: nothing of it may stay."""
    with pytest.raises(RuntimeError), db.write() as s:
        s.add(Customer(customer_number=f"C9{n:05d}", first_name="Rolled", last_name=PHANTOM, search_last="phantom",
                       search_first="rolled"))
        s.flush()
        raise RuntimeError("after the insert")


def _phantoms(db: Database) -> int:
    with db.read() as s:
        return s.exec(select(func.count()).select_from(Customer).where(Customer.last_name == PHANTOM)).one()


def _names(db: Database, term: str) -> list[str]:
    return [hit.name for hit in SearchService(db).search(term).hits]


def _assert_pool_transactional(db: Database) -> None:
    """Every connection the pool hands out now is out of autocommit (PostgreSQL) and idle."""
    if db.is_sqlite:
        return
    held = [db.engine.raw_connection() for _ in range(db.engine.pool.size())]  # type: ignore[attr-defined]
    try:
        for raw in held:
            conn = raw.driver_connection
            assert conn is not None and conn.autocommit is False
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        for raw in held:
            raw.close()


@pytest.mark.both_databases
def test_overlapping_searches_and_failing_writes_never_share_autocommit(demo_db: Database, tricky: Tricky) -> None:
    rng = random.Random(17)
    terms = ["o'brien", "zoë", "nunez", "+44 20 7946 0958", "AB12 CDE", "c1000", "phantom", "s", "zzzz-none"]
    tasks: list[tuple[str, int]] = [("write", n) if n % 3 == 0 else ("search", n) for n in range(150)]
    rng.shuffle(tasks)
    start = threading.Barrier(6)

    def run(task: tuple[str, int]) -> None:
        kind, n = task
        if n < 6:
            start.wait(timeout=60)  # the first six start together: the pool is busy from the start
        if kind == "write":
            _write_then_fail(demo_db, n)
        else:
            SearchService(demo_db).search(terms[n % len(terms)])

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(run, sorted(tasks, key=lambda t: t[1] >= 6)))
    assert _phantoms(demo_db) == 0  # every failed write rolled back: none ran on an autocommit connection
    assert _names(demo_db, "phantom") == []
    assert "Seán O'Brien" in _names(demo_db, "o'brien")
    _assert_pool_transactional(demo_db)


def _backend_waiting_on_a_lock(admin: psycopg.Connection, dbname: str) -> int | None:
    row = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
                        "AND query LIKE %s", (dbname, "%UNION ALL%")).fetchone()
    return None if row is None else int(row[0])


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_server_killing_the_backend_mid_search_then_the_next_search_works(
        demo_db: Database, tricky: Tricky) -> None:
    dbname = demo_db.engine.url.database
    assert dbname
    admin_url = demo_db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    outcome: list[BaseException | list[str]] = []
    with psycopg.connect(admin_url) as locker, psycopg.connect(admin_url, autocommit=True) as admin:
        locker.execute("LOCK TABLE customer IN ACCESS EXCLUSIVE MODE")  # the next search's SELECT waits

        def search() -> None:
            try:
                outcome.append(_names(demo_db, "o'brien"))
            except BaseException as exc:  # noqa: BLE001 - what the search raised is the result
                outcome.append(exc)

        searcher = threading.Thread(target=search)
        searcher.start()
        pid = None
        for _ in range(6000):  # the search's backend shows as waiting once its statement reached the server
            pid = _backend_waiting_on_a_lock(admin, dbname)
            if pid is not None or not searcher.is_alive():
                break
            admin.execute("SELECT pg_sleep(0.01)")
        assert pid is not None, outcome
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        searcher.join(timeout=60)
        locker.rollback()
    (failed,) = outcome
    assert isinstance(failed, psycopg.OperationalError), failed  # the killed search fails (nothing to retry)
    assert "Seán O'Brien" in _names(demo_db, "o'brien")  # the next one runs, on a new connection
    _write_then_fail(demo_db, 1)
    assert _phantoms(demo_db) == 0
    _assert_pool_transactional(demo_db)
    # And every backend of the pool killed while idle (a server restart): the next search still works.
    admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'")
    assert "Seán O'Brien" in _names(demo_db, "o'brien")
    _write_then_fail(demo_db, 2)
    assert _phantoms(demo_db) == 0


@pytest.mark.both_databases
def test_hostile_terms_are_data_never_patterns_or_sql(demo_db: Database, tricky: Tricky) -> None:
    svc = CustomerService(demo_db, phone_region="US")
    for first, last in (("Lucía", "García"), ("Ann", "O'Neil\\Back"), ("Emo", "Ji 😀"), ("Per", "Cent%Under_")):
        svc.create_customer(MANAGER, ContactForm(first_name=first, last_name=last))
    found = {
        "o'brien": "Seán O'Brien", "Zoë": "Zoë Quixote-Laurent", "zoe": "Zoë Quixote-Laurent",
        "García": "Lucía García", "garcia": "Lucía García", "ÑÚÑEZ": "José Ñúñez", "lucía garcía": "Lucía García",
        "o'neil": "Ann O'Neil\\Back", "ji 😀": "Emo Ji 😀", "cent%": "Per Cent%Under_",
    }
    for term, name in found.items():
        assert name in _names(demo_db, term), term
    # LIKE's wildcards and escapes are plain characters (a pattern would find everyone), and so is SQL.
    for term in ["%", "_", "%%", "\\", "\\%", "'", "''", "?", "$1", "😀", "\t", "x" * 10_000, "%_%"]:
        assert _names(demo_db, term) == [], term
    for term in ["'; DROP TABLE customer; --", "' OR '1'='1", "%s", ":term", "ab " * 2_000, "ＡＢ１２", "s%", "s_"]:
        SearchService(demo_db).search(term)  # runs; what it finds is the letters it spells
    assert _names(demo_db, "s%") == _names(demo_db, "s") == _names(demo_db, "s_")
    with demo_db.read() as s:
        assert s.exec(text("SELECT count(*) FROM customer")).one()[0] > 40  # type: ignore[call-overload]
    _assert_pool_transactional(demo_db)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_nul_byte_in_a_term_is_searched_on_sqlite(demo_db: Database) -> None:
    assert SearchService(demo_db).search("a\x00b").hits == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_nul_byte_in_a_term_is_searched_on_postgres(demo_db: Database) -> None:
    assert SearchService(demo_db).search("a\x00b").hits == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the bug is before any SQL: one database is enough
@pytest.mark.parametrize("term", [
    pytest.param("abc\U0010ffff", id="last-code-point"),  # upper_bound: chr(0x110000) is a ValueError
    pytest.param("abc\ud7ff", id="before-surrogates"),  # upper_bound: U+D800 is a lone surrogate, not UTF-8
])
def test_terms_ending_at_the_edges_of_unicode(demo_db: Database, term: str) -> None:
    assert SearchService(demo_db).search(term).hits == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_term_in_another_encoding_on_the_command_line_is_not_a_traceback(demo_db: Database, db_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "clarity_tui", "--db", db_url, "customers", "search", b"Zo\xeb"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[2])
    assert "Traceback" not in done.stderr and done.returncode in (0, 2), done.stderr[-1500:]


@pytest.mark.both_databases
async def test_the_search_screen_typed_fast_with_searches_overlapping(
        demo_db: Database, tricky: Tricky, settings) -> None:
    from textual.widgets import Input

    from clarity_tui.screens.customer_search import CustomerSearchScreen

    app = make_app(settings, demo_db, fixed_clock=True, actor=ATTENDANT)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(CustomerSearchScreen())
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerSearchScreen), "the search screen")
        screen = app.screen
        assert isinstance(screen, CustomerSearchScreen)
        # Every prefix as its own search, all started at once (a fast typist with no debounce): their
        # threads overlap on the pool; the exclusive worker keeps only the newest.
        for prefix in ["s", "se", "sea", "sean", "sean ", "sean o", "sean o'", "sean o'b", "z", "zo", "zoë"]:
            screen.run_search(prefix)
        await pilot.press(*"zoë")
        await wait_until(pilot, lambda: screen.result is not None and screen.result.term == "zoë", "zoë's results")
        assert screen.query_one("#search-box", Input).value == "zoë"
        assert "Zoë Quixote-Laurent" in [h.name for h in screen.result.hits]
        await pilot.press(*["backspace"] * 3, *"o'brien")
        await wait_until(pilot, lambda: screen.result is not None and screen.result.term == "o'brien", "o'brien")
        assert "Seán O'Brien" in [h.name for h in screen.result.hits]
        assert "failed" not in str(screen.query_one("#search-status").render())
        await wait_until(pilot, lambda: not [w for w in app.workers if w.group == "customer-search" and w.is_running],
                         "every search thread ended")
    _write_then_fail(demo_db, 3)
    assert _phantoms(demo_db) == 0
    _assert_pool_transactional(demo_db)
