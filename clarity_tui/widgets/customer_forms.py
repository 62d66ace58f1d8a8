"""Dialogs for the customer record: a generic form, a confirmation, and a notice.

A form's submit callback runs in a thread worker (it writes the database). A refused
save (validation, permission, conflict, gateway, mail) shows its message in the dialog
and keeps every typed value; only a successful save closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from clarity_tui.errors import UserFacingError
from clarity_tui.services.customer_input import ValidationFailed
from clarity_tui.services.permissions import Permission

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp

log = logging.getLogger(__name__)


@dataclass
class FieldSpec:
    name: str
    label: str
    kind: str = "text"  # text | select | check | secret
    value: Any = ""
    choices: Sequence[tuple[str, Any]] = field(default_factory=tuple)
    placeholder: str = ""


@dataclass(frozen=True)
class ManagerAsk:
    """A manager-only form (issue 15): whoever lacks `permission` is asked for a Manager PIN in place
    (widgets/manager_pin.manager_approval) after `check` passes and before the service call, which
    then runs as the approving manager. `check` is the form's own validation (raises ValidationFailed);
    action, why, entity and entity_id are what the PIN check audits."""

    permission: Permission
    action: str
    why: str = ""
    entity: str | None = None
    entity_id: Any = None
    check: Callable[[dict[str, Any]], None] | None = None


NOT_APPROVED = "Not approved by a manager: nothing was changed."


class FormDialog(ModalScreen[Any]):
    """Fields, an error line, Save (F2) and Cancel (Esc)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="form.cancel", tooltip="Close without saving"),
        Binding("f2", "save", "Save", id="form.save", tooltip="Save this form"),
    ]

    DEFAULT_CSS = """
    FormDialog { align: center middle; }
    FormDialog #form-box { width: 72; height: auto; max-height: 22; border: round $accent; background: $surface; padding: 0 1; }
    FormDialog #form-title { text-style: bold; width: 1fr; }
    FormDialog #form-fields { height: auto; max-height: 12; }
    FormDialog .form-row { height: auto; }
    FormDialog .form-label { width: 16; padding: 0 1 0 0; }
    FormDialog .form-row Input, FormDialog .form-row Select { width: 1fr; }
    FormDialog .form-row Checkbox { width: 1fr; }
    FormDialog .-invalid { background: $error 30%; }
    FormDialog #form-error { color: $error; height: auto; }
    FormDialog #form-buttons { height: 3; }
    FormDialog #form-buttons Button { width: 1fr; }
    """

    def __init__(self, title: str, fields: Sequence[FieldSpec], submit: Callable[..., Any],
                 extra: dict[str, Callable[[FormDialog], None]] | None = None, save_label: str = "Save",
                 approval: ManagerAsk | None = None) -> None:
        """`submit(values)` saves the form; with `approval` it is called as submit(values, actor): the
        signed-in actor when they hold the permission, else the manager who approved with their PIN."""
        super().__init__()
        self.approval = approval
        self.form_title = title
        self.fields = list(fields)
        self.submit = submit
        self.extra = extra or {}
        self.save_label = save_label
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical(id="form-box"):
            yield Label(self.form_title, id="form-title")
            with VerticalScroll(id="form-fields"):
                for spec in self.fields:
                    with Horizontal(classes="form-row"):
                        yield Label(spec.label, classes="form-label")
                        yield self._widget(spec)
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button(f"{self.save_label} F2", id="form-save", variant="success", action="screen.save")
                for i, label in enumerate(self.extra):
                    yield Button(label, id=f"form-extra-{i}", action=f"screen.extra({i})")
                yield Button("Cancel Esc", id="form-cancel", action="screen.cancel")

    def _widget(self, spec: FieldSpec) -> Widget:
        wid = f"f-{spec.name}"
        if spec.kind == "select":
            values = {v for _, v in spec.choices}
            return Select(list(spec.choices), value=spec.value if spec.value in values else Select.NULL, id=wid, compact=True,
                          prompt=spec.placeholder or "Choose")
        if spec.kind == "check":
            return Checkbox("", value=bool(spec.value), id=wid, compact=True)
        return Input("" if spec.value is None else str(spec.value), placeholder=spec.placeholder, id=wid, compact=True,
                     password=spec.kind == "secret")

    def on_mount(self) -> None:
        self._initial = self.values()  # Esc asks before dropping anything typed since (widgets/unsaved_guard.py)
        first = self.query(".form-row Input, .form-row Select, .form-row Checkbox").first()
        first.focus()

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        """Enter moves to the next field at once (`set_focus`, not the deferred `focus()`), so a key
        typed right after it lands there (issue 14). Enter on the last field does nothing: F2 saves."""
        fields = list(self.query(".form-row Input, .form-row Select, .form-row Checkbox"))
        if event.input in fields and fields.index(event.input) + 1 < len(fields):
            event.stop()
            self.set_focus(fields[fields.index(event.input) + 1])

    def _field(self, name: str) -> Input | Select[Any] | Checkbox:
        widget = self.query_one(f"#f-{name}")
        assert isinstance(widget, (Input, Select, Checkbox))  # what `_widget` made
        return widget

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in self.fields:
            widget = self._field(spec.name)
            if isinstance(widget, Select):
                out[spec.name] = None if widget.value is Select.NULL else widget.value
            else:
                out[spec.name] = widget.value
        return out

    def set_value(self, name: str, value: Any) -> None:
        self._field(name).value = value

    def show_error(self, message: str, fields: Sequence[str] = ()) -> None:
        self.saving = False
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")
        for name in fields:
            for widget in self.query(f"#f-{name}"):
                widget.add_class("-invalid")
        self.query_one("#form-error", Static).update(message)

    def action_save(self) -> None:
        if self.saving:
            return
        self.saving = True
        self.query_one("#form-error", Static).update("Saving…")
        values = self.values()
        ask = self.approval
        if ask is None:
            self._save(values)
            return
        from clarity_tui.services.permissions import allowed

        actor = cast("ClarityApp", self.app).actor
        if allowed(actor, ask.permission):
            self._save(values, actor)
        else:
            self._approve_then_save(values)

    @work(exclusive=True, group="form-approve", exit_on_error=False)
    async def _approve_then_save(self, values: dict[str, Any]) -> None:
        """Validate, then a manager's PIN in place, then the service call as that manager."""
        from clarity_tui.widgets.manager_pin import manager_approval

        ask = self.approval
        assert ask is not None
        if ask.check is not None:
            try:
                ask.check(values)
            except ValidationFailed as exc:
                self.show_error(str(exc), list(exc.errors))
                return
        self.query_one("#form-error", Static).update("A manager's PIN is needed…")
        try:
            manager = await manager_approval(self.app, ask.action, why=ask.why, entity=ask.entity, entity_id=ask.entity_id)
        except Exception:  # logged (a bug: its text is not advice); the typed values stay
            log.exception("asking for a manager's PIN failed")
            self.show_error("Could not ask for a manager's PIN. Nothing was changed: try again.")
            return
        if manager is None:
            self.show_error(NOT_APPROVED)
            self.notify(NOT_APPROVED)
            return
        self.query_one("#form-error", Static).update(f"Approved by {manager.name}: saving…")
        self._save(values, manager)

    @work(thread=True, exclusive=True, group="form-save", exit_on_error=False)
    def _save(self, values: dict[str, Any], actor: Any = None) -> None:
        try:
            result = self.submit(values) if self.approval is None else self.submit(values, actor)
        except ValidationFailed as exc:
            self.app.call_from_thread(self.show_error, str(exc), list(exc.errors))
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        except Exception:  # logged (a bug: its text is not advice); the typed values stay
            log.exception("saving the form %r failed", self.form_title)
            self.app.call_from_thread(self.show_error, "Could not save: an unexpected error (logged). Nothing was lost: try again.")
            return
        self.app.call_from_thread(self.dismiss, True if result is None else result)

    def action_cancel(self) -> None:
        from clarity_tui.widgets.unsaved_guard import leave_or_ask

        dirty = not self.saving and self.values() != getattr(self, "_initial", self.values())
        leave_or_ask(self, dirty, save=self.action_save, discard=lambda: self.dismiss(None),
                     what=f"“{self.form_title}”")

    def action_extra(self, index: int) -> None:
        """One of the form's extra buttons (the Related tab's Search)."""
        list(self.extra.values())[index](self)


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape,n", "answer(False)", "No", id="confirm.no"),
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
    ]
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog #confirm-box { width: 60; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    ConfirmDialog #confirm-buttons { height: 3; }
    ConfirmDialog #confirm-buttons Button { width: 1fr; }
    """

    def __init__(self, question: str, yes: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (Y)", id="confirm-yes", variant="error", action="screen.answer(True)")
                yield Button("Keep (N)", id="confirm-no", action="screen.answer(False)")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class NoticeDialog(ModalScreen[None]):
    """A message that must be acknowledged: operator notices, a password shown once."""

    BINDINGS = [Binding("escape,enter", "close", "OK", id="notice.ok")]
    DEFAULT_CSS = """
    NoticeDialog { align: center middle; }
    NoticeDialog #notice-box { width: 66; height: auto; max-height: 20; border: thick $warning; background: $surface; padding: 0 1; }
    NoticeDialog #notice-title { text-style: bold; color: $warning; }
    NoticeDialog #notice-body { height: auto; max-height: 14; }
    NoticeDialog Button { width: 1fr; }
    """

    def __init__(self, title: str, body: str, *, dialog_id: str = "notice") -> None:
        super().__init__(id=dialog_id)
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="notice-box"):
            yield Label(self.title_text, id="notice-title")
            with VerticalScroll(id="notice-body"):
                yield Static(self.body, id="notice-text", markup=False)
            yield Button("OK (Enter)", id="notice-ok", variant="primary", action="screen.close")

    def on_mount(self) -> None:
        self.query_one("#notice-ok").focus()

    def action_close(self) -> None:
        self.dismiss(None)
