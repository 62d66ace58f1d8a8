"""End-of-shift report on screen: the signed-in operator's shift, or the whole day; export as CSV.

The whole day (report.view) is for managers and support: an attendant gets "Manager PIN" (F6, or the
button) and reads it as the manager who approved with their PIN (widgets/manager_pin, issue 15)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.reports import ShiftReport


class ReportScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="report.back", tooltip="Back to the lanes board"),
        Binding("f2", "export", "Export CSV", id="report.export", tooltip="Write the report as a CSV file"),
        Binding("f3,d", "scope('day')", "Today", id="report.day", tooltip="Today, every terminal"),
        Binding("f4,s", "scope('shift')", "My shift", id="report.shift", tooltip="The signed-in operator's shift"),
        Binding("f6", "manager_pin", "Manager PIN", id="report.manager_pin",
                tooltip="A manager approves with their PIN, and the whole day's report opens"),
    ]

    DEFAULT_CSS = """
    ReportScreen {
        #report-scroll { height: 1fr; padding: 0 1; }
        #report-note { height: 1; padding: 0 1; color: $text-muted; }
        #report-manager-pin { display: none; margin-left: 1; }
        #report-manager-pin.-shown { display: block; }
    }
    """

    def __init__(self, scope: str | None = None) -> None:
        super().__init__(id="report")
        self.scope = scope
        self.report: ShiftReport | None = None
        self.viewer: Actor | None = None  # the approving manager, after a Manager PIN

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        with VerticalScroll(id="report-scroll"):
            yield Static("Reading…", id="report-body", markup=False)
        yield Static("", id="report-note")
        yield Button("Manager PIN · F6", id="report-manager-pin", variant="warning", compact=True,
                     action="screen.manager_pin")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "End-of-shift report"
        if self.scope is None:
            self.scope = "shift" if self.app.operator_session.shift_id else "day"
        self.query_one("#report-scroll").focus()
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def _may_view(self) -> bool:
        from clarity_tui.services.permissions import Permission, allowed

        return self.viewer is not None or allowed(self.app.actor, Permission.REPORT_VIEW)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "manager_pin":
            return not self._may_view()  # only offered to whoever may not read the whole day
        return True

    @work(exclusive=True, group="report-approve", exit_on_error=False)
    async def action_manager_pin(self) -> None:
        from clarity_tui.widgets.manager_pin import manager_approval

        if self._may_view():
            return
        manager = await manager_approval(self.app, "report.view",
                                         why="Open the whole day's report: every terminal, every operator's shift.")
        if manager is None:
            self.notify("Not approved by a manager: the day's report stays closed.")
            return
        self.viewer = manager
        self.sub_title = f"End-of-shift report · approved by {manager.name}"
        self.query_one("#report-manager-pin", Button).remove_class("-shown")
        self.refresh_bindings()
        self.scope = "day"
        self.reload()

    def action_scope(self, scope: str) -> None:
        if scope == "shift" and not self.app.operator_session.shift_id:
            self.notify("Nobody is signed in here: showing the day.", severity="warning")
            scope = "day"
        self.scope = scope
        self.reload()

    @work(thread=True, exclusive=True, group="report", exit_on_error=False)
    def reload(self) -> None:
        from clarity_tui.services.permissions import PermissionDenied
        from clarity_tui.services.reports import day_report, render_text, shift_report

        services = services_of(self)
        actor = self.viewer or self.app.actor
        shift_id = self.app.operator_session.shift_id
        try:
            if self.scope == "shift" and shift_id:
                report = shift_report(services.db, shift_id, now=services.now(), actor=actor)
            else:
                report = day_report(services.db, services.today(), services.settings.site.zone, actor=actor)
        except PermissionDenied as exc:  # the day and others' shifts: report.view; one's own shift: report.own_shift
            self.app.call_from_thread(self._refused, str(exc))
            return
        self.app.call_from_thread(self._show, report, render_text(report))

    def _refused(self, message: str) -> None:
        self._show(None, message)
        if not self._may_view():
            self.query_one("#report-manager-pin", Button).add_class("-shown")
            self.query_one("#report-note", Static).update("A manager can approve: Manager PIN (F6) · F4 my shift")

    def _show(self, report: ShiftReport | None, text: str) -> None:
        self.report = report
        from rich.text import Text

        self.query_one("#report-body", Static).update(Text(text))  # as is: indents kept, no markup
        self.query_one("#report-note", Static).update("F2 writes it as CSV · F3 today · F4 my shift")

    def action_export(self) -> None:
        from clarity_tui.support_palette import NO_FILES, file_writes_allowed

        if not file_writes_allowed(self.app):  # support over SSH writes no files (issue 15)
            self.notify(NO_FILES, severity="warning")
            return
        if self.report is not None:
            self._export(self.report)

    @work(thread=True, exclusive=True, group="report-export", exit_on_error=False)
    def _export(self, report: ShiftReport) -> None:
        from clarity_tui.paths import data_dir

        folder = data_dir() / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"report-{self.app.boot_config.terminal_id}-{self.app.now():%Y%m%d-%H%M%S}.csv"
        path.write_text(report.to_csv(), encoding="utf-8")
        self.app.call_from_thread(self._exported, str(path))

    def _exported(self, path: str) -> None:
        self.query_one("#report-note", Static).update(f"CSV written: {path}")
        self.notify(f"CSV written: {path}", timeout=6)
