"""One lane on the board: a header and a scrolling stack of bubbles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label

from clarity_tui.services.board_view import LaneView
from clarity_tui.widgets.bubble import SessionBubble
from clarity_tui.widgets.text import show_text

if TYPE_CHECKING:
    from textual.await_remove import AwaitRemove


class LaneColumn(Vertical):
    DEFAULT_CSS = """
    LaneColumn {
        width: 1fr;
        height: 1fr;
        margin: 0 0 0 1;
        .lane-title { width: 1fr; text-style: bold; background: $primary-muted; color: $foreground; padding: 0 1; }
        .lane-body { height: 1fr; scrollbar-size-vertical: 1; }
        .lane-empty { color: $foreground-muted; padding: 1 1; }
    }
    """

    # Narrowest column that still shows a plate and a badge in a bubble.
    MIN_WIDTH = 18

    def __init__(self, lane: LaneView) -> None:
        super().__init__(id=f"lane-{lane.lane_id}")
        self.lane = lane
        self._title = Label(classes="lane-title")
        self._body = VerticalScroll(classes="lane-body")
        self._empty = Label("No vehicles", classes="lane-empty")

    def compose(self) -> ComposeResult:
        yield self._title
        with self._body:
            yield self._empty

    def on_mount(self) -> None:
        self.sync(self.lane)

    @property
    def bubbles(self) -> list[SessionBubble]:
        return list(self._body.query_children(SessionBubble))

    def remove_gone(self, lane: LaneView) -> AwaitRemove:
        """Remove the bubbles `lane` no longer has. The board awaits every lane's removals before any lane
        mounts (`sync`), so a car that moved is never shown in two lanes at once."""
        wanted = {v.session_id for v in lane.bubbles}
        return self._body.remove_children([b for b in self.bubbles if b.session_id not in wanted])

    def sync(self, lane: LaneView) -> None:
        """Make the bubbles match `lane` (after `remove_gone`): update in place, mount new ones."""
        self.lane = lane
        count = len(lane.bubbles)
        show_text(self._title, f"{lane.name} ({count})" if count else lane.name)
        existing = {b.session_id: b for b in self.bubbles}
        # New bubbles go where the read puts them (arrival order): at the bottom for an arrival, but a car
        # that moved here from another lane keeps its earlier arrival time and goes above later ones.
        pending: list[SessionBubble] = []
        for view in lane.bubbles:
            kept = existing.get(view.session_id)
            if kept is None:
                pending.append(SessionBubble(view))
                continue
            kept.update_view(view)
            if pending:
                self._body.mount_all(pending, before=kept)
                pending = []
        if pending:
            self._body.mount_all(pending)
        self._empty.display = count == 0
