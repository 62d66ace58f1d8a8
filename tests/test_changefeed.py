"""The change feed wakes on commits from other processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from db.changefeed import open_change_feed

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

WRITER = """
import sys
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.engine import Database
from hardware.plate_reader import PlateEvent
db = Database.from_url(sys.argv[1])
SessionService(db).record_plate_read(PlateEvent(plate="FEED-42", lane="Lane 1"), Actor.system("writer"))
db.dispose()
"""


def test_feed_is_quiet_without_writes_and_wakes_on_another_process_commit(db) -> None:  # noqa: ANN001
    feed = open_change_feed(db.url, poll_interval=0.02)
    try:
        assert feed.wait(0.3) is False
        subprocess.run([sys.executable, "-c", WRITER, db.url], check=True, timeout=60)
        assert feed.wait(10.0) is True
        # The burst was consumed: quiet again.
        assert feed.wait(0.3) is False
    finally:
        feed.close()


def test_close_releases_a_waiting_thread(db) -> None:  # noqa: ANN001
    feed = open_change_feed(db.url, poll_interval=0.02)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(feed.wait(30.0)))
    waiter.start()
    feed.close()
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "a closed feed must not keep its thread blocked"
    assert results == [False]
