"""The Clarity App: builds nothing itself; settings and database are injected."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
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
    CSS_PATH = "app.tcss"
    TITLE = "Clarity"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Leave Clarity"),
        Binding("f10", "command_palette", "Menu", id="app.menu", tooltip="Open the command palette"),
    ]

    def __init__(
        self,
        settings: Settings,
        db: Database,
        scenario: Scenario | None = None,
        actor: Actor | None = None,
        change_feed: ChangeFeed | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.db = db
        self.scenario = scenario
        self.actor = actor or Actor(name="attendant", terminal=settings.terminal_id)
        self._feed = change_feed
        self.db_changed: Signal[None] = Signal(self, "db-changed")
        self.animation_level = "full" if settings.ui.animations else "none"
        self._started = _PROCESS_START

    @property
    def holder_label(self) -> str:
        return f"{self.actor.name} @ {self.settings.terminal_id}"

    def get_default_screen(self) -> Screen:
        return BoardScreen()

    def on_mount(self) -> None:
        if os.environ.get("TERM") == "linux":
            # The Linux console's font lacks rounded box glyphs.
            self.add_class("-ascii")
        if self._feed is None:
            self._feed = open_change_feed(self.db.engine, self.settings.ui.poll_interval)
        self.watch_database()
        if self.scenario is not None:
            self.run_simulator()
        self._check_size()

    def on_ready(self) -> None:
        log.info("start-up to ready: %.3f s", time.perf_counter() - self._started)

    async def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.close()

    # --- live updates ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="change-feed", exit_on_error=False)
    def watch_database(self) -> None:
        feed = self._feed
        assert feed is not None
        while not feed.closed:
            try:
                changed = feed.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - a dropped DB connection must not kill the app
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

    def on_resize(self) -> None:
        self._check_size()

    def _check_size(self) -> None:
        small = self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen())
        elif not small and showing:
            self.pop_screen()

    # --- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Lanes board: refresh", "Re-read every lane from the database", self._refresh_board)

    def _refresh_board(self) -> None:
        self.db_changed.publish(None)
