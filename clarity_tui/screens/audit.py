"""The audit trail: every change, who made it, where and when; filter by actor, action, entity, date."""

from __future__ import annotations

import json
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static


class AuditScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="audit.back", tooltip="Back to the lanes board"),
        Binding("f5", "reload", "Refresh", id="audit.refresh", tooltip="Re-read the audit trail"),
        Binding("f3", "clear_filters", "Clear filters", id="audit.clear", tooltip="Show everything again"),
        Binding("f2", "focus_filters", "Filter", id="audit.filter", tooltip="Type a filter"),
    ]

    DEFAULT_CSS = """
    AuditScreen {
        #audit-filters { height: 1; margin-bottom: 1; }
        #audit-filters Input { width: 1fr; margin-right: 1; }
        #audit-table { height: 1fr; }
        #audit-detail { height: 4; padding: 0 1; border-top: solid $panel; color: $text-muted; }
        #audit-detail.-error { color: $error; }
    }
    """

    FILTERS = (("f-actor", "actor"), ("f-action", "action: order."), ("f-entity", "entity"),
               ("f-since", "since: 2h, 7d"))

    def __init__(self) -> None:
        super().__init__(id="audit")
        self._entries: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≋")
        with Horizontal(id="audit-filters"):
            for wid, placeholder in self.FILTERS:
                yield Input(placeholder=placeholder, id=wid, compact=True)
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Audit trail"
        table = self.query_one(DataTable)
        # Fixed widths so who, what and where fit 80 columns; the change scrolls, and shows in full below.
        for label, width in (("When (UTC)", 11), ("Who @ where", 20), ("Action", 24), ("Entity", 13), ("Change", 40)):
            table.add_column(label, width=width)
        self.app.db_changed.subscribe(self, lambda _: self.reload())  # type: ignore[attr-defined]
        self.query_one(DataTable).focus()
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
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

    def _filter(self) -> Any:
        from clarity_tui.services.audit_query import AuditFilter, parse_since

        value = {wid: self.query_one(f"#{wid}", Input).value.strip() for wid, _ in self.FILTERS}
        since = parse_since(value["f-since"], self.app.now()) if value["f-since"] else None  # type: ignore[attr-defined]
        return AuditFilter(actor=value["f-actor"], action=value["f-action"], entity=value["f-entity"], since=since)

    def reload(self) -> None:
        from clarity_tui.services.audit_query import AuditQueryError

        try:
            f = self._filter()
        except AuditQueryError as exc:
            self._detail(str(exc), error=True)
            return
        self._load(f)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _load(self, f: Any) -> None:
        from clarity_tui.services.audit_query import query

        entries = query(self.app.db, f)  # type: ignore[attr-defined]
        self.app.call_from_thread(self._show, entries, f.limit)

    def _show(self, entries: list[Any], limit: int) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self._entries = {}
        for e in entries:
            key = str(e.id)
            self._entries[key] = e
            what = f"{e.entity}#{e.entity_id}" if e.entity_id else e.entity
            table.add_row(f"{e.at:%m-%d %H:%M}", f"{e.actor} @ {e.terminal or '-'}", e.action, what,
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
            self._detail(f"{entry.action} by {entry.actor} @ {entry.terminal or '-'}\n"
                         f"before: {before}\nafter:  {after}")

    def _detail(self, text: str, error: bool = False) -> None:
        detail = self.query_one("#audit-detail", Static)
        detail.update(text)
        detail.set_class(error, "-error")
