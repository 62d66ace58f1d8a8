"""The one-line bar under the board: site, terminal, database, devices."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; width: 1fr; background: $panel; color: $foreground-muted; padding: 0 1; }
    """

    devices: reactive[str] = reactive("")
    info: reactive[str] = reactive("")

    def render(self) -> str:
        return f"{self.info}  {self.devices}".strip()
