"""The Clarity App: its keys, its navigation and its command palette.

Everything else has a module of its own, which the App holds together:
- the boot (clarity_tui/boot.py): given a BootConfig (the CLI's path) the board paints from one plain-SQL
  read, then a thread worker loads the settings, the database and the devices. Tests inject `settings`
  and `db` and skip the loading. Either way the App then holds its one wiring, `self.services`
  (clarity_tui/wiring.py), which screens reach through `services_of(self)`;
- who is signed in (clarity_tui/operator_session.py): sign-in, idle sign-out, shifts, support sessions;
- the live feeds (app_live.py: the change feed, the devices, the simulator) and the money loops
  (app_billing.py); crashes (crash_guard.py), screens opened twice (screen_open.py), keys typed ahead
  (typeahead.py) and support sessions' file writes (support_palette.py).

Screens never import each other: they post the messages of clarity_tui/messages.py, and the App's
handlers open the screens (imported when first needed, so the first paint stays light).

A little over 400 lines: the keys, the actions and message handlers that open screens, and the palette
that offers the same actions belong together; the rest already lives in the modules above.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.events import Resize
from textual.geometry import Size
from textual.screen import Screen
from textual.signal import Signal

from clarity_tui.app_billing import BillingMixin
from clarity_tui.app_tunnel import TunnelMixin
from clarity_tui.app_live import LiveMixin
from clarity_tui.boot import BoardBeforeBoot, Booted, BootFailed, boot, config_of
from clarity_tui.crash_guard import CrashGuard
from clarity_tui.db_stack import (
    abandon_loading,
    allow_loading,
    database_stack_loaded,
    hold_until_first_paint,
    import_database_stack,
)
from clarity_tui.messages import (
    CreateFirstManager,
    OpenCustomer,
    OpenSession,
    SearchCustomers,
    StartMigration,
    StartSale,
)
from clarity_tui.operator_session import OperatorSession
from clarity_tui.screen_open import ScreenOpenGuard, screen_is_open
from clarity_tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from clarity_tui.support_palette import SupportGuard
from clarity_tui.typeahead import TypeaheadMixin  # issue 14: keys typed ahead land where they belong
from clarity_tui.wiring import Services, StillStarting, services_of, utc_now

if TYPE_CHECKING:  # the heavy modules load after the first paint
    from textual.await_complete import AwaitComplete

    from clarity_tui.bootconfig import BootConfig
    from clarity_tui.config import Settings
    from clarity_tui.devices import DeviceSet
    from clarity_tui.messaging.base import SmsProvider
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.screens.session_detail import SessionDetailScreen
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.mailer import MailSender
    from clarity_tui.simulator.scenario import Scenario
    from db.changefeed import ChangeFeed
    from db.engine import Database

log = logging.getLogger(__name__)
_PROCESS_START = time.perf_counter()
BOOT_WAIT_SECONDS = 60.0


class ClarityApp(TypeaheadMixin, ScreenOpenGuard, CrashGuard, LiveMixin, BillingMixin, TunnelMixin, SupportGuard,
                 App[None]):
    # Absolute, so subclasses elsewhere (tests, bench) find the stylesheet too.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "Clarity"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        # priority: a modal screen (the PIN pad, an error) ends the binding chain, and Quit must work there too.
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Leave Clarity", priority=True),
        # Ctrl+P too (the README's key): Textual adds its own ctrl+p only when no binding runs the palette.
        Binding("f10,ctrl+p", "command_palette", "Menu", id="app.menu", tooltip="Open the command palette"),
        Binding("f9", "hardware", "Hardware", id="app.hardware", tooltip="Devices: status and tests"),
        Binding("f7,ctrl+f", "search_customers", "Search", id="app.search_customers", tooltip="Search customers"),
        # Site (issue 8): operators, shifts, audit trail, end-of-shift report.
        Binding("ctrl+o", "sign_out", "Sign out", show=False, id="app.sign_out", tooltip="Sign out; your work is kept"),
        Binding("ctrl+w", "shifts", "Who's on", show=False, id="app.shifts", tooltip="Who is signed in where"),
        Binding("ctrl+u", "audit", "Audit", show=False, id="app.audit", tooltip="Browse the audit trail"),
        Binding("ctrl+e", "shift_report", "Report", show=False, id="app.report", tooltip="End-of-shift report"),
        Binding("ctrl+d", "dashboard", "Dashboard", show=False, id="app.dashboard",
                tooltip="Managers: conversion, visits, renewals, churn and sales per operator over 30 days"),
        Binding("ctrl+k", "operators", "Operators", show=False, id="app.operators",
                tooltip="Managers: add operators, set PINs, unlock, disable"),
    ]

    def __init__(
        self,
        settings: Settings | None = None,
        db: Database | None = None,
        scenario: Scenario | None = None,
        actor: Actor | None = None,
        change_feed: ChangeFeed | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        boot: BootConfig | None = None,
        require_signin: bool = False,
        support_user: str | None = None,
        gateway: PaymentGateway | None = None,
        sms: SmsProvider | None = None,
        mailer: MailSender | None = None,
    ) -> None:
        super().__init__()
        if boot is None:
            if settings is None or db is None:
                raise TypeError("ClarityApp needs settings and db, or a BootConfig")
            boot = config_of(settings)
        self.boot_config = boot
        # Injected so wait times and snapshots can run on a fixed clock.
        self.now: Callable[[], dt.datetime] = clock or utc_now
        # Operators (issue 8): the CLI asks for a PIN (require_signin); tests inject an actor instead.
        self.operator_session = OperatorSession(self, require_signin=require_signin, support_user=support_user,
                                                actor=actor)
        # The one wiring (clarity_tui/wiring.py): None until the boot has the settings and the database.
        self.services: Services | None = None
        self.boot_error: str | None = None  # why the boot failed: the CLI prints it once the screen is gone
        self._services_ready = threading.Event()  # set when the boot is done, or has failed
        self._boot_requested = False
        self._injected = (gateway, sms, mailer)
        self.scenario = scenario
        self.devices: DeviceSet | None = None
        self._feed = change_feed
        self._board_before_boot = BoardBeforeBoot(boot.database_url)
        self.db_changed: Signal[None] = Signal(self, "db-changed")
        self.devices_changed: Signal[None] = Signal(self, "devices-changed")
        # Published once the full settings, database and devices are there.
        self.booted: Signal[None] = Signal(self, "booted")
        self.animation_level = "none"
        self._started = _PROCESS_START
        if settings is not None and db is not None:
            self._adopt(Booted.of(settings, db, scenario))

    # --- the boot (clarity_tui/boot.py) -----------------------------------------------------------------

    def _adopt(self, booted: Booted) -> None:
        self.scenario, self.devices = booted.scenario, booted.devices
        gateway, sms, mailer = self._injected
        self.services = Services(booted.settings, booted.db, clock=self.now, gateway=gateway, messaging=sms,
                                 mailer=mailer)
        booted.devices.add_status_listener(self._device_status_changed)
        self.animation_level = "full" if booted.settings.ui.animations else "none"
        self._services_ready.set()

    @property
    def is_booted(self) -> bool:
        return self.services is not None and self.boot_error is None

    def wait_for_services(self, timeout: float = BOOT_WAIT_SECONDS) -> Services:
        """For worker threads that may start during the boot: wait for it (never call it on the UI thread).

        Raises StillStarting after `timeout`, BootFailed if the boot failed."""
        if not self._services_ready.wait(timeout):
            raise StillStarting()
        if self.boot_error is not None or self.services is None:
            raise BootFailed(self.boot_error or "Clarity did not start.")
        return self.services

    def on_board_screen_painted(self, _: BoardScreen.Painted) -> None:
        # The first board is on screen: now load the rest.
        if not self._services_ready.is_set() and not self._boot_requested:
            self._boot_requested = True
            allow_loading()
            self._run_boot()

    @work(thread=True, exclusive=True, group="boot", exit_on_error=False)
    def _run_boot(self) -> None:
        try:
            booted = boot(self.boot_config, self.scenario)
        except Exception as exc:  # noqa: BLE001 - shown to the person as one line, then exit
            self.call_from_thread(self._boot_failed, exc)
            return
        self.call_from_thread(self._boot_done, booted)

    def _boot_done(self, booted: Booted) -> None:
        self._adopt(booted)
        self._board_before_boot.close()
        log.info("boot finished: %.3f s", time.perf_counter() - self._started)
        self._start_background_work()
        self.booted.publish(None)
        self.db_changed.publish(None)

    def _boot_failed(self, exc: Exception) -> None:
        # The CLI prints it as one line once the screen is gone (see cli.run_app). A database that is
        # damaged, full, unreachable or another program's gets the same calm line as in the CLI.
        from db.errors import as_problem

        self.boot_error = " ".join(str(as_problem(exc) or exc).split())
        self._services_ready.set()
        self.exit(return_code=2)

    def _handle_exception(self, error: Exception) -> None:
        # A database problem that surfaces later (a damaged page, a full disk) ends the app like a failed
        # boot: one calm line and exit code 2, not a traceback. Anything else is a bug: it is logged and
        # the attendant gets a calm error screen (CrashGuard, clarity_tui/crash_guard.py).
        from db.errors import as_problem

        problem = as_problem(error)
        if problem is None:
            super()._handle_exception(error)
        else:
            self._boot_failed(problem)

    def _start_background_work(self) -> None:
        self.operator_session.on_booted()
        self.open_devices()
        self._start_billing()
        self._start_tunnel()
        if self.scenario is not None:
            self.run_simulator()

    def today(self) -> dt.date:
        """The site's calendar day now (settings.site.timezone), not UTC's."""
        return services_of(self).today()

    # --- who is working here (clarity_tui/operator_session.py) ---------------------------------------------

    @property
    def actor(self) -> Actor:
        return self.operator_session.actor

    @property
    def holder_label(self) -> str:
        return self.operator_session.holder_label

    @property
    def support_user(self) -> str | None:
        return self.operator_session.support_user

    # --- start and stop -----------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        from clarity_tui.screens.board import BoardScreen

        return BoardScreen()

    @staticmethod
    def sixteen_colour_terminal() -> bool:
        return os.environ.get("TEXTUAL_COLOR_SYSTEM") in {"standard", "windows"} or os.environ.get("TERM") == "linux"

    def on_mount(self) -> None:
        if os.environ.get("TERM") == "linux":
            # The Linux console's font lacks rounded box glyphs.
            self.add_class("-ascii")
        if self.sixteen_colour_terminal():
            # Use the terminal's own 16 colours rather than approximating truecolor ones.
            self.theme = "ansi-dark"
        if self.services is None:
            # The PIN pad's workers load the database stack only once the first board is painted.
            hold_until_first_paint()
        self._start_live()
        self.operator_session.on_mount()
        if self.services is not None:
            self._start_background_work()
        self._check_size()

    def on_ready(self) -> None:
        log.info("start-up to ready: %.3f s", time.perf_counter() - self._started)

    async def on_unmount(self) -> None:
        abandon_loading()  # workers still waiting for the first paint give up
        try:
            self.operator_session.end_now("exit")
            self._stop_billing()
        finally:
            self._board_before_boot.close()  # an app that exits before its boot still holds this connection
            await self._stop_live()  # whatever failed above: the change feed's thread must end with the app

    async def on_event(self, event: Any) -> None:
        from textual import events

        if isinstance(event, (events.Key, events.MouseDown, events.MouseScrollUp, events.MouseScrollDown)):
            self.operator_session.note_activity()
            if self._boot_requested and not database_stack_loaded():
                # A key during the boot's imports: its handler may import the database stack on this
                # thread too. Wait for the boot worker's import (once, briefly); the key is kept.
                import_database_stack()
        await super().on_event(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the PIN pad is up, the app's own keys (search, hardware, palette…) stay shut.
        return action == "quit" or not self.operator_session.keys_shut()

    # --- terminal size ------------------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        # Runs before App._on_resize updates self.size: use the event's size.
        self._check_size(event.size)

    def _check_size(self, size: Size | None = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmallScreen)
        if small and not showing:
            self.push_screen(TooSmallScreen())
        elif not small and showing:
            self.pop_screen()

    # --- navigation: the app's keys -------------------------------------------------------------------------

    def action_search_customers(self, query: str = "") -> None:
        from clarity_tui.screens.customer_search import CustomerSearchScreen

        if isinstance(self.screen, CustomerSearchScreen):
            self.screen.query_one("#search-box").focus()
        elif screen_is_open(self, "customer-search"):
            self.notify("Customer search is open under this screen: Esc goes back to it.", timeout=4)
        else:
            self.push_screen(CustomerSearchScreen(query))

    def action_hardware(self) -> None:
        from clarity_tui.screens.hardware import HardwareScreen

        if not isinstance(self.screen, HardwareScreen):
            self.push_screen(HardwareScreen())

    def action_sign_out(self) -> None:
        self.operator_session.sign_out()

    def action_shifts(self) -> None:
        from clarity_tui.screens.shift import ShiftScreen

        if not isinstance(self.screen, ShiftScreen):
            self.push_screen(ShiftScreen())

    def action_audit(self) -> None:
        from clarity_tui.screens.audit import AuditScreen

        if not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen())

    def action_shift_report(self) -> None:
        from clarity_tui.screens.report import ReportScreen

        if not isinstance(self.screen, ReportScreen):
            self.push_screen(ReportScreen())

    def action_dashboard(self) -> None:
        """Managers (and support): the dashboard. Anyone else is told who may open it; the screen's read checks again."""
        from clarity_tui.screens.dashboard import DashboardScreen
        from clarity_tui.services.permissions import Permission, allowed, refusal

        if not allowed(self.actor, Permission.REPORT_VIEW):
            self.notify(refusal(self.actor, Permission.REPORT_VIEW), severity="warning", timeout=6)
        elif not isinstance(self.screen, DashboardScreen):
            self.push_screen(DashboardScreen())

    @work(group="operators", exit_on_error=False)
    async def action_operators(self) -> None:
        """Managers: the Operators screen. Anyone else is offered a manager's PIN in place."""
        from clarity_tui.screens.operators import OperatorsScreen
        from clarity_tui.widgets.manager_pin import manager_approval

        if screen_is_open(self, "operators") or screen_is_open(self, "manager-pin"):
            return  # open already, or its PIN is being asked (not exclusive: that would orphan the PIN pad)
        manager = await manager_approval(self, "operators.manage", why="Open Operators: add, set PINs, unlock, disable.")
        if manager is not None:
            self.push_screen(OperatorsScreen(manager))

    # --- navigation: the messages screens post (clarity_tui/messages.py) -------------------------------------
    # Each screen opens on the message loop of the screen that asked (a Callback message, as when screens
    # pushed each other): a failure stops that screen and CrashGuard replaces it, never the App's own loop;
    # a push's callback (the picker's) runs there too.

    def _open_from(self, requester: Screen[Any], open_it: Callable[[], object]) -> None:
        requester.call_later(open_it)

    def on_open_session(self, message: OpenSession) -> None:
        self._open_from(self.screen, lambda: self.open_session_screen(message.session_id))

    def open_session_screen(self, session_id: int) -> AwaitComplete:
        """The one way a session's screen opens (OpenSession; an operator's parked work when they return)."""
        from clarity_tui.screens.session_detail import SessionDetailScreen

        return self.push_screen(SessionDetailScreen(session_id))

    def on_open_customer(self, message: OpenCustomer) -> None:
        def open_it() -> None:
            from clarity_tui.screens.customer_record import CustomerRecordScreen

            self.push_screen(CustomerRecordScreen(message.customer_id))

        self._open_from(self.screen, open_it)

    def on_search_customers(self, message: SearchCustomers) -> None:
        pick = message.pick
        if pick is None:
            self._open_from(self.screen, lambda: self.action_search_customers(message.query))
            return

        def open_it() -> None:
            from clarity_tui.screens.customer_search import CustomerSearchScreen

            self.push_screen(CustomerSearchScreen(message.query, pick=True), pick)

        self._open_from(self.screen, open_it)

    def on_create_first_manager(self, message: CreateFirstManager) -> None:
        def open_it() -> None:
            from clarity_tui.screens.operators import FirstManagerScreen

            self.push_screen(FirstManagerScreen(), callback=message.done)

        self._open_from(self.screen, open_it)

    def _session_screen(self, session_id: int) -> SessionDetailScreen | None:
        """The open screen of this session (the sale and migration flows run in its workers), if any."""
        from clarity_tui.screens.session_detail import SessionDetailScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, SessionDetailScreen) and screen.session_id == session_id:
                return screen
        return None

    def on_start_sale(self, message: StartSale) -> None:
        """Purchase: the sale flow; on a LEGACY bubble (a legacy member, no customer) Migrate is offered first."""
        owner = self._session_screen(message.session_id)
        if owner is None:
            return  # the session's screen closed before the message arrived

        def start() -> None:
            from clarity_tui.screens.sale import start_sale

            detail = owner.detail
            if detail is not None and detail.legacy_member_id and not detail.customer_id:
                from clarity_tui.screens.migration.prompts import offer_migration

                offer_migration(owner, message.session_id, detail.legacy_member_id,
                                sell=lambda: start_sale(owner, message.session_id))
                return
            start_sale(owner, message.session_id)

        self._open_from(owner, start)

    def on_start_migration(self, message: StartMigration) -> None:
        owner = self._session_screen(message.session_id)
        if owner is None:
            return

        def start() -> None:
            from clarity_tui.screens.migration import start_migration

            start_migration(owner, message.session_id)

        self._open_from(owner, start)

    # --- the command palette --------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from clarity_tui.app_commands import app_commands, session_commands
        from clarity_tui.screens.session_detail import SessionDetailScreen

        yield from super().get_system_commands(screen)
        yield from app_commands(self)
        yield from self.billing_commands()
        if isinstance(screen, SessionDetailScreen):
            yield from session_commands(screen)
        if self.operator_session.require_signin:
            yield SystemCommand("Sign out", "Sign out of this terminal; your work is kept (Ctrl+O)", self.action_sign_out)

    def _refresh_board(self) -> None:
        self.db_changed.publish(None)
