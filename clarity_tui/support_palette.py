"""Remote support (`clarity-tui support` over SSH) writes no files on the site's machine.

Textual's command palette offers its own system commands (App.get_system_commands): Theme, Quit,
Keys, Maximize/Minimize and "Screenshot", which saves an SVG into the running account's
Downloads folder: over SSH that is the support account on the site's server. A support session
keeps only the Textual commands in SUPPORT_TEXTUAL_COMMANDS (an allow-list, so a command a newer
Textual adds is not offered to support until someone looks at it), and every way Textual writes
a file for the user (action_screenshot, save_screenshot, deliver_screenshot -> deliver_text,
deliver_binary) is refused with a notice. Clarity's own commands are untouched: they read
and edit through the services, which check the support role and audit it. Screens that write a
file themselves (the report's CSV export) ask `file_writes_allowed` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from clarity_tui.operator_session import operator_session_of

if TYPE_CHECKING:
    _AppBase = App[None]
else:
    _AppBase = object

# Textual's own palette commands a support session keeps: none writes a file (the theme is not saved).
SUPPORT_TEXTUAL_COMMANDS = frozenset({"Theme", "Quit", "Keys", "Maximize", "Minimize"})
NO_FILES = "Support sessions write no files on this terminal: copy what you need from the screen."


def is_support(app: App[Any]) -> bool:
    return operator_session_of(app).support_user is not None


def file_writes_allowed(app: App[Any]) -> bool:
    """False in a support session: nothing may be written to the site's disk on its behalf."""
    return not is_support(app)


def textual_commands_for(app: App[Any], commands: Iterable[SystemCommand]) -> Iterator[SystemCommand]:
    """Textual's system commands as this session may see them."""
    for command in commands:
        if not is_support(app) or command.title in SUPPORT_TEXTUAL_COMMANDS:
            yield command


class SupportGuard(_AppBase):
    """Mixed into the App before textual.app.App: filters Textual's commands and refuses file writes
    in a support session; does nothing otherwise."""

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from textual_commands_for(self, super().get_system_commands(screen))

    def _refuse_file_write(self) -> None:
        self.notify(NO_FILES, title="Support", severity="warning")

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        if is_support(self):
            self._refuse_file_write()
            return
        super().action_screenshot(filename, path)

    def save_screenshot(self, *args: Any, **kwargs: Any) -> str:
        if is_support(self):  # reached from TEXTUAL_SCREENSHOT, not from a key or the palette
            self._refuse_file_write()
            return ""
        return super().save_screenshot(*args, **kwargs)

    def deliver_text(self, *args: Any, **kwargs: Any) -> str | None:
        if is_support(self):
            self._refuse_file_write()
            return None
        return super().deliver_text(*args, **kwargs)

    def deliver_binary(self, *args: Any, **kwargs: Any) -> str | None:
        if is_support(self):
            self._refuse_file_write()
            return None
        return super().deliver_binary(*args, **kwargs)


__all__ = ["NO_FILES", "SUPPORT_TEXTUAL_COMMANDS", "SupportGuard", "file_writes_allowed", "is_support",
           "textual_commands_for"]
