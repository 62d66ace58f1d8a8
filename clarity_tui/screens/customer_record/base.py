"""What every tab of the customer record shares: the loaded record, the service, the worker that reads
the record again, and the dialogs, confirmations and manager approvals every change goes through."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, TabbedContent

from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import ContactForm, CustomerRecord, CustomerService, NotFound
from clarity_tui.services.customers.base import saved_id
from clarity_tui.errors import UserFacingError
from clarity_tui.widgets.customer_forms import NOT_APPROVED, ConfirmDialog, FormDialog, ManagerAsk
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp

TABS = ["tab-general", "tab-related", "tab-membership", "tab-web", "tab-touch", "tab-benefits", "tab-notes",
        "tab-washes"]


def date_text(d: Any) -> str:
    return d.isoformat() if d else "-"


def list_buttons(prefix: str, new_label: str) -> Horizontal:
    """New / Edit / Delete under a tab's table: the same actions as Ctrl+N, F4 and F8."""
    return Horizontal(
        Button(f"{new_label} ^N", id=f"{prefix}-new", variant="success", action="screen.new"),
        Button("Edit F4", id=f"{prefix}-edit", action="screen.edit"),
        Button("Delete F8", id=f"{prefix}-delete", variant="error", action="screen.delete"),
        classes="tab-buttons",
    )


class RecordScreenBase(Screen[None]):
    def __init__(self, customer_id: int | None) -> None:
        super().__init__(id="customer-record")
        self.customer_id = customer_id
        self.record: CustomerRecord | None = None
        self.form_version: int | None = None
        self._prompts_built = False
        self._prompt_keys: list[str] = []
        self._filled: ContactForm | None = None  # what the General tab shows as saved
        self._leave_after_save = False
        self._notices_shown = False
        self._refill_wanted = False  # a refill asked for and not yet done (see `load`)
        self._reads = 0  # reads of the record asked for: only the newest is shown

    # --- the app's parts ------------------------------------------------------------------------

    @property
    def clarity(self) -> ClarityApp:
        return cast("ClarityApp", self.app)

    @property
    def actor(self) -> Actor:
        return self.clarity.actor

    def service(self) -> CustomerService:
        """Built per use, in the worker thread, from the terminal's services."""
        return CustomerService.from_services(services_of(self))

    # --- loading --------------------------------------------------------------------------------

    def load(self, refill: bool = False) -> None:
        """Read the record again; `refill` also puts it in the General tab's form (after a save or F3).

        Only the newest read is shown. A later reload (the change feed's, of the same commit) replaces a
        read that has not begun, and the refill wish passes to it; a replaced read that had begun still
        finishes in its thread, and may have read before the save, so what it read is dropped."""
        self._refill_wanted = self._refill_wanted or refill
        self._reads += 1
        self._read_record(self._reads)

    @work(thread=True, exclusive=True, group="record-load", exit_on_error=False)
    def _read_record(self, read: int) -> None:
        assert self.customer_id is not None
        try:
            record = self.service().record(self.customer_id)
        except NotFound as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        self.app.call_from_thread(self._show_read, record, read)

    def _show_read(self, record: CustomerRecord, read: int) -> None:
        if read != self._reads:
            return  # replaced by a newer read, which shows the record
        refill, self._refill_wanted = self._refill_wanted, False
        self._apply(record, refill)

    def _gone(self, message: str) -> None:
        self.notify(message, severity="error")
        self.dismiss()

    def _apply(self, record: CustomerRecord, refill: bool) -> None:
        """Show the record on every tab (CustomerRecordScreen)."""
        raise NotImplementedError

    def _watch_changes(self) -> None:
        """Read the record again whenever any terminal commits."""
        self.clarity.db_changed.subscribe(self, lambda _: self.load(refill=False))

    def _enable_record_tabs(self) -> None:
        tabs = self.query_one(TabbedContent)
        for tab in TABS[1:]:
            tabs.enable_tab(tab)
        self.query_one("#general-delete", Button).disabled = False

    # --- the loaded record --------------------------------------------------------------------------

    def _need_record(self) -> CustomerRecord | None:
        if self.record is None:
            self.notify("Save the customer first (F2).", severity="warning")
        return self.record

    def _loaded(self) -> CustomerRecord:
        """The record, for the actions that run only once `_need_record` found it."""
        assert self.record is not None
        return self.record

    def _loaded_id(self) -> int:
        return saved_id(self._loaded().customer)

    def _active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _selected(self, table_id: str) -> int | None:
        table = self.query_one(f"#{table_id}", DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(key.value) if key.value else None

    def _refill_table(self, table_id: str, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        cursor = table.cursor_row
        table.clear()
        for key, values in rows:
            table.add_row(*values, key=key)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    # --- changes: a dialog, a confirmation, a manager's approval, then the service in a worker ----------

    def _dialog(self, dialog: FormDialog, message: str | Callable[[Any], None]) -> None:
        def closed(result: Any) -> None:
            if result is None:
                return
            if callable(message):
                message(result)
            else:
                self.notify(message)
            self.load(refill=False)

        self.app.push_screen(dialog, closed)

    def _confirm_then(self, question: str, fn: Callable[[CustomerService], Any], message: str,
                      after: Callable[[], None] | None = None, yes: str = "Delete") -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self._run(fn, message, after)

        self.app.push_screen(ConfirmDialog(question, yes=yes), answered)

    @work(thread=True, group="record-action", exit_on_error=False)
    def _run(self, fn: Callable[[CustomerService], Any], message: str, after: Callable[[], None] | None = None) -> None:
        try:
            fn(self.service())
        except UserFacingError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not done", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, message)
        if after is not None:
            after()
        else:
            self.app.call_from_thread(self.load, False)

    @work(exclusive=True, group="record-approve", exit_on_error=False)
    async def _approve_then_run(self, ask: ManagerAsk, fn: Callable[[CustomerService, Actor], Any], message: str,
                                after: Callable[[], None] | None = None) -> None:
        """A manager-only action: the signed-in actor if they may, else a Manager PIN in place (issue 15);
        the service call then runs as that actor, and checks the permission again."""
        from clarity_tui.services.permissions import allowed
        from clarity_tui.widgets.manager_pin import manager_approval

        who = self.actor
        if not allowed(who, ask.permission):
            manager = await manager_approval(self.app, ask.action, why=ask.why, entity=ask.entity, entity_id=ask.entity_id)
            if manager is None:
                self.notify(NOT_APPROVED)
                return
            who = manager
        self._run(lambda svc: fn(svc, who), message, after)
