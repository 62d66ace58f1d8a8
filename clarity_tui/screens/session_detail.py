"""A session: the vehicle profile, the customer and membership, and what to do next."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Button, Label, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.messages import OpenCustomer, SearchCustomers, StartMigration, StartSale
from clarity_tui.screens.session_lookalike import LOOKALIKE_CSS, SessionLookalike
from clarity_tui.screens.session_recovery import RECOVERY_CSS, SessionRecovery
from clarity_tui.services.identity import display_phone
from clarity_tui.services.permissions import Permission, PermissionDenied, allowed, refusal
from clarity_tui.services.sessions import SessionDetail, SessionGone, SessionService
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of
from clarity_tui.widgets.text import show_text
from db.models import SessionStatus

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp


class SessionDetailScreen(SessionLookalike, SessionRecovery, Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="session.back"),
        Binding("f2,p", "purchase", "Purchase", id="session.purchase", tooltip="Sell a membership for this vehicle"),
        Binding("f3,m", "migrate", "Migrate", id="session.migrate", tooltip="Migrate a legacy member"),
        Binding("f4,c", "customer", "Customer", id="session.customer", tooltip="Open the customer record"),
        Binding("f6,d", "done", "Done", id="session.done", tooltip="Mark the vehicle served"),
        Binding("f8,u", "update_card", "Update card", id="session.update_card",
                tooltip="Past due: read a new card on the reader and pay the open invoice with it"),
        Binding("f5,l", "correct_plate", "Correct plate", id="session.correct_plate",
                tooltip="The camera misread a customer's car: correct the plate to theirs"),
        Binding("w", "single_wash", "Single wash", id="session.single_wash",
                tooltip="Sell a single wash (a package and extras), or a member's extras"),
        Binding("g", "send_wash", "Send to tunnel", id="session.send_wash",
                tooltip="A paid or entitled car: send the wash to the tunnel and open the gate"),
        Binding("r", "send_wash", "Retry tunnel", show=False, id="session.retry_tunnel"),
    ]

    DEFAULT_CSS = """
    SessionDetailScreen {
        #detail-body { height: 1fr; padding: 0 1; }
        .section-title { text-style: bold; color: $accent; margin-top: 1; }
        #session-notice { display: none; height: auto; max-height: 4; padding: 0 1; color: $warning; text-style: bold; }
        #session-notice.-shown { display: block; }
        #session-wash { height: auto; }
        #session-wash.-limit { color: $warning; text-style: bold; }
        #actions { grid-size: 3 2; grid-gutter: 0 1; height: 6; padding: 0 1; }
        #actions Button { width: 1fr; height: 3; }
    """ + RECOVERY_CSS + LOOKALIKE_CSS + "}"

    # The buttons the signed-in role may be refused (the services check; this only greys them out).
    NEEDS = {"purchase": Permission.SELL, "migrate": Permission.MIGRATE, "done": Permission.SESSION_STATUS,
             "single-wash": Permission.SELL}

    def __init__(self, session_id: int) -> None:
        super().__init__(id="session-detail")
        self.session_id = session_id
        self.detail: SessionDetail | None = None
        self._sending = False

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=services_of(self).settings.ui.show_clock, icon="≋")
        yield Static("", id="session-notice", markup=False)  # the customer's operator notices (issue 14)
        with VerticalScroll(id="detail-body"):
            yield Label("Vehicle", classes="section-title")
            yield Static("Loading…", id="vehicle")
            yield Label("Customer", classes="section-title")
            yield Static("", id="customer")
            yield self._benefits_static()  # a member's extra benefits (issue 14, seed 002)
            yield Static("", id="session-wash", markup=False)  # the visit or paid wash, LIMIT, the tunnel (issue 18)
            yield self.lookalike_info()  # a misread of a customer's plate (issue 14)
            yield self.recovery_info()
        yield self.recovery_button()
        with Grid(id="actions"):
            yield Button("Purchase · F2", id="purchase", variant="success", action="screen.purchase")
            yield Button("Migrate · F3", id="migrate", variant="primary", action="screen.migrate")
            yield Button("Customer record · F4", id="customer-record", action="screen.customer")
            yield Button("Mark done · F6", id="done", action="screen.done")
            yield Button("Single wash · W", id="single-wash", action="screen.single_wash")
            yield Button("Send to tunnel · G", id="send-wash", action="screen.send_wash")
        yield KeyFooter()

    @property
    def sessions(self) -> SessionService:
        services = services_of(self)
        return SessionService.from_services(services)

    def on_mount(self) -> None:
        self.sub_title = "Session"
        self.app.db_changed.subscribe(self, lambda _: self.load())
        self.load()
        self._hold(self.app.holder_label)

    @work(thread=True, exclusive=True, group="session-load", exit_on_error=False)
    def load(self) -> None:
        try:
            detail = self.sessions.detail(self.session_id)
        except SessionGone as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        self.app.call_from_thread(self._show, detail)
        from clarity_tui.services.notices import notice_line, operator_notices

        services = services_of(self)
        self.app.call_from_thread(self._show_notice, notice_line(operator_notices(services.db, detail.customer_id)))
        from clarity_tui.services.member_benefits import MemberBenefits, extras_line

        # The extras of the car's membership (and the customer's account benefits), not another membership's.
        extras = MemberBenefits(services.db, services.today).extras(detail.membership.membership_id if detail.membership else None)
        self.app.call_from_thread(self._show_benefits, extras_line(extras))
        self.app.call_from_thread(self._show_wash, *self._wash_lines())

    def _wash_lines(self) -> tuple[str, bool]:
        """(the session's wash line, whether it is a refusal): the visit or paid wash and its tunnel status,
        or LIMIT with the last visit's time, or what a lapsed member is offered. From a worker."""
        from clarity_tui.services.session_wash import session_wash
        from clarity_tui.services.visits import VisitService, VisitState

        services = services_of(self)
        visits = VisitService.from_services(services)
        plate = self.detail.bubble.plate if self.detail is not None else None
        washes = visits.history(plate=plate, limit=3) if plate else []
        history = ("\nWashes: " + " · ".join(
            f"{w.at:%b %d %H:%M} {w.lane_name or '-'} {w.package_name or w.kind}" for w in washes)) if washes else ""
        wash = session_wash(services.db, self.session_id)
        if wash is not None:
            return wash.line + history, False
        decision = visits.status(self.session_id)
        if decision.state == VisitState.LIMIT:
            return f"LIMIT: {decision.message or 'over the plan limit'}  Single wash: W.{history}", True
        if decision.state == VisitState.PAST_DUE:
            return f"PAST DUE: Update card (F8) to let the car through, or sell a single wash (W).{history}", True
        if decision.state == VisitState.EXPIRED:
            # An ended membership has no open invoice a new card could pay: the new card joins it again.
            return (f"EXPIRED: rejoin with a new card on the reader (P), or sell a single wash (W).{history}",
                    True)
        return history.lstrip("\n"), False

    def _show_wash(self, line: str, refusal: bool) -> None:
        try:
            widget = self.query_one("#session-wash", Static)
        except NoMatches:
            return  # the screen closed while its worker ran
        show_text(widget, line)
        widget.display = bool(line)
        widget.set_class(refusal, "-limit")

    @staticmethod
    def _benefits_static() -> Static:
        widget = Static("", id="session-benefits", markup=False)
        widget.display = False
        return widget

    def _show_benefits(self, line: str) -> None:
        try:
            widget = self.query_one("#session-benefits", Static)
        except NoMatches:
            return  # the screen closed while its worker ran (a fast F3 or Esc)
        show_text(widget, f"Extra benefits: {line}" if line else "")
        widget.display = bool(line)

    def _show_notice(self, line: str) -> None:
        try:
            notice = self.query_one("#session-notice", Static)
        except NoMatches:
            return  # the screen closed while its worker ran (a fast F3 or Esc)
        show_text(notice, line)
        notice.set_class(bool(line), "-shown")

    @work(thread=True, group="session-hold", exit_on_error=False)
    def _hold(self, holder: str | None) -> None:
        try:
            # Several terminals (issue 8): never take over or release another terminal's hold.
            if holder is None:
                self.sessions.release(self.session_id, self.app.holder_label)
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
        me = self.app.holder_label
        if b.held_by and b.held_by != me:
            held = f"\n[b]Open on {b.held_by}[/b]"
        show_text(
            self.query_one("#vehicle", Static),
            f"[b]{b.plate}[/b] {d.plate_region}{confidence}\n{b.vehicle_line}\nLane: {d.lane_name}   Status: {b.status}{held}"
        )
        lines = [f"Status: [b]{b.badge_label}[/b]"]
        if d.customer_id:
            lines.insert(0, f"[b]{b.customer_name}[/b]  #{d.customer_number}")
            lines.append(f"Phone: {display_phone(d.phone, services_of(self).settings.site.phone_region) or '-'}   Email: {d.email or '-'}")
        if d.membership:
            m = d.membership
            nb = m.next_billing_on.strftime("%b %d, %Y") if m.next_billing_on else "-"
            lines.append(f"Plan: {m.plan_name} ({m.status})   Next billing: {nb}" + ("   ⟳ pending sync" if m.pending_sync else ""))
        if d.legacy_member_id:
            nb = d.legacy_next_bill_on.strftime("%b %d, %Y") if d.legacy_next_bill_on else "-"
            lines.append(f"Legacy match: {d.legacy_name} · {d.legacy_plan} · next bill {nb}")
        if not d.customer_id and not d.legacy_member_id:
            lines.append("No customer on file for this plate.")
        show_text(self.query_one("#customer", Static), "\n".join(lines))
        for button, why in ((b, self._refused(b)) for b in self.NEEDS):
            widget = self.query_one(f"#{button}", Button)
            widget.disabled, widget.tooltip = why is not None, why
        self.load_recovery()
        self.load_lookalike()

    def _refused(self, button: str) -> str | None:
        """Why the signed-in role may not take this action (None: it may)."""
        actor, permission = self.app.actor, self.NEEDS[button]
        return None if allowed(actor, permission) else refusal(actor, permission)

    def _told_refused(self, button: str) -> bool:
        why = self._refused(button)
        if why is not None:
            self.notify(why, title="Not allowed", severity="error", timeout=8)
        return why is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.recovery_allows(action) and self.lookalike_allows(action)

    # --- actions --------------------------------------------------------------------

    def action_purchase(self) -> None:
        # The sale flow (issue 5) runs in a worker owned by this screen (the app starts it; a LEGACY bubble
        # is offered Migrate first); see clarity_tui/screens/sale/.
        if not self._told_refused("purchase"):
            self.post_message(StartSale(self.session_id))

    def action_migrate(self) -> None:
        # The migration flow (issue 6) runs in a worker owned by this screen; see clarity_tui/screens/migration/.
        if not self._told_refused("migrate"):
            self.post_message(StartMigration(self.session_id))

    def action_customer(self) -> None:
        # The session's customer record, or a search primed with the plate when nobody is on file.
        if self.detail is not None and self.detail.customer_id:
            self.post_message(OpenCustomer(self.detail.customer_id))
        else:
            self.post_message(SearchCustomers(self.detail.bubble.plate if self.detail else ""))

    def action_done(self) -> None:
        if not self._told_refused("done"):
            self._mark_done()

    @work(thread=True, exit_on_error=False)
    def _mark_done(self) -> None:
        try:
            self.sessions.set_status(self.session_id, SessionStatus.DONE, self.app.actor)
        except SessionGone as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        except PermissionDenied as exc:  # signed out or over meanwhile: the service has the last word
            self.app.call_from_thread(self.notify, str(exc), title="Not allowed", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, "Vehicle marked done.")
        self.app.call_from_thread(self.action_back)

    def action_single_wash(self) -> None:
        if self._told_refused("single-wash"):
            return
        from clarity_tui.screens.wash_sale import WashSaleScreen

        def after(outcome: str | None) -> None:
            if outcome == "join":  # "Join today": the sale flow picks up the order made with the wash's credit
                self.post_message(StartSale(self.session_id))
            self.load()

        self.app.push_screen(WashSaleScreen(self.session_id), after)

    def action_send_wash(self) -> None:
        if self._sending:
            return  # a second G while the controller answers: one dispatch
        self._sending = True
        self.notify("Sending the wash to the tunnel…", timeout=3)
        self._send_wash(asyncio.get_running_loop())

    @work(thread=True, exclusive=True, group="session-send", exit_on_error=False)
    def _send_wash(self, loop: asyncio.AbstractEventLoop) -> None:
        from clarity_tui.screens.checkout_shared.common import actor_of, devices_of
        from clarity_tui.services.tunnel_dispatch import TunnelDispatch

        try:
            outcome = TunnelDispatch.from_services(services_of(self), devices_of(self).tunnel, actor_of(self),
                                                   loop=loop).dispatch_session(self.session_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Tunnel", severity="error", timeout=10)
            return
        finally:
            self._sending = False
        if outcome.status == "queued":
            self.app.call_from_thread(self.notify, outcome.message or "The car is queued: R retries.",
                                      title="Tunnel", severity="error", timeout=10)
        else:
            self.app.call_from_thread(self.notify, outcome.message or "Sent: the gate is open.", title="Tunnel")
        self.load()

    def action_back(self) -> None:
        self._hold(None)
        self.dismiss()
