"""The calm error screen: something failed, it is logged, Enter goes back to the board.

Shown by clarity_tui/crash_guard.py instead of a traceback. Deliberately plain: nothing here reads
the database or starts a worker, so it cannot fail in turn.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("enter", "back", "Back to the board", id="error.back", priority=True,
                tooltip="Close this message and return to the lanes board"),
        Binding("escape", "back", "Back", show=False, id="error.back_escape"),
    ]

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen #error-box {
        width: 70; height: auto; max-width: 100%;
        border: heavy $warning; background: $surface; padding: 1 2;
    }
    ErrorScreen #error-title { text-style: bold; margin-bottom: 1; }
    ErrorScreen #error-text { margin-bottom: 1; }
    ErrorScreen Center { height: auto; }
    """

    def __init__(self, log_file: Path) -> None:
        super().__init__(id="error")
        self.log_file = log_file

    @property
    def message(self) -> str:
        return (f"Something went wrong. It was logged to {self.log_file}. "
                "Press Enter to return to the board.")

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Static("Something went wrong", id="error-title", markup=False)
            yield Static(self.message, id="error-text", markup=False)
            with Center():
                yield Button("Back to the board  Enter", id="error-back", variant="primary", action="screen.back")

    def action_back(self) -> None:
        self.dismiss(None)
