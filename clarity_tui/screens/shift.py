"""Who's on: every operator signed in, at which terminal, since when, last active. Live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.operators import ShiftRow


class ShiftScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="shifts.back", tooltip="Back to the lanes board"),
        Binding("f5", "reload", "Refresh", id="shifts.refresh", tooltip="Re-read the shifts"),
        Binding("f6,u", "unlock", "Unlock", id="shifts.unlock", tooltip="Managers: lift every PIN lockout"),
    ]

    DEFAULT_CSS = """
    ShiftScreen {
        #shift-table { height: 1fr; }
        #shift-note { height: 2; padding: 0 1; color: $text-muted; }
    }
    """

    def __init__(self) -> None:
        super().__init__(id="shifts")

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield DataTable(id="shift-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="shift-note")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Who's on"
        table = self.query_one(DataTable)
        table.add_columns("Operator", "Role", "Terminal", "Since", "Last active")
        self.app.db_changed.subscribe(self, lambda _: self.reload())
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, group="shifts", exit_on_error=False)
    def reload(self) -> None:
        from clarity_tui.services.operators import OperatorService

        svc = OperatorService.from_services(services_of(self))
        now = self.app.now()
        locked = [c.name for c in svc.choices() if c.locked_until and c.locked_until > now]
        self.app.call_from_thread(self._show, svc.shifts(open_only=True), locked)

    @work(thread=True, exclusive=True, group="shifts-unlock", exit_on_error=False)
    def action_unlock(self) -> None:
        from clarity_tui.services.operators import OperatorService, SignInError

        svc = OperatorService.from_services(services_of(self))
        now = self.app.now()
        locked = [c for c in svc.choices() if c.locked_until and c.locked_until > now]
        try:
            for choice in locked:
                svc.unlock(choice.id, self.app.actor)
        except SignInError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        names = ", ".join(c.name for c in locked) or "nobody was locked out"
        self.app.call_from_thread(self.notify, f"Unlocked: {names}.")
        self.reload()

    def _show(self, rows: list[ShiftRow], locked: list[str]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        here = self.app.boot_config.terminal_id
        for r in rows:
            terminal = f"{r.terminal} (here)" if r.terminal == here else r.terminal
            table.add_row(r.operator, r.role, terminal, f"{r.signed_in_at:%H:%M}", f"{r.last_activity_at:%H:%M}",
                          key=str(r.shift_id))
        count = len(rows)
        note = (f"{count} signed in (times UTC). Support over SSH shows as 'name (ssh)'." if count
                else "Nobody is signed in.")
        if locked:
            note += f"\nLocked out: {', '.join(locked)} (a manager presses U to unlock)."
        self.query_one("#shift-note", Static).update(note)
