"""The app's live feeds, mixed into ClarityApp (kept out of app.py, which holds keys, navigation and palette):

- the change feed: another process (a terminal, the CLI, the camera's receiver) committed to the site
  database, so the board and open screens re-read (`db_changed`);
- the devices: opened in a worker once the boot is done, their status changes published
  (`devices_changed`), and the plate reads of a camera that does not record itself;
- in simulator mode, the simulated camera's arrivals;
- the lanes board's read, through the ORM once booted and one plain connection before;
- the garbage collector kept off the board's path: what lives as long as the app is frozen out of its
  view once booted, and it waits while a change is on its way to the screen (`hold_gc`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work

from clarity_tui.messages import DatabaseChanged
from db.changefeed import open_change_feed

if TYPE_CHECKING:
    from textual.app import App
    from textual.signal import Signal

    from clarity_tui.boot import BoardBeforeBoot
    from clarity_tui.bootconfig import BootConfig
    from clarity_tui.devices import DeviceSet
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.board_view import LaneView
    from clarity_tui.simulator.scenario import Scenario
    from clarity_tui.wiring import Services
    from db.changefeed import ChangeFeed
    from hardware.base import Device, DeviceStatus

    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)
FEED_WAIT_SECONDS = 1.0
FEED_RETRY_SECONDS = 1.0


class LiveMixin(_AppBase):
    # Provided by ClarityApp.
    boot_config: BootConfig
    services: Services | None
    scenario: Scenario | None
    devices: DeviceSet | None
    now: Callable[[], dt.datetime]
    db_changed: Signal[None]
    devices_changed: Signal[None]
    booted: Signal[None]
    _feed: ChangeFeed | None
    _board_before_boot: BoardBeforeBoot

    @property
    def actor(self) -> Actor:  # pragma: no cover - ClarityApp's
        raise NotImplementedError

    def _boot_failed(self, exc: Exception) -> None:  # pragma: no cover - ClarityApp's
        raise NotImplementedError

    # --- the change feed --------------------------------------------------------------------------------

    def _start_live(self) -> None:
        # Opened here, on the UI thread: the exit closes it, which ends the watching thread.
        if self._feed is None:
            self._feed = open_change_feed(self.boot_config.database_url)
        self.watch_database()
        if self.services is not None:
            self.call_after_refresh(self._freeze_long_lived)
        else:
            self.booted.subscribe(self, lambda _: self._freeze_long_lived())

    # --- the garbage collector ----------------------------------------------------------------------------

    _gc_holds = 0

    @staticmethod
    def _freeze_long_lived() -> None:
        """Once booted, what lives as long as the app (modules, ORM metadata, settings) is moved out of the
        collector's view: a full collection of the whole heap stalled the UI thread ~100 ms each second."""
        gc.freeze()

    def hold_gc(self) -> None:
        """No collection until `release_gc`: a change is on its way from the database to the screen, and a
        collection in between (tens of ms, on whichever thread allocates) would delay it. Nested holds count."""
        self._gc_holds += 1
        gc.disable()

    def release_gc(self) -> None:
        self._gc_holds = max(0, self._gc_holds - 1)
        if not self._gc_holds:
            gc.enable()  # a collection that fell due runs at the next allocation: after the paint

    @work(thread=True, exclusive=True, group="change-feed", exit_on_error=False)
    def watch_database(self) -> None:
        """Post DatabaseChanged whenever another connection commits; reopen the feed when it drops."""
        feed = self._feed
        assert feed is not None  # opened by _start_live
        # Also ends once the app has stopped running, whatever closed or did not close the feed: a thread
        # left waiting here holds the process open at exit (asyncio joins its executor's threads).
        while not feed.closed and self.is_running:
            try:
                changed = feed.wait(FEED_WAIT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a dropped DB connection must not kill the app
                if feed.closed:
                    return
                log.warning("change feed failed (%s); reopening", exc)
                time.sleep(FEED_RETRY_SECONDS)  # the database is away: do not spin on it
                try:
                    self._feed = feed = open_change_feed(self.boot_config.database_url)
                except Exception:  # noqa: BLE001 - still away: the loop tries again
                    continue
                changed = True
            if changed:
                self.post_message(DatabaseChanged())
        if not self.is_running:
            feed.close()  # this thread's own feed (it may have reopened it after the exit closed the old one)

    def on_database_changed(self, _: DatabaseChanged) -> None:
        self.db_changed.publish(None)

    def read_board(self) -> list[LaneView]:
        """The lanes board from the database (call from a worker thread).

        Before the boot worker has opened the ORM, one plain DB-API connection does it."""
        services = self.services
        if services is not None:
            from clarity_tui.services.sessions import SessionService

            return SessionService.from_services(services).board(self.now())
        try:
            return self._board_before_boot.read(self.now(), None)
        except Exception as exc:
            from db.errors import as_problem

            # The boot starts after the first paint: a damaged file must not leave the PIN pad up for ever.
            if as_problem(exc) is not None:
                self.call_later(self._boot_failed, exc)
            raise

    # --- devices ------------------------------------------------------------------------------------------

    @work(exclusive=True, group="devices", exit_on_error=False)
    async def open_devices(self) -> None:
        """Open (or reopen) every device, then feed plate reads; exclusive, so a reopen replaces the old feed."""
        from clarity_tui.devices import feed_plates, plate_recorder
        from clarity_tui.wiring import services_of

        devices = self.devices
        assert devices is not None  # built by the boot
        errors = await devices.open_all()
        self.devices_changed.publish(None)
        for kind, error in errors.items():
            if error:
                log.warning("%s did not open: %s", kind, error)
        # A tunnel controller that goes down while no car is sent still shows on the board (issue 18).
        self.run_worker(devices.tunnel.watch(), group="tunnel-watch", exclusive=True, exit_on_error=False)
        if errors.get("plate_reader") is None:
            services = services_of(self)
            await feed_plates(devices.plate_reader, plate_recorder(services.db, services.terminal))

    def _device_status_changed(self, device: Device, status: DeviceStatus) -> None:
        # Called from whichever thread changed the status; post_message is thread-safe.
        from clarity_tui.widgets.device_bar import DevicesChanged

        self.post_message(DevicesChanged(device.kind, status.state.value, status.reason))

    def on_devices_changed(self, _: object) -> None:
        self.devices_changed.publish(None)

    # --- the simulator --------------------------------------------------------------------------------------

    @work(exclusive=True, group="simulator", exit_on_error=False)
    async def run_simulator(self) -> None:
        """Cars arrive at the camera; the simulated tunnel moves the cars the attendant (or an auto lane)
        sent, and their sessions close as they leave it (issue 18). The attendant serves the cars."""
        from clarity_tui.services.sessions import SessionService
        from clarity_tui.simulator.headless import build_tunnel
        from clarity_tui.simulator.lane_day import LaneDay, run_lane_day
        from clarity_tui.simulator.world import build_camera, run_camera
        from clarity_tui.wiring import services_of

        scenario, devices = self.scenario, self.devices
        assert scenario is not None and devices is not None
        services = services_of(self)
        camera = build_camera(services.db, scenario)
        day = LaneDay(services, scenario, card_reader=devices.card_reader, tunnel=build_tunnel(devices, scenario),
                      attendant=self.actor, loop=asyncio.get_running_loop())
        stop = asyncio.Event()
        tunnel = asyncio.create_task(run_lane_day(day, stop, serve=False))
        try:
            await run_camera(services.db, camera, services.terminal, scenario.initial_vehicles,
                             dwell=dt.timedelta(minutes=scenario.dwell_minutes),
                             sessions=SessionService.from_services(services))
        finally:
            stop.set()
            await tunnel

    async def _stop_live(self) -> None:
        self._gc_holds = 0
        gc.enable()
        gc.unfreeze()  # the app's objects become collectable again (many apps run in one test process)
        if self._feed is not None:
            self._feed.close()
        if self.devices is not None:
            await self.devices.close_all()
