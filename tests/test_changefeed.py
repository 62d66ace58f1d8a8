"""The change feed wakes on commits from other processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import queue
import threading

import pytest
from sqlmodel import func, select

from db.changefeed import open_change_feed
from db.engine import Database
from db.models import VehicleSession
from tests.helpers import forked

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

WRITER = """
import sys
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.engine import Database
from hardware.plate_reader import PlateEvent
db = Database.from_url(sys.argv[1])
SessionService(db).record_plate_read(PlateEvent(plate=sys.argv[2], lane="Lane 1"), Actor.system("writer"))
db.dispose()
"""


def _sessions(db: Database) -> int:
    with db.read() as s:
        return s.exec(select(func.count()).select_from(VehicleSession)).one()


def test_the_feed_wakes_once_per_commit_from_another_process_and_never_early(db: Database) -> None:
    """Each wake is recorded with the sessions committed by then: a wake before the first commit (not quiet
    without writes) or a second wake for one commit (a burst not consumed) records a count already seen."""
    before = _sessions(db)
    feed = open_change_feed(db.url, poll_interval=0.02)
    seen: queue.Queue[int] = queue.Queue()

    def watch() -> None:
        while feed.wait(60.0):
            seen.put(_sessions(db) - before)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for commits, plate in enumerate(("FEED-41", "FEED-42"), start=1):
            forked.run(["-c", WRITER, db.url, plate], check=True, timeout=60)
            assert seen.get(timeout=30) == commits
    finally:
        feed.close()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert seen.empty(), "one commit, one wake"


def test_close_releases_a_waiting_thread(db: Database) -> None:
    feed = open_change_feed(db.url, poll_interval=0.02)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(feed.wait(30.0)))
    waiter.start()
    feed.close()
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "a closed feed must not keep its thread blocked"
    assert results == [False]
