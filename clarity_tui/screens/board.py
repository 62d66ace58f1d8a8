"""The lanes board: the home screen. One column per lane, one bubble per waiting vehicle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual import events, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.messages import OpenSession
from clarity_tui.screens.board_jump import PlatePrefix, first_match
from clarity_tui.services.board_view import LaneView
from clarity_tui.widgets.bubble import SessionBubble
from clarity_tui.widgets.lane_column import LaneColumn
from clarity_tui.widgets.status_bar import StatusBar
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of
from clarity_tui.widgets.text import show_text

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp


# The longest the board keeps the garbage collector waiting (see LiveMixin.hold_gc).
GC_HOLD_MAX_SECONDS = 1.0


class BoardScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        # priority: the lane scrollers would otherwise take the arrow keys.
        Binding("up,k", "move(0,-1)", "Up", show=False, priority=True, id="board.up"),
        Binding("down,j", "move(0,1)", "Down", show=False, priority=True, id="board.down"),
        Binding("left,h", "move(-1,0)", "Prev lane", show=False, priority=True, id="board.left"),
        Binding("right,l", "move(1,0)", "Next lane", show=False, priority=True, id="board.right"),
        Binding("home", "edge(-1)", "First", show=False, priority=True, id="board.first",
                tooltip="The first vehicle of the lane"),
        Binding("end", "edge(1)", "Last", show=False, priority=True, id="board.last",
                tooltip="The last vehicle of the lane"),
        Binding("pageup", "page(-1)", "Page up", show=False, priority=True, id="board.page_up",
                tooltip="Up the lane by a screenful"),
        Binding("pagedown", "page(1)", "Page down", show=False, priority=True, id="board.page_down",
                tooltip="Down the lane by a screenful"),
        Binding("slash", "find_plate", "Find plate", show=False, id="board.find_plate",
                tooltip="Type a plate: the first bubble whose plate starts with it is selected"),
        Binding("enter", "open_session", "Open", id="board.open", tooltip="Open the selected session"),
        Binding("f5,ctrl+r", "refresh_board", "Refresh", id="board.refresh", tooltip="Re-read the board from the database"),
    ]

    @dataclass
    class Painted(Message):
        """The board finished applying a database read (used by tests and benchmarks)."""

        session_ids: frozenset[int]

    def __init__(self) -> None:
        super().__init__(id="board")
        self._lanes: list[LaneView] = []
        self._columns: dict[int, LaneColumn] = {}
        self._columns_fit: bool | None = None
        self._loading = False
        self._dirty = False
        self._gc_held: float | None = None  # since when this screen holds the collector (monotonic)
        self._plate_prefix = PlatePrefix(lambda: self.app.now())

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=self.app.boot_config.show_clock, icon="≋")
        yield Static(id="billing-banner", markup=False)
        yield Horizontal(id="lanes")
        yield StatusBar(id="status-bar")
        yield KeyFooter()

    def on_mount(self) -> None:
        config = self.app.boot_config
        self.sub_title = "Lanes"
        # immediate: the read starts as the notice is handled, not after whatever this screen has queued.
        self.app.db_changed.subscribe(self, lambda _: self.reload(), immediate=True)
        self.app.devices_changed.subscribe(self, lambda _: self._show_devices())
        self.app.booted.subscribe(self, lambda _: self._show_site())
        self.set_interval(1.0, self._tick)
        mode = "SIMULATOR · " if config.simulate else ""
        engine = "SQLite" if config.database_url.startswith("sqlite") else "PostgreSQL"
        self.query_one(StatusBar).info = f"{mode}{config.terminal_id} · {engine}"
        if self.app.is_booted:
            self._show_site()
        self.reload()

    def _show_site(self) -> None:
        # The full settings arrive after the first paint (see clarity_tui/boot.py).
        self.title = services_of(self).settings.site.name
        self._show_devices()

    def _show_devices(self) -> None:
        if self.app.devices is None:
            return
        from clarity_tui.widgets.device_bar import devices_line

        self.query_one(StatusBar).devices = devices_line(self.app.devices)

    def on_screen_resume(self) -> None:
        self.reload()

    # --- data -------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the board: one read at a time, never cancelled (that would throw away nearly finished work).
        A change that lands mid-read marks the board dirty for one more read, started once this one is applied.
        Both flags live on the UI thread only, so a change can never slip between a read's end and the next."""
        if self._loading:
            self._dirty = True
            return
        self._loading = True
        self._dirty = False
        if self._gc_held is None:
            self._gc_held = time.monotonic()
            self.app.hold_gc()  # released once the change is painted (_after_paint)
        self._load()

    @work(thread=True, group="board-load", exit_on_error=False)
    def _load(self) -> None:
        lanes = self.app.read_board()
        banner = self.app.billing_banner()
        # One hop to the UI thread per read: each hop waits for a busy event loop.
        # call_from_thread awaits the coroutine (the repaint's mount): its typing cannot say so.
        self.app.call_from_thread(cast("Callable[[list[LaneView], str | None], None]", self._apply), lanes, banner)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "board-load" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self._read_done()  # (the error itself is logged by the worker)
            self._release_gc()

    def _read_done(self) -> None:
        self._loading = False
        if self._dirty:
            self.reload()

    def _release_gc(self) -> None:
        if self._gc_held is not None and not self._loading:
            self._gc_held = None
            self.app.release_gc()

    def _show_banner(self, text: str | None) -> None:
        banner = self.query_one("#billing-banner", Static)
        show_text(banner, text or "")
        banner.display = bool(text)

    def action_refresh_board(self) -> None:
        self.reload()

    async def _apply(self, lanes: list[LaneView], banner: str | None) -> None:
        self._show_banner(banner)
        container = self.query_one("#lanes", Horizontal)
        focused_id = self._focused_session_id()
        if [lane.lane_id for lane in lanes] != [lane.lane_id for lane in self._lanes]:
            await container.remove_children()
            self._columns = {lane.lane_id: LaneColumn(lane) for lane in lanes}
            self._columns_fit = None
            await container.mount_all(self._columns.values())
        else:
            # Only the lanes whose read changed are touched: the others keep their widgets and paint.
            changed = [lane for lane, before in zip(lanes, self._lanes, strict=True) if lane != before]
            for lane in changed:  # every lane's gone cars first: a moved car is never in two lanes
                await self._columns[lane.lane_id].remove_gone(lane)
            for lane in changed:
                self._columns[lane.lane_id].sync(lane)
        self._lanes = lanes
        self._fit_columns()
        ids = frozenset(b.session_id for lane in lanes for b in lane.bubbles)
        self.call_after_refresh(self._after_paint, focused_id, ids)
        self._read_done()

    def on_resize(self) -> None:
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Share the width between lanes; when they cannot all fit, keep them readable and scroll."""
        if not self._columns:
            return
        # Each column has a 1-cell left margin; the lanes row has a 1-cell right pad.
        per_column = (self.size.width - 1) // len(self._columns) - 1
        fits = per_column >= LaneColumn.MIN_WIDTH
        if fits == self._columns_fit:
            return  # restyling on every repaint would reset the sideways scroll
        self._columns_fit = fits
        for column in self._columns.values():
            column.styles.width = "1fr" if fits else LaneColumn.MIN_WIDTH
        self.query_one("#lanes").styles.overflow_x = "hidden" if fits else "auto"

    def _after_paint(self, focused_id: int | None, ids: frozenset[int]) -> None:
        if focused_id is not None and focused_id not in ids or self.focused is None:
            self._focus_first()
        self._release_gc()  # unless the next read is already under way
        self.post_message(self.Painted(ids))

    def _tick(self) -> None:
        if self._gc_held is not None and time.monotonic() - self._gc_held > GC_HOLD_MAX_SECONDS:
            # Changes arriving back to back: let a collection run between them rather than never.
            self._gc_held = None
            self.app.release_gc()
        now = self.app.now()
        for bubble in self.query(SessionBubble):
            bubble.tick(now)
        if self.sub_title != "Lanes" and not self._plate_prefix.live:
            self.sub_title = "Lanes"

    # --- navigation ----------------------------------------------------------------

    def _grid(self) -> list[list[SessionBubble]]:
        return [column.bubbles for column in self._columns.values()]

    def _focused_session_id(self) -> int | None:
        return self.focused.session_id if isinstance(self.focused, SessionBubble) else None

    def _focus_first(self) -> None:
        for column in self._grid():
            if column:
                self._focus_bubble(column[0])
                return

    def _focus_bubble(self, bubble: SessionBubble) -> None:
        bubble.focus()
        # With more lanes than fit, bring the lane into view (once laid out).
        self.call_after_refresh(self.query_one("#lanes").scroll_to_widget, bubble, animate=False)

    def action_move(self, dx: int, dy: int) -> None:
        if self._plate_prefix.live:
            raise SkipAction()  # h j k l extend a plate being typed (on_key)
        self._move(dx, dy)

    def action_edge(self, direction: int) -> None:
        """Home / End: the first or last bubble of the lane."""
        self._move(0, direction * 10_000)

    def action_page(self, direction: int) -> None:
        """PgUp / PgDn: as many bubbles as the lane shows at once."""
        page = 1
        if isinstance(self.focused, SessionBubble):
            body = self.focused.parent
            height = self.focused.outer_size.height
            if isinstance(body, Widget) and height:
                page = max(1, body.size.height // height)
        self._move(0, direction * page)

    def action_find_plate(self) -> None:
        self._plate_prefix.start()
        self.sub_title = "Lanes · plate: type it"

    def on_key(self, event: events.Key) -> None:
        """Type-to-jump (see board_jump): letters and digits build a plate prefix."""
        prefix = self._plate_prefix
        live = prefix.live
        char = event.character or ""
        if len(char) == 1 and char.isascii() and char.isalnum():
            if live or event.key not in self.app.active_bindings:
                event.stop()
                event.prevent_default()
                self._jump_to(prefix.add(char))
            return
        if not live:
            return
        moves = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
        if event.key in ("escape", "backspace") or event.key in moves:
            event.stop()
            event.prevent_default()
        if event.key == "backspace":
            self._jump_to(prefix.back())
            return
        prefix.clear()
        self.sub_title = "Lanes"
        if event.key in moves:
            self._move(*moves[event.key])

    def _jump_to(self, text: str) -> None:
        plates = [(b, b.view.plate) for column in self._grid() for b in column]
        bubble = first_match(text, plates)
        if bubble is not None:
            self._focus_bubble(bubble)
            self.sub_title = f"Lanes · plate: {text}"
        elif text:
            self.sub_title = f"Lanes · no plate starts with {text}"
        else:
            self.sub_title = "Lanes · plate: type it"

    def _move(self, dx: int, dy: int) -> None:
        grid = self._grid()
        current = self.focused
        position = next(
            ((li, bi) for li, col in enumerate(grid) for bi, b in enumerate(col) if b is current), None
        )
        if position is None:
            self._focus_first()
            return
        lane_index, bubble_index = position
        if dy:
            column = grid[lane_index]
            self._focus_bubble(column[max(0, min(len(column) - 1, bubble_index + dy))])
            return
        step = 1 if dx > 0 else -1
        target = lane_index + step
        while 0 <= target < len(grid):
            if grid[target]:
                self._focus_bubble(grid[target][min(bubble_index, len(grid[target]) - 1)])
                return
            target += step

    def action_open_session(self) -> None:
        session_id = self._focused_session_id()
        if session_id is None:
            self.notify("No vehicle selected: move to a bubble with the arrow keys.", severity="warning")
            return
        self.post_message(OpenSession(session_id))  # the app opens it (ClarityApp.on_open_session)
