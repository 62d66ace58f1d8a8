"""The audit trail: every change, who made it, where and when; filter by actor, action, entity, date.

audit.view is for managers and support: anyone else gets "Manager PIN" (F6, or the button) and reads
the trail as the manager who approved with their PIN (widgets/manager_pin, issue 15)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.audit_query import AuditFilter


# Column widths: who, what and where fit 80 columns; the change scrolls, and shows in full below.
COLUMNS = (("When (UTC)", 11), ("Who @ where", 18), ("Action", 24), ("Entity", 15), ("Change", 40))


def fit(text: str, width: int) -> str:
    """Text cut to `width` with a visible "…": a cell is never cut silently."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def entity_cell(entity: str, entity_id: Any, width: int) -> str:
    """'membership#115' in `width` columns: the name gives way ("memb…#115"), the id is never cut."""
    if not entity_id:
        return fit(entity, width)
    tail = f"#{entity_id}"
    if len(entity) + len(tail) <= width:
        return entity + tail
    room = width - len(tail)
    return fit(entity, room) + tail if room >= 2 else fit(tail, width)


class AuditScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="audit.back", tooltip="Back to the lanes board"),
        Binding("f5", "reload", "Refresh", id="audit.refresh", tooltip="Re-read the audit trail"),
        Binding("f3", "clear_filters", "Clear filters", id="audit.clear", tooltip="Show everything again"),
        Binding("f2", "focus_filters", "Filter", id="audit.filter", tooltip="Type a filter"),
        Binding("f6", "manager_pin", "Manager PIN", id="audit.manager_pin",
                tooltip="A manager approves with their PIN, and the trail opens"),
    ]

    DEFAULT_CSS = """
    AuditScreen {
        #audit-filters { height: 1; margin-bottom: 1; }
        #audit-filters Input { width: 1fr; margin-right: 1; }
        #audit-table { height: 1fr; }
        #audit-detail { height: 4; padding: 0 1; border-top: solid $panel; color: $text-muted; }
        #audit-detail.-error { color: $error; }
        #audit-manager-pin { display: none; margin-left: 1; }
        #audit-manager-pin.-shown { display: block; }
    }
    """

    FILTERS = (("f-actor", "actor"), ("f-action", "action: order."), ("f-entity", "entity"),
               ("f-since", "since: 2h, 7d"))

    def __init__(self) -> None:
        super().__init__(id="audit")
        self._entries: dict[str, Any] = {}
        self.viewer: Actor | None = None  # the approving manager, after a Manager PIN

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        with Horizontal(id="audit-filters"):
            for wid, placeholder in self.FILTERS:
                yield Input(placeholder=placeholder, id=wid, compact=True)
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-detail")
        yield Button("Manager PIN · F6", id="audit-manager-pin", variant="warning", compact=True,
                     action="screen.manager_pin")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Audit trail"
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.app.db_changed.subscribe(self, lambda _: self.reload())
        self.query_one(DataTable).focus()
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self.reload()

    def _may_view(self) -> bool:
        from clarity_tui.services.permissions import Permission, allowed

        return self.viewer is not None or allowed(self.app.actor, Permission.AUDIT_VIEW)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "manager_pin":
            return not self._may_view()  # only offered to whoever may not read the trail
        return True

    @work(exclusive=True, group="audit-approve", exit_on_error=False)
    async def action_manager_pin(self) -> None:
        from clarity_tui.widgets.manager_pin import manager_approval

        if self._may_view():
            return
        manager = await manager_approval(self.app, "audit.view",
                                         why="Open the audit trail: every change, who made it, where and when.")
        if manager is None:
            self.notify("Not approved by a manager: the audit trail stays closed.")
            return
        self.viewer = manager
        self.sub_title = f"Audit trail · approved by {manager.name}"
        self.query_one("#audit-manager-pin", Button).remove_class("-shown")
        self.refresh_bindings()
        self.query_one(DataTable).focus()
        self.reload()

    def action_focus_filters(self) -> None:
        self.query_one("#f-actor", Input).focus()

    def action_clear_filters(self) -> None:
        for wid, _ in self.FILTERS:
            self.query_one(f"#{wid}", Input).value = ""
        self.reload()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        if event.input.id != "f-since":  # a half-typed date is not an error yet
            self.reload()

    def _filter(self) -> AuditFilter:
        from clarity_tui.services.audit_query import AuditFilter, parse_since

        value = {wid: self.query_one(f"#{wid}", Input).value.strip() for wid, _ in self.FILTERS}
        since = parse_since(value["f-since"], self.app.now()) if value["f-since"] else None
        return AuditFilter(actor=value["f-actor"], action=value["f-action"], entity=value["f-entity"], since=since)

    def reload(self) -> None:
        from clarity_tui.services.audit_query import AuditQueryError

        try:
            f = self._filter()
        except AuditQueryError as exc:
            self._detail(str(exc), error=True)
            return
        self._load(f, self.viewer or self.app.actor)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load(self, f: AuditFilter, actor: Actor) -> None:
        from clarity_tui.services.audit_query import query
        from clarity_tui.services.permissions import PermissionDenied

        try:
            entries = query(services_of(self).db, f, actor=actor)
        except PermissionDenied as exc:  # audit.view: managers and support
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self._show, entries, f.limit)

    def _refused(self, message: str) -> None:
        self.query_one(DataTable).clear()
        self._entries = {}
        self._detail(message, error=True)
        if not self._may_view():
            self.query_one("#audit-manager-pin", Button).add_class("-shown")
            self._detail(f"{message} A manager can approve: Manager PIN (F6).", error=True)

    def _show(self, entries: list[Any], limit: int) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self._entries = {}
        for e in entries:
            key = str(e.id)
            self._entries[key] = e
            widths = dict(COLUMNS)
            table.add_row(f"{e.at:%m-%d %H:%M}", fit(f"{e.actor} @ {e.terminal or '-'}", widths["Who @ where"]),
                          fit(e.action, widths["Action"]), entity_cell(e.entity, e.entity_id, widths["Entity"]),
                          e.change_summary(40), key=key)
        more = f" (newest {limit}: narrow the filters)" if len(entries) >= limit else ""
        self._detail(f"{len(entries)} rows{more}. Enter on a row shows before and after." if entries
                     else "No audit rows match these filters.")

    @on(DataTable.RowHighlighted)
    @on(DataTable.RowSelected)
    def _row(self, event: Any) -> None:
        entry = self._entries.get(event.row_key.value) if event.row_key is not None else None
        if entry is not None:
            before = json.dumps(entry.before, default=str) if entry.before else "-"
            after = json.dumps(entry.after, default=str) if entry.after else "-"
            what = f"{entry.entity}#{entry.entity_id}" if entry.entity_id else entry.entity
            self._detail(f"{entry.action} on {what} by {entry.actor} @ {entry.terminal or '-'}\n"
                         f"before: {before}\nafter:  {after}")

    def _detail(self, text: str, error: bool = False) -> None:
        detail = self.query_one("#audit-detail", Static)
        detail.update(text)
        detail.set_class(error, "-error")
