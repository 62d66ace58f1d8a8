"""What a customer search sends, on a database opened anew as `customers search` opens it (SQLite and
PostgreSQL): two statements and no transaction control, and the pooled connection goes back as it came,
even when a statement fails."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from clarity_tui.config import Settings
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.search import SearchService
from clarity_tui.services.search_sql import SearchSql
from db.engine import Database
from db.models import Customer, Vehicle
from tests.helpers.actors import MANAGER
from tests.helpers.customers import Tricky

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


def _sent_to_postgres(trace: str) -> list[str]:
    """The statements in a libpq trace: the SQL of each Parse (extended protocol) or Query (simple)."""
    out = []
    for line in trace.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] == "F" and parts[2] in ("Parse", "Query"):
            text = parts[3].strip()
            out.append(text[4:] if text.startswith('"" "') else text.strip('"'))
    return out


@contextmanager
def statements_sent(db: Database) -> Iterator[list[str]]:
    """Every statement the driver sends on connections checked out meanwhile (after the pool's ping)."""
    sent: list[str] = []
    traced: list[tuple[Any, int]] = []

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if db.is_sqlite:
            dbapi_conn.set_trace_callback(sent.append)
            traced.append((dbapi_conn, -1))
            return
        from psycopg import pq

        fd, path = tempfile.mkstemp()
        os.unlink(path)
        dbapi_conn.pgconn.trace(fd)
        dbapi_conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traced.append((dbapi_conn, fd))

    event.listen(db.engine, "checkout", checkout)
    try:
        yield sent
    finally:
        event.remove(db.engine, "checkout", checkout)
        for conn, fd in traced:
            if fd < 0:
                conn.set_trace_callback(None)
                continue
            conn.pgconn.untrace()  # flushes the trace
            sent.extend(_sent_to_postgres(os.pread(fd, os.fstat(fd).st_size, 0).decode()))
            os.close(fd)


@pytest.fixture
def reopened(demo_db: Database, tricky: Tricky) -> Iterator[Database]:
    """The demo database opened anew, as each `customers search` run opens it."""
    fresh = open_database(Settings(database_url=demo_db.url, terminal_id="t"))
    try:
        yield fresh
    finally:
        fresh.dispose()


def test_a_search_is_two_statements_without_transaction_control(reopened: Database) -> None:
    for term in ["o'brien", "+44 20 7946 0958", "AB12 CDE", "sean obrien", "c100000"]:
        with statements_sent(reopened) as sent:
            hits = SearchService(reopened).search(term).hits
        assert hits, term
        assert len(sent) == 2, (term, sent)
        assert all(s.lstrip().upper().startswith("SELECT") for s in sent), (term, sent)
    with statements_sent(reopened) as sent:
        assert SearchService(reopened).search("zzzz-no-such-customer").hits == []
    assert len(sent) == 1  # no customer to read


def _write_then_fail(db: Database) -> None:
    """A write transaction that fails after its INSERT reached the database."""
    with pytest.raises(RuntimeError), db.write() as s:
        s.add(Customer(customer_number="C999999", first_name="Rolled", last_name="Back", search_last="back",
                       search_first="rolled"))
        s.flush()
        raise RuntimeError("after the insert")


def test_the_connection_goes_back_to_the_pool_transactional(reopened: Database) -> None:
    """The search switches PostgreSQL's connection to autocommit: a later write must still roll back."""
    assert SearchService(reopened).search("o'brien").hits
    _write_then_fail(reopened)
    assert not [h for h in SearchService(reopened).search("back").hits if h.customer_number == "C999999"]


def test_a_failed_statement_leaves_the_connection_usable_and_transactional(
        reopened: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_self: SearchSql, _ids: list[int]) -> str:
        return "SELECT no_such_column FROM customer"

    monkeypatch.setattr(SearchSql, "customers", broken)
    with pytest.raises(Exception, match="no_such_column"):
        SearchService(reopened).search("o'brien")
    monkeypatch.undo()
    _write_then_fail(reopened)
    assert "Seán O'Brien" in [h.name for h in SearchService(reopened).search("o'brien").hits]
    assert not [h for h in SearchService(reopened).search("back").hits if h.customer_number == "C999999"]


def test_plates_come_in_the_order_they_were_added(demo_db: Database) -> None:
    svc = CustomerService(demo_db, phone_region="US")
    owner = svc.create_customer(MANAGER, ContactForm(first_name="Plato", last_name="Quinlan-Zed"))
    walker = svc.create_customer(MANAGER, ContactForm(first_name="Walker", last_name="Quinlan-Zee"))
    for plate in ["ZZZ 999", "AAA 111", "MMM 555"]:
        with demo_db.write() as s:
            s.add(Vehicle(customer_id=owner.id, plate=plate, plate_region="XX", plate_normalized=plate.replace(" ", "")))
    hits = {h.customer_id: h for h in SearchService(demo_db).search("quinlan").hits}
    assert hits[owner.id].plates == ("ZZZ 999", "AAA 111", "MMM 555")
    assert hits[walker.id].plates == ()
