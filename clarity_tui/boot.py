"""The boot: from a BootConfig (the CLI's few settings) to a running terminal's parts.

A lane terminal paints its board as fast as a bare Textual app (see bootconfig.py). Everything the
first paint does not need happens here, in one plain function the app runs in a thread worker after
that paint (`boot`): load the Settings, open the database (schema check, the site's lanes), seed the
demo in simulator mode, build the devices (no I/O), and import the modules the background workers
import at once. Tests that inject settings and a database skip the loading: `Booted.of` builds the
devices only. Either way the app adopts one `Booted`.

Until then the board is read through one plain DB-API connection (`BoardBeforeBoot`).
No Textual here.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clarity_tui.bootconfig import BootConfig
from clarity_tui.db_stack import import_database_stack, import_worker_stack
from clarity_tui.errors import UserFacingError

if TYPE_CHECKING:
    from clarity_tui.config import Settings
    from clarity_tui.devices import DeviceSet
    from clarity_tui.services.board_view import LaneView
    from clarity_tui.services.entitlement import EntitlementPolicy
    from clarity_tui.simulator.scenario import Scenario
    from db.engine import Database


class BootFailed(UserFacingError):
    """The boot did not finish (its one-line reason); the app exits with it."""


@dataclass(frozen=True)
class Booted:
    """What the boot produced: the full settings, the open database, the scenario and the devices."""

    settings: Settings
    db: Database
    scenario: Scenario | None
    devices: DeviceSet

    @classmethod
    def of(cls, settings: Settings, db: Database, scenario: Scenario | None) -> Booted:
        """Settings and database in hand (injected, or just loaded): build the devices (no I/O)."""
        from clarity_tui.devices import build_devices

        return cls(settings, db, scenario, build_devices(settings, scenario, db=db))


def boot(config: BootConfig, scenario: Scenario | None = None) -> Booted:
    """Load, open, seed and build everything the first paint did not need. Blocking: run it in a thread.

    Raises whatever the loading raises (db.errors.as_problem turns database failures into one line)."""
    import_database_stack()  # first, on this thread alone: the PIN pad's workers wait for it
    from clarity_tui.config import load_settings
    from clarity_tui.services.bootstrap import open_database

    # The boot config's terminal wins: `clarity-tui support` sets it to the SSH client's address.
    settings = load_settings(config.config_file, database_url=config.database_url, simulate=config.simulate or None,
                             terminal_id=config.terminal_id)
    db = open_database(settings)
    if settings.simulate:
        from clarity_tui.seeding.demo import seed_demo
        from clarity_tui.simulator.scenario import Scenario

        seed_demo(db, gateway=settings.payments.gateway == "simulated")
        scenario = scenario or Scenario.demo()
    booted = Booted.of(settings, db, scenario)
    import_worker_stack()  # before the outbox and billing workers start, which import it at once
    return booted


def config_of(settings: Settings) -> BootConfig:
    """The BootConfig of settings already loaded (tests, the bench): the same values the CLI resolves."""
    return BootConfig(settings.resolved_database_url(), settings.terminal_id, settings.simulate,
                      settings.ui.show_clock, None)


class BoardBeforeBoot:
    """The lanes board from one plain DB-API connection, for the paints before the ORM is loaded.

    Thread-safe (board workers may overlap); `close` once the boot is done."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: Any = None
        self._lock = threading.Lock()

    def read(self, now: dt.datetime, policy: EntitlementPolicy | None) -> list[LaneView]:
        from clarity_tui.services.board_view import read_board
        from db.rawconnect import connect_raw, is_sqlite_url

        with self._lock:
            if self._conn is None:
                self._conn = connect_raw(self.database_url)
            return read_board(self._conn, is_sqlite_url(self.database_url), now, policy)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
