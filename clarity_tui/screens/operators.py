"""Operators, a manager's screen: list, add (A), set a PIN (P), unlock (U), disable (D). And the first-run form.

Thin views over services/operator_admin.OperatorAdmin: every rule (who may, the PIN policy, names,
the last manager) is there; these screens collect the fields and show what the service says. All of
it fits 80x24 and works from the keyboard; every action has a key.

`FirstManagerScreen` is the first-run form: on a site with no operators, the PIN pad offers it (F2) to
create the first manager (name and PIN twice), who is then signed in through the PIN pad's own check.

Import-light (Textual only), like the PIN pad: the services load in workers.
A little over 400 lines, kept together: the list and its dialogs share one set of field and PIN widgets, and
the first-run form reuses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.widgets.header import ClarityHeader

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.operator_admin import OperatorAdmin, OperatorRow

ROLES = [("attendant", "Attendant: sells and migrates at the lane"), ("manager", "Manager: approves, refunds, operators"),
         ("support", "Support: remote help, customer records"), ("technician", "Technician: devices, diagnostics")]

FORM_CSS = """
    align: center middle;
    & > Vertical { width: 66; max-width: 100%; height: auto; padding: 0 1; border: thick $primary;
                   background: $surface; }
    .form-title { text-style: bold; width: 1fr; margin-bottom: 1; }
    .form-note { width: 1fr; height: auto; color: $text-muted; margin-bottom: 1; }
    .form-row { height: auto; }
    .form-row Label { width: 12; }
    .form-row Input { width: 1fr; }
    .form-row OptionList { width: 1fr; height: 4; }
    .form-error { height: 2; width: 1fr; color: $error; text-style: bold; }
    Horizontal.form-buttons { height: 3; align: center middle; }
    Button { margin: 0 1; min-width: 14; }
"""


def _admin(app: ClarityApp) -> OperatorAdmin:
    """The operator service (worker threads only: the first-run form may be up before the boot is done)."""
    from clarity_tui.services.operator_admin import OperatorAdmin

    return OperatorAdmin.from_services(app.wait_for_services())


class _Form(ModalScreen[Any]):
    """A small form: Enter moves to the next field and saves from the last; F5 saves; Esc cancels."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="operator_form.cancel", tooltip="Close: nothing is changed"),
        Binding("f5", "save", "Save", id="operator_form.save", tooltip="Save"),
    ]
    FIELDS: tuple[str, ...] = ()

    def __init__(self, id: str) -> None:
        super().__init__(id=id)
        self._busy = False

    def on_mount(self) -> None:
        self._initial = self._typed()  # Esc asks before dropping anything typed since (widgets/unsaved_guard.py)
        self.query_one(f"#{self.FIELDS[0]}").focus()

    def _typed(self) -> list[str]:
        return [i.value for i in self.query(Input)]

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def _error(self, text: str) -> None:
        self.query_one(".form-error", Static).update(text)

    def _next(self, current: str | None) -> None:
        if current in self.FIELDS and current != self.FIELDS[-1]:
            self.query_one(f"#{self.FIELDS[self.FIELDS.index(current) + 1]}").focus()
        else:
            self.action_save()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._next(event.input.id)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._next(event.option_list.id)

    def _buttons(self, save: str) -> ComposeResult:
        yield Static("", classes="form-error", markup=False)
        with Horizontal(classes="form-buttons"):
            yield Button("Cancel · Esc", id="form-cancel", action="screen.cancel")
            yield Button(f"{save} · F5", id="form-save", variant="success", action="screen.save")

    def action_cancel(self) -> None:
        from clarity_tui.widgets.unsaved_guard import leave_or_ask

        if not self._busy:
            leave_or_ask(self, self._typed() != getattr(self, "_initial", self._typed()), save=self.action_save,
                         discard=lambda: self.dismiss(None), what="this form")

    def action_save(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._error("")
        self._save()

    def _save(self) -> None:
        raise NotImplementedError

    def _refused(self, message: str, clear_pins: bool = True) -> None:
        self._busy = False
        if clear_pins and self.query("#op-pin"):  # the PINs are typed again, from the first
            for field in ("op-pin", "op-pin2"):
                self.query_one(f"#{field}", Input).value = ""
            self.query_one("#op-pin").focus()
        self._error(message)

    def _pin_inputs(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("PIN")
            yield Input(placeholder="6 digits", password=True, max_length=6, restrict=r"[0-9]*", id="op-pin",
                        compact=True)
        with Horizontal(classes="form-row"):
            yield Label("PIN again")
            yield Input(placeholder="the same 6 digits", password=True, max_length=6, restrict=r"[0-9]*",
                        id="op-pin2", compact=True)


class AddOperatorModal(_Form):
    """A manager adds an operator: name, role, PIN twice. Dismissed with the new OperatorRow, or None."""

    DEFAULT_CSS = "AddOperatorModal {" + FORM_CSS + "}"
    FIELDS = ("op-name", "op-role", "op-pin", "op-pin2")

    def __init__(self, manager: Actor) -> None:
        super().__init__(id="operator-add")
        self.manager = manager

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add an operator", classes="form-title")
            with Horizontal(classes="form-row"):
                yield Label("Name")
                yield Input(placeholder="as on the PIN pad, e.g. Pat Lee", max_length=80, id="op-name", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Role")
                yield OptionList(*[Option(text, id=role) for role, text in ROLES], id="op-role", compact=True)
            yield from self._pin_inputs()
            yield from self._buttons("Add")

    def on_mount(self) -> None:
        self.query_one("#op-role", OptionList).highlighted = 0
        super().on_mount()

    def _save(self) -> None:
        role_list = self.query_one("#op-role", OptionList)
        role = ROLES[role_list.highlighted or 0][0]
        self._add(self._value("op-name"), role, self._value("op-pin"), self._value("op-pin2"))

    @work(thread=True, exclusive=True, group="operator-add", exit_on_error=False)
    def _add(self, name: str, role: str, pin: str, again: str) -> None:
        from clarity_tui.services.pin_check import confirm_new_pin

        try:
            row = _admin(self.app).add(self.manager, name, role, confirm_new_pin(pin, again))
        except UserFacingError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self.dismiss, row)


class SetPinModal(_Form):
    """A manager sets an operator's new PIN (typed twice). Dismissed with the OperatorRow, or None."""

    DEFAULT_CSS = "SetPinModal {" + FORM_CSS + "}"
    FIELDS = ("op-pin", "op-pin2")

    def __init__(self, manager: Actor, row: OperatorRow) -> None:
        super().__init__(id="operator-set-pin")
        self.manager = manager
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"New PIN for {self.row.name}", classes="form-title")
            yield Static("It replaces the old PIN at once, and lifts a lockout.", classes="form-note")
            yield from self._pin_inputs()
            yield from self._buttons("Set PIN")

    def _save(self) -> None:
        self._set(self._value("op-pin"), self._value("op-pin2"))

    @work(thread=True, exclusive=True, group="operator-set-pin", exit_on_error=False)
    def _set(self, pin: str, again: str) -> None:
        from clarity_tui.services.pin_check import confirm_new_pin

        try:
            row = _admin(self.app).set_pin(self.manager, self.row.id, confirm_new_pin(pin, again))
        except UserFacingError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self.dismiss, row)


