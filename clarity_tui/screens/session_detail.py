"""A session: the vehicle profile, the customer and membership, and what to do next."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label, Static

from clarity_tui.services.identity import format_phone
from clarity_tui.services.sessions import BADGE_LABELS, SessionDetail, SessionGone, SessionService
from db.models import SessionStatus


class SessionDetailScreen(Screen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="session.back"),
        Binding("f2,p", "purchase", "Purchase", id="session.purchase", tooltip="Sell a membership for this vehicle"),
        Binding("f3,m", "migrate", "Migrate", id="session.migrate", tooltip="Migrate a legacy member"),
        Binding("f4,c", "customer", "Customer", id="session.customer", tooltip="Open the customer record"),
        Binding("f6,d", "done", "Done", id="session.done", tooltip="Mark the vehicle served"),
    ]

    DEFAULT_CSS = """
    SessionDetailScreen {
        #detail-body { height: 1fr; padding: 0 1; }
        .section-title { text-style: bold; color: $accent; margin-top: 1; }
        #actions { grid-size: 4 1; grid-gutter: 0 1; height: 5; padding: 0 1; }
        #actions Button { width: 1fr; height: 5; }
    }
    """

    def __init__(self, session_id: int) -> None:
        super().__init__(id="session-detail")
        self.session_id = session_id
        self.detail: SessionDetail | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=self.app.settings.ui.show_clock, icon="≋")  # type: ignore[attr-defined]
        with VerticalScroll(id="detail-body"):
            yield Label("Vehicle", classes="section-title")
            yield Static("Loading…", id="vehicle")
            yield Label("Customer", classes="section-title")
            yield Static("", id="customer")
        with Grid(id="actions"):
            yield Button("Purchase\nMembership · F2", id="purchase", variant="success")
            yield Button("Migrate\nMembership · F3", id="migrate", variant="primary")
            yield Button("Customer\nRecord · F4", id="customer-record")
            yield Button("Mark done\nF6", id="done")
        yield Footer()

    @property
    def sessions(self) -> SessionService:
        return SessionService(self.app.db)  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self.sub_title = "Session"
        self.app.db_changed.subscribe(self, lambda _: self.load())  # type: ignore[attr-defined]
        self.load()
        self._hold(self.app.holder_label)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="session-load", exit_on_error=False)
    def load(self) -> None:
        try:
            detail = self.sessions.detail(self.session_id)
        except SessionGone as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        self.app.call_from_thread(self._show, detail)

    @work(thread=True, group="session-hold", exit_on_error=False)
    def _hold(self, holder: str | None) -> None:
        try:
            # Several terminals (issue 8): never take over or release another terminal's hold.
            if holder is None:
                self.sessions.release(self.session_id, self.app.holder_label)  # type: ignore[attr-defined]
            else:
                self.sessions.claim(self.session_id, holder)
        except SessionGone:
            pass

    def _gone(self, message: str) -> None:
        self.notify(message, severity="error")
        self.dismiss()

    def _show(self, d: SessionDetail) -> None:
        self.detail = d
        b = d.bubble
        self.sub_title = f"{d.lane_name} · {b.plate}"
        confidence = "" if b.confidence >= 0.8 else f"   [b]check plate[/b] (read {b.confidence:.0%})"
        held = ""
        me = self.app.holder_label  # type: ignore[attr-defined]
        if b.held_by and b.held_by != me:
            held = f"\n[b]Open on {b.held_by}[/b]"
        self.query_one("#vehicle", Static).update(
            f"[b]{b.plate}[/b] {d.plate_region}{confidence}\n{b.vehicle_line}\nLane: {d.lane_name}   Status: {b.status}{held}"
        )
        lines = [f"Status: [b]{BADGE_LABELS[b.badge]}[/b]"]
        if d.customer_id:
            lines.insert(0, f"[b]{b.customer_name}[/b]  #{d.customer_number}")
            lines.append(f"Phone: {format_phone(d.phone) or '-'}   Email: {d.email or '-'}")
        if d.membership:
            m = d.membership
            nb = m.next_billing_on.strftime("%b %d, %Y") if m.next_billing_on else "-"
            lines.append(f"Plan: {m.plan_name} ({m.status})   Next billing: {nb}" + ("   ⟳ pending sync" if m.pending_sync else ""))
        if d.legacy_member_id:
            nb = d.legacy_next_bill_on.strftime("%b %d, %Y") if d.legacy_next_bill_on else "-"
            lines.append(f"Legacy match: {d.legacy_name} · {d.legacy_plan} · next bill {nb}")
        if not d.customer_id and not d.legacy_member_id:
            lines.append("No customer on file for this plate.")
        self.query_one("#customer", Static).update("\n".join(lines))

    # --- actions --------------------------------------------------------------------

    def action_purchase(self) -> None:
        # The sale flow (issue 5) runs in a worker owned by this screen; see clarity_tui/screens/sale/.
        from clarity_tui.screens.sale import start_sale

        start_sale(self, self.session_id)

    def action_migrate(self) -> None:
        # The migration flow (issue 6) runs in a worker owned by this screen; see clarity_tui/screens/migration/.
        from clarity_tui.screens.migration import start_migration

        start_migration(self, self.session_id)

    def action_customer(self) -> None:
        # The session's customer record, or a search primed with the plate when nobody is on file.
        from clarity_tui.screens.customer_record import CustomerRecordScreen
        from clarity_tui.screens.customer_search import CustomerSearchScreen

        if self.detail is not None and self.detail.customer_id:
            self.app.push_screen(CustomerRecordScreen(self.detail.customer_id))
        else:
            self.app.push_screen(CustomerSearchScreen(self.detail.bubble.plate if self.detail else ""))

    def action_done(self) -> None:
        self._mark_done()

    @work(thread=True, exit_on_error=False)
    def _mark_done(self) -> None:
        try:
            self.sessions.set_status(self.session_id, SessionStatus.DONE, self.app.actor)  # type: ignore[attr-defined]
        except SessionGone as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        self.app.call_from_thread(self.notify, "Vehicle marked done.")
        self.app.call_from_thread(self.action_back)

    def action_back(self) -> None:
        self._hold(None)
        self.dismiss()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"purchase": self.action_purchase, "migrate": self.action_migrate,
                   "customer-record": self.action_customer, "done": self.action_done}
        actions[event.button.id or ""]()
