"""A session bubble: one vehicle on the lanes board."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, ClassVar, Literal

from textual.content import Content
from textual.events import Click
from textual.widget import Widget

from clarity_tui.messages import OpenSession
from clarity_tui.services.board_view import Badge, BubbleView
from clarity_tui.widgets.timefmt import wait_label

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp

Line = Literal["plate", "vehicle", "who", "wait"]
LINES: tuple[Line, ...] = ("plate", "vehicle", "who", "wait")  # top to bottom


class SessionBubble(Widget, can_focus=True):
    """One widget, not a container of four Labels: a board of 30 bubbles is then 30 widgets for every layout
    to walk, not 150. Its four rows are one `Content`, each row cut to the width with an ellipsis."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "session-bubble--plate", "session-bubble--vehicle", "session-bubble--who", "session-bubble--wait",
        "session-bubble--held", "session-bubble--lookalike",
    }

    DEFAULT_CSS = """
    SessionBubble {
        width: 1fr;
        height: 6;
        border: round $panel-lighten-2;
        padding: 0 1;
        margin: 0;
        background: $surface;
        &:focus { border: heavy $accent; background: $boost; }
        &.-member { border-title-color: $success; }
        &.-past_due, &.-paused, &.-limit { border-title-color: $warning; }
        &.-expired, &.-cancelled { border-title-color: $error; }
        &.-legacy { border-title-color: $secondary; }
        &.-new { border-title-color: $foreground-muted; }
        & > .session-bubble--plate { text-style: bold; }
        & > .session-bubble--vehicle, & > .session-bubble--who { color: $foreground; }
        & > .session-bubble--wait { color: $foreground-muted; }
        & > .session-bubble--held { color: $warning; }
        & > .session-bubble--lookalike { color: $warning; text-style: bold; }
    }
    """

    def __init__(self, view: BubbleView) -> None:
        super().__init__(id=f"session-{view.session_id}")
        self.view = view
        self._lines: dict[Line, Content] = {}
        self._render_view()

    @property
    def session_id(self) -> int:
        return self.view.session_id

    def line(self, name: Line) -> str:
        """The text of one row as shown: cut to the width with an ellipsis (whole before the first layout)."""
        width = self.content_size.width
        return self._lines[name].truncate(width, ellipsis=True).plain if width else self._lines[name].plain

    def render(self) -> Content:
        width = self.content_size.width
        return Content("\n").join(self._lines[name].truncate(width, ellipsis=True) for name in LINES)

    def update_view(self, view: BubbleView) -> None:
        if view != self.view:
            self.view = view
            self._render_view()

    def _render_view(self) -> None:
        v = self.view
        for badge in Badge:
            self.set_class(v.badge == badge, f"-{badge}")
        self.border_title = v.badge_label + (" ⟳SYNC" if v.pending_sync else "")
        who = v.customer_name or ("Legacy match" if v.badge == Badge.LEGACY else "Walk-up")
        lookalike = v.lookalike and not v.customer_name
        if lookalike:
            who = "≈ member?"  # a misread of a member's plate, most likely: the session screen says whose
        self.set_class(lookalike, "-lookalike")
        if v.plan_name:
            who = f"{who} · {v.plan_name.split()[0]}"
        self._lines["plate"] = Content.styled(v.plate + ("?" if v.confidence < 0.8 else ""), ".session-bubble--plate")
        self._lines["vehicle"] = Content.styled(v.vehicle_line, ".session-bubble--vehicle")
        who_line = Content.styled(who, ".session-bubble--who")
        self._lines["who"] = who_line.stylize(".session-bubble--lookalike") if lookalike else who_line
        self.tick()
        self.refresh()

    def tick(self, now: dt.datetime | None = None) -> None:
        now = now or self.app.now()
        held = f" · {self.view.held_by}" if self.view.held_by else ""
        # Plain words: clock glyphs are missing from many terminal fonts.
        wait = Content.styled(f"Wait {wait_label(self.view.arrived_at, now)}{held}", ".session-bubble--wait")
        wait = wait.stylize(".session-bubble--held") if held else wait
        if "wait" not in self._lines or not wait.is_same(self._lines["wait"]):
            self._lines["wait"] = wait
            self.refresh()  # a repaint of this bubble alone: its size never changes

    def on_click(self, event: Click) -> None:
        event.stop()
        self.focus()
        self.post_message(OpenSession(self.session_id))
