"""A session bubble: one vehicle on the lanes board."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Click
from textual.widgets import Label

from clarity_tui.messages import OpenSession
from clarity_tui.services.board_view import Badge, BubbleView
from clarity_tui.widgets.text import show_text
from clarity_tui.widgets.timefmt import wait_label

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp


class SessionBubble(Vertical, can_focus=True):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    DEFAULT_CSS = """
    SessionBubble {
        height: auto;
        border: round $panel-lighten-2;
        padding: 0 1;
        margin: 0;
        background: $surface;
        &:focus { border: heavy $accent; background: $boost; }
        &.-member { border-title-color: $success; }
        &.-past_due, &.-paused { border-title-color: $warning; }
        &.-expired, &.-cancelled { border-title-color: $error; }
        &.-legacy { border-title-color: $secondary; }
        &.-new { border-title-color: $foreground-muted; }
        Label { width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
        .plate { text-style: bold; }
        .vehicle, .who { color: $foreground; }
        .wait { color: $foreground-muted; }
        .held { color: $warning; }
        &.-lookalike .who { color: $warning; text-style: bold; }
    }
    """

    def __init__(self, view: BubbleView) -> None:
        super().__init__(id=f"session-{view.session_id}")
        self.view = view
        self._plate = Label(classes="plate")
        self._vehicle = Label(classes="vehicle")
        self._who = Label(classes="who")
        self._wait = Label(classes="wait")
        self._render_view()

    @property
    def session_id(self) -> int:
        return self.view.session_id

    def compose(self) -> ComposeResult:
        yield self._plate
        yield self._vehicle
        yield self._who
        yield self._wait

    def update_view(self, view: BubbleView) -> None:
        if view != self.view:
            self.view = view
            self._render_view()

    def _render_view(self) -> None:
        v = self.view
        for badge in Badge:
            self.set_class(v.badge == badge, f"-{badge}")
        label = v.badge_label + (" ⟳SYNC" if v.pending_sync else "")
        self.border_title = label
        # Each line is one row of the bubble's width (height 1, nowrap): its text never changes its size, and
        # a layout of the whole board costs far more than a repaint of the row (the wait line ticks each second).
        show_text(self._plate, v.plate + ("?" if v.confidence < 0.8 else ""), layout=False)
        show_text(self._vehicle, v.vehicle_line, layout=False)
        who = v.customer_name or ("Legacy match" if v.badge == Badge.LEGACY else "Walk-up")
        if v.lookalike and not v.customer_name:
            who = "≈ member?"  # a misread of a member's plate, most likely: the session screen says whose
        self.set_class(v.lookalike and not v.customer_name, "-lookalike")
        if v.plan_name:
            who = f"{who} · {v.plan_name.split()[0]}"
        show_text(self._who, who, layout=False)
        self.tick()

    def tick(self, now: dt.datetime | None = None) -> None:
        now = now or self.app.now()
        held = f" · {self.view.held_by}" if self.view.held_by else ""
        # Plain words: clock glyphs are missing from many terminal fonts.
        show_text(self._wait, f"Wait {wait_label(self.view.arrived_at, now)}{held}", layout=False)
        self._wait.set_class(bool(self.view.held_by), "held")

    def on_click(self, event: Click) -> None:
        event.stop()
        self.focus()
        self.post_message(OpenSession(self.session_id))
