"""The screens' header: Textual's Header, minus a crash when a title changes around a mount or unmount.

Textual's Header updates its title from a watcher that catches NoScreen only. When a screen sets its title
while the header's children are not mounted yet, or after they are gone (a screen opened and closed
quickly on a loaded terminal), that query raises NoMatches and the whole app exits. Seen in the suite under
load; a lane terminal must not exit for a title.
"""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header
from textual.widgets._header import HeaderTitle
from clarity_tui.widgets.text import show_text


class ClarityHeader(Header):
    def _on_mount(self, event: Mount) -> None:
        event.prevent_default()  # Header's own _on_mount would register the watcher that raises

        async def set_title() -> None:
            try:
                show_text(self.query_one(HeaderTitle), self.format_title())
            except (NoScreen, NoMatches):
                pass  # not composed yet (compose sets it) or already gone: nothing to show

        self.watch(self.app, "title", set_title)
        self.watch(self.app, "sub_title", set_title)
        self.watch(self.screen, "title", set_title)
        self.watch(self.screen, "sub_title", set_title)
