"""The Clarity App: settings and database are injected, or loaded right after the first paint.

Start-up: a lane terminal should show its board as fast as a bare Textual app.
Given only a BootConfig (the CLI's path), the app paints the board from one
plain-SQL read, then loads the full Settings, the ORM, devices and simulator in
a worker (`_boot`). Tests inject `settings` and `db` and skip that dance.
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
from clarity_tui.app_workstack import WorkStackMixin
from clarity_tui.bootconfig import BootConfig
from clarity_tui.crash_guard import CrashGuard
from clarity_tui.db_stack import database_stack_loaded, import_database_stack, import_worker_stack
from clarity_tui.messages import DatabaseChanged
from clarity_tui.screen_open import ScreenOpenGuard, screen_is_open
from clarity_tui.screens.board import BoardScreen
from clarity_tui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from clarity_tui.services.board_view import LaneView, read_board
from clarity_tui.support_palette import SupportGuard
from clarity_tui.typeahead import TypeaheadMixin  # issue 14: keys typed ahead land where they belong
from db.changefeed import ChangeFeed, open_change_feed

if TYPE_CHECKING:  # the heavy modules load after the first paint
    from clarity_tui.config import Settings
    from clarity_tui.devices import DeviceSet
    from clarity_tui.messaging.base import SmsProvider
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.services.mailer import MailSender
    from clarity_tui.wiring import Services
    from clarity_tui.services.actor import Actor
    from clarity_tui.simulator.scenario import Scenario
    from db.engine import Database

log = logging.getLogger(__name__)
_PROCESS_START = time.perf_counter()


class ClarityApp(TypeaheadMixin, ScreenOpenGuard, CrashGuard, WorkStackMixin, BillingMixin, SupportGuard, App[None]):  # SupportGuard: no file writes over SSH
    # Absolute, so subclasses elsewhere (tests, bench) find the stylesheet too.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "Clarity"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", tooltip="Leave Clarity"),
        # Ctrl+P too (the README's key): Textual adds its own ctrl+p only when no binding runs the palette.
        Binding("f10,ctrl+p", "command_palette", "Menu", id="app.menu", tooltip="Open the command palette"),
        Binding("f9", "hardware", "Hardware", id="app.hardware", tooltip="Devices: status and tests"),
        Binding("f7,ctrl+f", "search_customers", "Search", id="app.search_customers", tooltip="Search customers"),
        # Site (issue 8): operators, shifts, audit trail, end-of-shift report.
        Binding("ctrl+o", "sign_out", "Sign out", show=False, id="app.sign_out", tooltip="Sign out; your work is kept"),
        Binding("ctrl+w", "shifts", "Who's on", show=False, id="app.shifts", tooltip="Who is signed in where"),
        Binding("ctrl+u", "audit", "Audit", show=False, id="app.audit", tooltip="Browse the audit trail"),
        Binding("ctrl+e", "shift_report", "Report", show=False, id="app.report", tooltip="End-of-shift report"),
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
        # Operators (issue 8): the CLI asks for a PIN (require_signin); tests inject an actor instead.
        # support_user: `clarity-tui support` over SSH, identified by the SSH user (no PIN).
        self.require_signin = require_signin and support_user is None
        self.support_user = support_user
        self._awaiting_signin = False
        self._shift_id: int | None = None
        self._last_activity: dt.datetime | None = None
        self._last_touch: dt.datetime | None = None
        self._stack_owner: int | None = None  # the operator whose screens are on the stack
        self._parked: dict[int, int] = {}  # operator id -> the session they left for another operator
        self.signed_in: Signal[Actor] = Signal(self, "signed-in")
        if boot is None:
            if settings is None or db is None:
                raise TypeError("ClarityApp needs settings and db, or a BootConfig")
            boot = BootConfig(settings.resolved_database_url(), settings.terminal_id, settings.simulate,
                              settings.ui.show_clock, None)
        self.boot = boot
        # Injected so wait times and snapshots can run on a fixed clock.
        self.now: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self._settings: Settings | None = None
        self._db: Database | None = None
        # The one wiring (clarity_tui/wiring.py): None until the boot has settings and database.
        self.services: Services | None = None
        self._injected = {"gateway": gateway, "messaging": sms, "mailer": mailer}
        self._actor = actor
        self.scenario = scenario
        self.devices: DeviceSet | None = None
        self._feed = change_feed
        self._booted = threading.Event()
        self._boot_error: str | None = None
        self._raw_conn: Any = None
        self._raw_lock = threading.Lock()
        self.db_changed: Signal[None] = Signal(self, "db-changed")
        self.devices_changed: Signal[None] = Signal(self, "devices-changed")
        # Published once the full settings, database and devices are there.
        self.booted: Signal[None] = Signal(self, "booted")
        self.animation_level = "none"
        self._started = _PROCESS_START
        if settings is not None and db is not None:
            self._adopt(settings, db, scenario, self._build_devices(settings, scenario, db))

    # --- boot -------------------------------------------------------------------------

    @staticmethod
    def _build_devices(settings: Settings, scenario: Scenario | None, db: Database) -> DeviceSet:
        # Devices are built without I/O and opened in a worker; see clarity_tui/devices.py.
        from clarity_tui.devices import build_devices

        return build_devices(settings, scenario, db=db)

    def _adopt(self, settings: Settings, db: Database, scenario: Scenario | None, devices: DeviceSet) -> None:
        self._settings, self._db, self.scenario, self.devices = settings, db, scenario, devices
        from clarity_tui.wiring import Services

        self.services = Services(settings, db, clock=self.now, **self._injected)
        self.devices.add_status_listener(self._device_status_changed)
        self.animation_level = "full" if settings.ui.animations else "none"
        self._booted.set()

    def _wait_booted(self) -> None:
        if not self._booted.wait(timeout=60):
            raise RuntimeError("Clarity is still starting: try again in a moment.")
        if self._boot_error:
            raise RuntimeError(self._boot_error)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._wait_booted()
        return self._settings  # type: ignore[return-value]

    @property
    def db(self) -> Database:
        """The database; blocks (briefly, only right after start) until the boot worker has opened it."""
        if self._db is None:
            self._wait_booted()
        return self._db  # type: ignore[return-value]

    @property
    def is_booted(self) -> bool:
        return self._booted.is_set() and self._boot_error is None

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            from clarity_tui.services.actor import Actor

            if self.support_user is not None:  # until the support shift is recorded (after the boot)
                from db.models import Role

                self._actor = Actor(f"{self.support_user} (ssh)", Role.SUPPORT, self.boot.terminal_id)
            else:
                self._actor = Actor(name="attendant", terminal=self.boot.terminal_id)
        return self._actor

    @actor.setter
    def actor(self, value: Actor) -> None:
        self._actor = value

    @work(thread=True, exclusive=True, group="boot", exit_on_error=False)
    def _boot(self) -> None:
        """Everything the first paint did not need: Settings, ORM, schema check, devices, simulator."""
        try:
            import_database_stack()  # first, on this thread alone: the PIN pad's workers wait for it
            from clarity_tui.config import load_settings
            from clarity_tui.services.bootstrap import open_database

            settings = load_settings(self.boot.config_file, database_url=self.boot.database_url,
                                     simulate=self.boot.simulate or None)
            db = open_database(settings)
            scenario = self.scenario
            if settings.simulate:
                from clarity_tui.services.demo import seed_demo
                from clarity_tui.simulator.scenario import Scenario

                seed_demo(db, gateway=settings.payments.gateway == "simulated")
                scenario = scenario or Scenario.demo()
            devices = self._build_devices(settings, scenario, db)
            import_worker_stack()  # before the outbox and billing workers start, which import it at once
        except Exception as exc:  # noqa: BLE001 - shown to the person, then exit
            self.call_from_thread(self._boot_failed, exc)
            return
        self.call_from_thread(self._boot_done, settings, db, scenario, devices)

    def _boot_done(self, settings: Settings, db: Database, scenario: Scenario | None, devices: DeviceSet) -> None:
        self._adopt(settings, db, scenario, devices)
        with self._raw_lock:
            if self._raw_conn is not None:
                self._raw_conn.close()
                self._raw_conn = None
        log.info("boot finished: %.3f s", time.perf_counter() - self._started)
        self._start_services()
        self.booted.publish(None)
        self.db_changed.publish(None)

    def _boot_failed(self, exc: Exception) -> None:
        # The CLI prints it as one line once the screen is gone (see cli.run_app). A database that is
        # damaged, full, unreachable or another program's gets the same calm line as in the CLI.
        from db.errors import as_problem

        self._boot_error = " ".join(str(as_problem(exc) or exc).split())
        self._booted.set()
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

    @property
    def boot_error(self) -> str | None:
        return self._boot_error

    def _start_services(self) -> None:
        if self.require_signin and not self.settings.ui.require_signin:
            self._signin_off()
        if self.support_user is not None:
            self._start_support()
        self.open_devices()
        self._start_billing()
        if self.scenario is not None:
            self.run_simulator()

    def today(self) -> dt.date:
        """The site's calendar day now (settings.site.timezone), not UTC's."""
        from clarity_tui.sitetime import site_date

        return site_date(self.now(), self.settings.site.zone)

    @property
    def holder_label(self) -> str:
        return f"{self.actor.name} @ {self.boot.terminal_id}"

    def get_default_screen(self) -> Screen:
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
        if self._feed is None:
            self._feed = open_change_feed(self.boot.database_url)
        self.watch_database()
        if self.require_signin:
            # The PIN pad goes over the board at once; the PIN check waits for the boot worker.
            self._show_signin()
            self.set_interval(0.25, self._idle_tick, name="idle-signout")
        if self._booted.is_set():
            self._start_services()
        self._check_size()

    def on_board_screen_painted(self, _: BoardScreen.Painted) -> None:
        # The first board is on screen: now load the rest.
        if not self._booted.is_set() and not self._boot_started:
            self._boot_started = True
            self._boot()

    _boot_started = False

    def on_ready(self) -> None:
        log.info("start-up to ready: %.3f s", time.perf_counter() - self._started)

    async def on_unmount(self) -> None:
        self._end_shift_now("exit")
        self._stop_billing()
        if self._feed is not None:
            self._feed.close()
        if self.devices is not None:
            await self.devices.close_all()

    # --- devices -----------------------------------------------------------------------

    @work(exclusive=True, group="devices", exit_on_error=False)
    async def open_devices(self) -> None:
        """Open (or reopen) every device, then feed plate reads; exclusive, so a reopen replaces the old feed."""
        from clarity_tui.devices import feed_plates, plate_recorder

        errors = await self.devices.open_all()
        self.devices_changed.publish(None)
        for kind, error in errors.items():
            if error:
                log.warning("%s did not open: %s", kind, error)
        if errors.get("plate_reader") is None:
            await feed_plates(self.devices.plate_reader, plate_recorder(self.db, self.settings.terminal_id))

    def _device_status_changed(self, device: object, status: object) -> None:
        # Called from whichever thread changed the status; post_message is thread-safe.
        from clarity_tui.widgets.device_bar import DevicesChanged

        self.post_message(DevicesChanged(device.kind, status.state.value, status.reason))  # type: ignore[attr-defined]

    def on_devices_changed(self, _: object) -> None:
        self.devices_changed.publish(None)

    def action_search_customers(self) -> None:
        from clarity_tui.screens.customer_search import CustomerSearchScreen

        if isinstance(self.screen, CustomerSearchScreen):
            self.screen.query_one("#search-box").focus()
        elif screen_is_open(self, "customer-search"):
            self.notify("Customer search is open under this screen: Esc goes back to it.", timeout=4)
        else:
            self.push_screen(CustomerSearchScreen())

    def action_hardware(self) -> None:
        from clarity_tui.screens.hardware import HardwareScreen

        if not isinstance(self.screen, HardwareScreen):
            self.push_screen(HardwareScreen())

    # --- live updates ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="change-feed", exit_on_error=False)
    def watch_database(self) -> None:
        feed = self._feed
        assert feed is not None
        while not feed.closed:
            try:
                changed = feed.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - a dropped DB connection must not kill the app
                if feed.closed:
                    return
                log.warning("change feed failed (%s); reopening", exc)
                time.sleep(1.0)
                try:
                    self._feed = feed = open_change_feed(self.boot.database_url)
                except Exception:  # noqa: BLE001
                    continue
                changed = True
            if changed:
                self.post_message(DatabaseChanged())

    def read_board(self) -> list[LaneView]:
        """The lanes board from the database (call from a worker thread).

        Before the boot worker has opened the ORM, one plain DB-API connection does it."""
        if self._db is not None:
            from clarity_tui.services.sessions import SessionService

            return SessionService(self._db, self.entitlement_policy).board(self.now())
        from db.rawconnect import connect_raw, is_sqlite_url

        try:
            with self._raw_lock:
                if self._raw_conn is None:
                    self._raw_conn = connect_raw(self.boot.database_url)
                return read_board(self._raw_conn, is_sqlite_url(self.boot.database_url), self.now(),
                                  self.entitlement_policy)
        except Exception as exc:
            from db.errors import as_problem

            # The boot starts after the first paint: a damaged file must not leave the PIN pad up for ever.
            if as_problem(exc) is not None:
                self.call_later(self._boot_failed, exc)
            raise

    def on_database_changed(self, _: DatabaseChanged) -> None:
        self.db_changed.publish(None)

    @work(exclusive=True, group="simulator", exit_on_error=False)
    async def run_simulator(self) -> None:
        from clarity_tui.simulator.world import build_camera, run_camera

        assert self.scenario is not None
        camera = build_camera(self.db, self.scenario)
        await run_camera(self.db, camera, self.settings.terminal_id, self.scenario.initial_vehicles,
                         dwell=dt.timedelta(minutes=self.scenario.dwell_minutes))

    # --- terminal size ------------------------------------------------------------------

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

    # --- operators: sign-in, idle sign-out, work kept for the operator who left it (issue 8) ---

    def _show_signin(self, notice: str = "", preselect: int | None = None) -> None:
        from clarity_tui.screens.signin import SignInScreen

        self._awaiting_signin = True
        self.push_screen(SignInScreen(notice=notice, preselect=preselect), callback=self._signed_in)

    def _signin_off(self) -> None:
        """The site turned sign-in off (ui.require_signin = false): the pad shown at start goes."""
        from clarity_tui.screens.signin import SignInScreen

        self.require_signin = self._awaiting_signin = False
        for screen in list(self.screen_stack):
            if isinstance(screen, SignInScreen) and screen is self.screen:
                self.pop_screen()

    def _signed_in(self, result: Any) -> None:
        self._awaiting_signin = False
        self.actor = result.actor
        self._shift_id = result.shift_id
        self._last_activity = self._last_touch = self.now()
        self._enter_operator_stack(result.actor.operator_id)
        self.notify(f"Signed in: {result.actor.name} ({result.actor.role})", timeout=3)
        self.signed_in.publish(result.actor)

    def action_sign_out(self, reason: str = "signout") -> None:
        if not (self.require_signin and self._shift_id and not self._awaiting_signin):
            if self.support_user is None and not self.require_signin:
                self.notify("Sign-in is off on this terminal.", severity="warning")
            return
        who = self.actor
        self._end_shift(self._shift_id, reason)
        self._shift_id = None
        if reason == "idle":
            idle = self.settings.ui.idle_signout_seconds
            span = f"{idle // 60} min" if idle >= 60 and idle % 60 == 0 else f"{idle} s"
            notice = f"{who.name} was signed out after {span} idle. Their work is kept: it resumes when they sign in."
        else:
            notice = f"{who.name} signed out. Their work is kept: it resumes when they sign in."
        self._show_signin(notice, preselect=who.operator_id)

    async def on_event(self, event: Any) -> None:
        from textual import events

        if isinstance(event, (events.Key, events.MouseDown, events.MouseScrollUp, events.MouseScrollDown)):
            self._last_activity = self.now()
            if self._boot_started and not database_stack_loaded():
                # A key during the boot's imports: its handler may import the database stack on this
                # thread too. Wait for the boot worker's import (once, briefly); the key is kept.
                import_database_stack()
        await super().on_event(event)

    def _idle_tick(self) -> None:
        if self._shift_id is None or self._awaiting_signin or self._last_activity is None or not self.is_booted:
            return
        now = self.now()
        idle = self.settings.ui.idle_signout_seconds
        if idle > 0 and (now - self._last_activity).total_seconds() >= idle:
            self.action_sign_out("idle")
        elif self._last_touch is not None and self._last_activity > self._last_touch \
                and (now - self._last_touch).total_seconds() >= 60:
            self._last_touch = now
            self._touch_shift(self._shift_id, self._last_activity)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the PIN pad is up, the app's own keys (search, hardware, palette…) stay shut.
        if self._awaiting_signin and action != "quit":
            return False
        return True

    @work(thread=True, group="shift", exit_on_error=False)
    def _end_shift(self, shift_id: int, reason: str) -> None:
        from clarity_tui.services.operators import OperatorService

        OperatorService.for_app(self).sign_out(shift_id, reason)

    @work(thread=True, group="shift", exit_on_error=False)
    def _touch_shift(self, shift_id: int, when: dt.datetime) -> None:
        from clarity_tui.services.operators import OperatorService

        OperatorService.for_app(self).touch(shift_id, when)

    def _end_shift_now(self, reason: str) -> None:
        """At exit the shift ends in the foreground: the workers are being cancelled."""
        if self._shift_id is None or self._db is None:
            return
        try:
            from clarity_tui.services.operators import OperatorService

            OperatorService.for_app(self).sign_out(self._shift_id, reason)
        except Exception as exc:  # noqa: BLE001 - never block the exit
            log.warning("could not end the shift: %s", exc)
        self._shift_id = None

    @work(thread=True, exclusive=True, group="support", exit_on_error=False)
    def _start_support(self) -> None:
        from clarity_tui.services.operators import OperatorService

        assert self.support_user is not None
        result = OperatorService.for_app(self).start_support(self.support_user)
        self.call_from_thread(self._support_started, result)

    def _support_started(self, result: Any) -> None:
        self.actor, self._shift_id = result.actor, result.shift_id
        self.signed_in.publish(result.actor)
        self.notify(f"Support session: {result.actor.name} at {result.actor.terminal}. Every change is audited.",
                    title="Support", timeout=6)

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

    # --- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Lanes board: refresh", "Re-read every lane from the database", self._refresh_board)
        yield SystemCommand("Hardware: devices and tests", "Status of the card reader, signature pad and plate camera; test each (F9)", self.action_hardware)
        yield SystemCommand("Customers: search", "Find a customer by name, phone, email, number or plate (F7)", self.action_search_customers)
        yield SystemCommand("Operators: who is signed in", "Shifts: who is signed in at which terminal (Ctrl+W)", self.action_shifts)
        yield SystemCommand("Audit trail", "Every change: who, where, when, before and after; filter it (Ctrl+U)", self.action_audit)
        yield SystemCommand("End-of-shift report", "Memberships sold and migrated, promotions, declines, pending syncs; CSV (Ctrl+E)", self.action_shift_report)
        yield SystemCommand("Operators: manage", "Managers: add operators, set PINs, unlock, disable (Ctrl+K)", self.action_operators)
        yield from self.billing_commands()
        from clarity_tui.screens.session_detail import SessionDetailScreen

        if isinstance(screen, SessionDetailScreen):
            yield SystemCommand("Purchase membership", "Sell a membership for this vehicle: plan, card, terms, signature (F2)",
                                screen.action_purchase)
            yield SystemCommand("Customer record", "Open the record of this vehicle's customer (F4)", screen.action_customer)
            yield SystemCommand("Mark done", "This vehicle has been served: take it off the board (F6)", screen.action_done)
            yield SystemCommand("Migrate membership", "Move this vehicle's legacy POS member over: no charge today (F3)",
                                screen.action_migrate)
        if self.require_signin:
            yield SystemCommand("Sign out", "Sign out of this terminal; your work is kept (Ctrl+O)", self.action_sign_out)

    def _refresh_board(self) -> None:
        self.db_changed.publish(None)
