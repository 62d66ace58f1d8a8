"""Changing a Static's text only when it changes.

`Static.update` always asks for a new layout of the whole screen, even with the same text. The board
re-applies every lane on each change and ticks every bubble's wait each second, and the session screen
re-shows its panels on each read: with this, a screen is laid out again only when something it shows moved.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def show_text(widget: Static, text: str | Content, *, layout: bool = True) -> None:
    """`widget.update(text)`, skipped when the widget already shows exactly that text. `layout=False` for a
    widget whose size never depends on its text (one row, fixed width, nowrap): a repaint of it alone."""
    if widget.content != text:
        widget.update(text, layout=layout)
