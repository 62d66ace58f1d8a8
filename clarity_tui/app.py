"""The Clarity App: builds nothing itself; settings and database are injected."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path
from collections.abc import Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.events import Resize
from textual.geometry import Size
from textual.screen import Screen
from textual.signal import Signal

from clarity_tui.config import Settings
from clarity_tui.messages import DatabaseChanged
from clarity_tui.screens.board import BoardScreen
from clarity_tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from clarity_tui.services.actor import Actor
from clarity_tui.simulator.scenario import Scenario
from db.changefeed import ChangeFeed, open_change_feed
from db.engine import Database

log = logging.getLogger(__name__)
_PROCESS_START = time.perf_counter()


class ClarityApp(App[None]):
    # Absolute, so subclasses elsewhere (tests, bench) find the stylesheet too.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "Clarity"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Leave Clarity"),
        Binding("f10", "command_palette", "Menu", id="app.menu", tooltip="Open the command palette"),
        Binding("f9", "hardware", "Hardware", id="app.hardware", tooltip="Devices: status and tests"),
        Binding("f7,ctrl+f", "search_customers", "Search", id="app.search_customers", tooltip="Search customers"),
    ]

    def __init__(
        self,
        settings: Settings,
        db: Database,
        scenario: Scenario | None = None,
        actor: Actor | None = None,
        change_feed: ChangeFeed | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        # Injected so wait times and snapshots can run on a fixed clock.
        self.now: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self.settings = settings
        self.db = db
        self.scenario = scenario
        self.actor = actor or Actor(name="attendant", terminal=settings.terminal_id)
        self._feed = change_feed
        self.db_changed: Signal[None] = Signal(self, "db-changed")
        # Devices are built here (no I/O) and opened in a worker at mount; see clarity_tui/devices.py.
        from clarity_tui.devices import build_devices

        self.devices = build_devices(settings, scenario, db=db)
        self.devices_changed: Signal[None] = Signal(self, "devices-changed")
        self.animation_level = "full" if settings.ui.animations else "none"
        self._started = _PROCESS_START

    @property
    def holder_label(self) -> str:
        return f"{self.actor.name} @ {self.settings.terminal_id}"

    def get_default_screen(self) -> Screen:
        return BoardScreen()

    @staticmethod
    def sixteen_colour_terminal() -> bool:
        return os.environ.get("TEXTUAL_COLOR_SYSTEM") in {"standard", "windows"} or os.environ.get("TERM") == "linux"

    def on_mount(self) -> None:
        if os.environ.get("TERM") == "linux":
            # The Linux console's font lacks rounded box glyphs.
            self.add_class("-ascii")
        if self.sixteen_colour_terminal():
            # Use the terminal's own 16 colours rather than approximating truecolor ones.
            self.theme = "ansi-dark"
        if self._feed is None:
            self._feed = open_change_feed(self.db.engine, self.settings.ui.poll_interval)
        self.watch_database()
        self.open_devices()
        if self.scenario is not None:
            self.run_simulator()
        self._check_size()

    def on_ready(self) -> None:
        log.info("start-up to ready: %.3f s", time.perf_counter() - self._started)

    async def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.close()
        await self.devices.close_all()

    # --- devices -----------------------------------------------------------------------

    @work(exclusive=True, group="devices", exit_on_error=False)
    async def open_devices(self) -> None:
        from clarity_tui.devices import feed_plates, plate_recorder
        from clarity_tui.widgets.device_bar import DevicesChanged

        self.devices.add_status_listener(
            lambda device, status: self.post_message(DevicesChanged(device.kind, status.state.value, status.reason))
        )
        errors = await self.devices.open_all()
        self.devices_changed.publish(None)
        for kind, error in errors.items():
            if error:
                log.warning("%s did not open: %s", kind, error)
        if errors.get("plate_reader") is None:
            await feed_plates(self.devices.plate_reader, plate_recorder(self.db, self.settings.terminal_id))

    def on_devices_changed(self, _: object) -> None:
        self.devices_changed.publish(None)

    def action_search_customers(self) -> None:
        from clarity_tui.screens.customer_search import CustomerSearchScreen

        if isinstance(self.screen, CustomerSearchScreen):
            self.screen.query_one("#search-box").focus()
        else:
            self.push_screen(CustomerSearchScreen())

    def action_hardware(self) -> None:
        from clarity_tui.screens.hardware import HardwareScreen

        if not isinstance(self.screen, HardwareScreen):
            self.push_screen(HardwareScreen())

    # --- live updates ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="change-feed", exit_on_error=False)
    def watch_database(self) -> None:
        feed = self._feed
        assert feed is not None
        while not feed.closed:
            try:
                changed = feed.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - a dropped DB connection must not kill the app
                if feed.closed:
                    return
                log.warning("change feed failed (%s); reopening", exc)
                time.sleep(1.0)
                try:
                    self._feed = feed = open_change_feed(self.db.engine, self.settings.ui.poll_interval)
                except Exception:  # noqa: BLE001
                    continue
                changed = True
            if changed:
                self.post_message(DatabaseChanged())

    def on_database_changed(self, _: DatabaseChanged) -> None:
        self.db_changed.publish(None)

    @work(exclusive=True, group="simulator", exit_on_error=False)
    async def run_simulator(self) -> None:
        from clarity_tui.simulator.world import build_camera, run_camera

        assert self.scenario is not None
        camera = build_camera(self.db, self.scenario)
        await run_camera(self.db, camera, self.settings.terminal_id, self.scenario.initial_vehicles)

    # --- terminal size ------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        # Runs before App._on_resize updates self.size: use the event's size.
        self._check_size(event.size)

    def _check_size(self, size: Size | None = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen())
        elif not small and showing:
            self.pop_screen()

    # --- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Lanes board: refresh", "Re-read every lane from the database", self._refresh_board)
        yield SystemCommand("Hardware: devices and tests", "Status of the card reader, signature pad and plate camera; test each (F9)", self.action_hardware)
        yield SystemCommand("Customers: search", "Find a customer by name, phone, email, number or plate (F7)", self.action_search_customers)

    def _refresh_board(self) -> None:
        self.db_changed.publish(None)