class ConfirmDisableModal(ModalScreen[bool]):
    """Disable an operator? Y disables, N or Esc keeps them."""

    DEFAULT_CSS = "ConfirmDisableModal {" + FORM_CSS + "& > Vertical { border: thick $error; } }"
    BINDINGS = [
        Binding("y", "answer(True)", "Disable", id="operator_disable.yes", tooltip="Disable this operator"),
        Binding("escape,n", "answer(False)", "Keep", id="operator_disable.no", tooltip="Keep this operator"),
    ]

    def __init__(self, row: OperatorRow) -> None:
        super().__init__(id="operator-disable")
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Disable {self.row.name} ({self.row.role})?", classes="form-title")
            yield Static("They can no longer sign in, and a shift they have open ends. Their history stays.",
                         classes="form-note")
            with Horizontal(classes="form-buttons"):
                yield Button("Keep · N", id="operator-disable-no", action="screen.answer(False)")
                yield Button("Disable · Y", id="operator-disable-yes", variant="error", action="screen.answer(True)")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class OperatorsScreen(Screen[None]):
    """The site's operators, for a manager (the `manager` Actor does every change, audited by name)."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="operators.back", tooltip="Back to the lanes board"),
        Binding("a,f2", "add", "Add", id="operators.add", tooltip="Add an operator with a PIN"),
        Binding("p,f3", "set_pin", "Set PIN", id="operators.set_pin", tooltip="Set the highlighted operator's PIN"),
        Binding("u,f6", "unlock", "Unlock", id="operators.unlock", tooltip="Lift the highlighted operator's lockout"),
        Binding("d,f8", "disable", "Disable", id="operators.disable", tooltip="Disable the highlighted operator"),
        Binding("f5", "reload", "Refresh", id="operators.refresh", tooltip="Re-read the operators"),
    ]

    DEFAULT_CSS = """
    OperatorsScreen {
        #operators-table { height: 1fr; }
        #operators-message { height: 2; padding: 0 1; }
        #operators-message.-error { color: $error; text-style: bold; }
    }
    """

    def __init__(self, manager: Actor) -> None:
        super().__init__(id="operators")
        self.manager = manager
        self._rows: list[OperatorRow] = []

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield DataTable(id="operators-table", cursor_type="row", zebra_stripes=True)
        yield Static(f"Signed in as {self.manager.name}: A add · P set PIN · U unlock · D disable",
                     id="operators-message", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Operators"
        self.query_one(DataTable).add_columns("Name", "Role", "Status")
        self.app.db_changed.subscribe(self, lambda _: self.reload())
        self.reload()

    @work(thread=True, exclusive=True, group="operators", exit_on_error=False)
    def reload(self) -> None:
        rows = _admin(self.app).list()
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[OperatorRow]) -> None:
        table = self.query_one(DataTable)
        keep = self.highlighted
        self._rows = rows
        table.clear()
        now = self.app.now()
        for r in rows:
            table.add_row(r.name, r.role, r.status(now), key=str(r.id))
        if keep is not None:
            index = next((n for n, r in enumerate(rows) if r.id == keep.id), 0)
            table.move_cursor(row=index)

    @property
    def highlighted(self) -> OperatorRow | None:
        table = self.query_one(DataTable)
        if not self._rows or table.cursor_row is None or table.cursor_row >= len(self._rows):
            return None
        return self._rows[table.cursor_row]

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#operators-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    def _target(self) -> OperatorRow | None:
        row = self.highlighted
        if row is None:
            self._say("Highlight an operator first (arrow keys).", True)
        return row

    # --- actions ---------------------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self.reload()

    @work(exclusive=True, group="operators-form", exit_on_error=False)
    async def action_add(self) -> None:
        row = await self.app.push_screen_wait(AddOperatorModal(self.manager))
        if row is not None:
            self._say(f"✓ Added {row.name} ({row.role}): they sign in with their PIN.")
            self.reload()

    @work(exclusive=True, group="operators-form", exit_on_error=False)
    async def action_set_pin(self) -> None:
        target = self._target()
        if target is None:
            return
        if not target.active:
            self._say(f"{target.name} is disabled: their PIN cannot be set.", True)
            return
        row = await self.app.push_screen_wait(SetPinModal(self.manager, target))
        if row is not None:
            self._say(f"✓ New PIN set for {row.name}.")
            self.reload()

    @work(exclusive=True, group="operators-form", exit_on_error=False)
    async def action_disable(self) -> None:
        target = self._target()
        if target is None:
            return
        if await self.app.push_screen_wait(ConfirmDisableModal(target)):
            self._change("disable", target.id, f"✓ {target.name} is disabled: they can no longer sign in.")

    def action_unlock(self) -> None:
        target = self._target()
        if target is not None:
            self._change("unlock", target.id, f"✓ {target.name} is unlocked.")

    @work(thread=True, exclusive=True, group="operators-change", exit_on_error=False)
    def _change(self, what: str, operator_id: int, done: str) -> None:
        admin = _admin(self.app)
        change = {"disable": admin.disable, "unlock": admin.unlock}[what]
        try:
            change(self.manager, operator_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.app.call_from_thread(self._say, done)
        self.reload()


class FirstManagerScreen(_Form):
    """First run: the site has no operators. Create the first manager (name, PIN twice); dismissed with
    (operator id, PIN) so the PIN pad signs them in through its own check, or None (Esc)."""

    DEFAULT_CSS = "FirstManagerScreen {" + FORM_CSS + "}"
    FIELDS = ("op-name", "op-pin", "op-pin2")

    def __init__(self) -> None:
        super().__init__(id="first-manager")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Welcome: set up the first manager", classes="form-title")
            yield Static("This site has no operators yet. The first one is a manager, who then adds the others "
                         "(Operators, in the menu). Or run: clarity-tui operators add NAME --role manager",
                         classes="form-note", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("Name")
                yield Input(placeholder="the manager's name, e.g. Pat Lee", max_length=80, id="op-name", compact=True)
            yield from self._pin_inputs()
            yield from self._buttons("Create")

    def _save(self) -> None:
        self._create(self._value("op-name"), self._value("op-pin"), self._value("op-pin2"))

    def _set_up_meanwhile(self, message: str) -> None:
        """Nothing typed here can be saved any more, so Esc goes straight back to the pad."""
        self._refused(message)
        self._initial = self._typed()

    @work(thread=True, exclusive=True, group="first-manager", exit_on_error=False)
    def _create(self, name: str, pin: str, again: str) -> None:
        from clarity_tui.services.operator_admin import SiteAlreadySetUp
        from clarity_tui.services.pin_check import confirm_new_pin

        try:
            pin = confirm_new_pin(pin, again)
            row = _admin(self.app).add_first_manager(name, pin)
        except SiteAlreadySetUp as exc:
            self.app.call_from_thread(self._set_up_meanwhile, str(exc))
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self.dismiss, (row.id, pin))
