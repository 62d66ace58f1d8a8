"""Leaving a form with unsaved edits asks first: Save changes (S or F2), Discard (D), Keep editing (Esc or K).

A form's Esc calls `leave_or_ask(screen, dirty, save=…, discard=…)`: with nothing changed it leaves at
once (discard), else the UnsavedChangesDialog comes up over the form, and its answer runs `save` or
`discard`; "Keep editing" leaves the form as it was, every typed value kept. Used by the customer
record's General tab, the record's dialogs (FormDialog) and the Operators forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Static

SAVE, DISCARD, KEEP = "save", "discard", "keep"


class UnsavedChangesDialog(ModalScreen[str]):
    """Dismissed with SAVE, DISCARD or KEEP."""

    BINDINGS = [
        Binding("s,f2", "answer('save')", "Save changes", id="unsaved.save", tooltip="Save the edits, then leave"),
        Binding("d", "answer('discard')", "Discard", id="unsaved.discard", tooltip="Leave; the edits are lost"),
        Binding("escape,k", "answer('keep')", "Keep editing", id="unsaved.keep", tooltip="Back to the form"),
    ]
    DEFAULT_CSS = """
    UnsavedChangesDialog { align: center middle; }
    UnsavedChangesDialog #unsaved-box { width: 64; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    UnsavedChangesDialog #unsaved-title { text-style: bold; color: $warning; }
    UnsavedChangesDialog #unsaved-buttons { height: 3; }
    UnsavedChangesDialog #unsaved-buttons Button { width: 1fr; min-width: 10; }
    """

    def __init__(self, what: str = "this form") -> None:
        super().__init__(id="unsaved-changes")
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="unsaved-box"):
            yield Label("Unsaved changes", id="unsaved-title")
            yield Static(f"You changed {self.what} and did not save. Save the changes before leaving?",
                         id="unsaved-question", markup=False)
            with Horizontal(id="unsaved-buttons"):
                yield Button("Save changes S", id="unsaved-save", variant="success", action="screen.answer('save')")
                yield Button("Discard D", id="unsaved-discard", variant="error", action="screen.answer('discard')")
                yield Button("Keep editing Esc", id="unsaved-keep", action="screen.answer('keep')")

    def on_mount(self) -> None:
        self.query_one("#unsaved-keep", Button).focus()

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


def leave_or_ask(screen: Screen[Any], dirty: bool, *, save: Callable[[], Any], discard: Callable[[], Any],
                 what: str = "this form") -> None:
    """Leave at once when nothing changed; else ask, and run `save` or `discard` (Keep editing: nothing)."""
    if not dirty:
        discard()
        return
    if isinstance(screen.app.screen, UnsavedChangesDialog):
        return  # asked already (a second Esc typed ahead)

    def answered(answer: str | None) -> None:
        if answer == SAVE:
            save()
        elif answer == DISCARD:
            discard()

    screen.app.push_screen(UnsavedChangesDialog(what), answered)
