"""One interface for "something changed in the database", whichever process wrote it.

- SQLite: poll `PRAGMA data_version` on a dedicated connection. It changes
  whenever another connection (any process) commits, and costs microseconds,
  so it is polled every 10 ms: the poll's wait is most of a board's latency.
- PostgreSQL: LISTEN clarity_changes; triggers from the migrations NOTIFY on
  every write to the tables the boards show.

`wait(timeout)` blocks (call it from a worker thread) and returns True when a
change arrived. The board then re-reads the database: never a cached copy.
"""

from __future__ import annotations

import abc
import sqlite3
import threading
import time

from db.rawconnect import is_sqlite_url, pg_conninfo, sqlite_file

CHANNEL = "clarity_changes"
# SQLite's poll: a commit waits half of it on average before the board hears of it.
POLL_INTERVAL = 0.01


class ChangeFeed(abc.ABC):
    @abc.abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if the database changed."""

    def close(self) -> None:
        self._closed.set()

    def __init__(self) -> None:
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class SQLiteChangeFeed(ChangeFeed):
    def __init__(self, path: str, poll_interval: float = POLL_INTERVAL) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        # Its own raw connection: data_version only moves for *other* connections' commits.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._last = self._version()

        # Held while a thread polls: closing sqlite3 under a running statement can crash.
        self._in_use = threading.Lock()

    def _version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._in_use:
                if self.closed:
                    return False
                current = self._version()
            if current != self._last:
                self._last = current
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._closed.wait(min(self.poll_interval, remaining))

    def close(self) -> None:
        super().close()
        with self._in_use:
            self._conn.close()


class PostgresChangeFeed(ChangeFeed):
    def __init__(self, conninfo: str) -> None:
        super().__init__()
        import psycopg

        self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
        self._conn.execute(f"LISTEN {CHANNEL}")

    # How long one wait may block: also the longest close() takes to take effect.
    MAX_BLOCK = 0.5

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        changed = False
        while not self.closed and not changed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for _ in self._conn.notifies(timeout=min(remaining, self.MAX_BLOCK), stop_after=1):
                changed = True
        if changed and not self.closed:
            # Drain the rest of a burst so it wakes the board once. One commit's notices arrive together:
            # a short look is enough, and every ms spent here is a ms before the board hears of it.
            for _ in self._conn.notifies(timeout=0.001):
                pass
        if self.closed:
            # Only the thread that waits touches the connection: closing it from
            # another thread would leave this one blocked on a dead socket.
            self._close_connection()
        return changed

    def _close_connection(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing a dead connection is fine
            pass

    def close(self) -> None:
        super().close()
        if not self._waiting_thread_alive():
            self._close_connection()

    def _waiting_thread_alive(self) -> bool:
        # psycopg holds the connection lock while waiting for notifies.
        return self._conn.lock.locked()


def open_change_feed(url: str, poll_interval: float = POLL_INTERVAL) -> ChangeFeed:
    """A feed for the database at `url` (no SQLAlchemy: it runs before the ORM is loaded)."""
    if is_sqlite_url(url):
        path = sqlite_file(url)
        if path is None:
            raise ValueError("the change feed needs a file-backed SQLite database")
        return SQLiteChangeFeed(path, poll_interval)
    return PostgresChangeFeed(pg_conninfo(url))
