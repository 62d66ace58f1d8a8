"""End-of-shift report on screen: the signed-in operator's shift, or the whole day; export as CSV."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class ReportScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="report.back", tooltip="Back to the lanes board"),
        Binding("f2", "export", "Export CSV", id="report.export", tooltip="Write the report as a CSV file"),
        Binding("f3,d", "scope('day')", "Today", id="report.day", tooltip="Today, every terminal"),
        Binding("f4,s", "scope('shift')", "My shift", id="report.shift", tooltip="The signed-in operator's shift"),
    ]

    DEFAULT_CSS = """
    ReportScreen {
        #report-scroll { height: 1fr; padding: 0 1; }
        #report-note { height: 1; padding: 0 1; color: $text-muted; }
    }
    """

    def __init__(self, scope: str | None = None) -> None:
        super().__init__(id="report")
        self.scope = scope
        self.report: Any = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≋")
        with VerticalScroll(id="report-scroll"):
            yield Static("Reading…", id="report-body", markup=False)
        yield Static("", id="report-note")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "End-of-shift report"
        if self.scope is None:
            self.scope = "shift" if getattr(self.app, "_shift_id", None) else "day"
        self.query_one("#report-scroll").focus()
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def action_scope(self, scope: str) -> None:
        if scope == "shift" and not getattr(self.app, "_shift_id", None):
            self.notify("Nobody is signed in here: showing the day.", severity="warning")
            scope = "day"
        self.scope = scope
        self.reload()

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def reload(self) -> None:
        from clarity_tui.services.reports import day_report, render_text, shift_report

        app: Any = self.app
        if self.scope == "shift" and app._shift_id:
            report = shift_report(app.db, app._shift_id, now=app.now())
        else:
            report = day_report(app.db, app.today(), app.settings.site.zone)
        self.app.call_from_thread(self._show, report, render_text(report))

    def _show(self, report: Any, text: str) -> None:
        self.report = report
        from rich.text import Text

        self.query_one("#report-body", Static).update(Text(text))  # as is: indents kept, no markup
        self.query_one("#report-note", Static).update("F2 writes it as CSV · F3 today · F4 my shift")

    def action_export(self) -> None:
        if self.report is not None:
            self._export(self.report)

    @work(thread=True, exclusive=True, group="report-export", exit_on_error=False)
    def _export(self, report: Any) -> None:
        from clarity_tui.paths import data_dir

        app: Any = self.app
        folder = data_dir() / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"report-{app.boot.terminal_id}-{app.now():%Y%m%d-%H%M%S}.csv"
        path.write_text(report.to_csv(), encoding="utf-8")
        self.app.call_from_thread(self._exported, str(path))

    def _exported(self, path: str) -> None:
        self.query_one("#report-note", Static).update(f"CSV written: {path}")
        self.notify(f"CSV written: {path}", timeout=6)
