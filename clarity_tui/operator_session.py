"""Who is working at this terminal (issue 8): sign-in, idle sign-out, shifts, support sessions, and the
work kept for the operator who left it.

`OperatorSession` is a plain object the app owns (`ClarityApp.operator_session`); it uses the app to show
the PIN pad, to notify and to run its database work in thread workers. The rules:
- with sign-in required (the CLI's default), the PIN pad goes over the board at once; the PIN check
  waits for the boot. The site may turn sign-in off (ui.require_signin = false): the pad goes;
- after ui.idle_signout_seconds without a key or a click the operator is signed out; activity is
  recorded on the shift at most once a minute;
- a support session (`clarity-tui support` over SSH) is identified by its SSH user, not a PIN;
- the same operator signing back in finds their screens as they left them (the pad only covered
  them). Another operator gets the bare board: the previous operator's open session is parked (its
  order stays open in the database) and reopened, with its flow, when they sign in again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Protocol, cast

from clarity_tui.messages import StartMigration, StartSale
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.operators import OperatorService, SignedIn

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 0.25
TOUCH_EVERY_SECONDS = 60


class OperatorSession:
    """The operator signed in at this terminal, their shift, and the work kept for operators who left."""

    def __init__(self, app: ClarityApp, *, require_signin: bool, support_user: str | None,
                 actor: Actor | None = None) -> None:
        self.app = app
        # support_user: `clarity-tui support` over SSH, identified by the SSH user (no PIN).
        self.require_signin = require_signin and support_user is None
        self.support_user = support_user
        self.awaiting_signin = False
        self.shift_id: int | None = None
        self._actor = actor
        self._last_activity: dt.datetime | None = None
        self._last_touch: dt.datetime | None = None
        self._stack_owner: int | None = None  # the operator whose screens are on the stack
        self._parked: dict[int, int] = {}  # operator id -> the session they left for another operator

    # --- who --------------------------------------------------------------------------------------

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            from clarity_tui.services.actor import Actor

            terminal = self.app.boot_config.terminal_id
            if self.support_user is not None:  # until the support shift is recorded (after the boot)
                from db.models import Role

                self._actor = Actor(f"{self.support_user} (ssh)", Role.SUPPORT, terminal)
            else:
                self._actor = Actor(name="attendant", terminal=terminal)
        return self._actor

    @property
    def holder_label(self) -> str:
        """How this terminal's hold on a session reads on other terminals."""
        return f"{self.actor.name} @ {self.app.boot_config.terminal_id}"

    def _operators(self) -> OperatorService:
        from clarity_tui.services.operators import OperatorService

        return OperatorService.from_services(services_of(self.app))

    # --- start and stop -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.require_signin:
            # The PIN pad goes over the board at once; the PIN check waits for the boot worker.
            self.show_signin()
            self.app.set_interval(IDLE_CHECK_SECONDS, self._idle_tick, name="idle-signout")

    def on_booted(self) -> None:
        if self.require_signin and not services_of(self.app).settings.ui.require_signin:
            self._signin_off()
        if self.support_user is not None:
            self.app.run_worker(self._start_support, thread=True, exclusive=True, group="support",
                                exit_on_error=False)

    def end_now(self, reason: str) -> None:
        """At exit the shift ends in the foreground: the workers are being cancelled."""
        if self.shift_id is None or self.app.services is None:
            return
        try:
            self._operators().sign_out(self.shift_id, reason)
        except Exception as exc:  # noqa: BLE001 - never block the exit
            log.warning("could not end the shift: %s", exc)
        self.shift_id = None

    # --- the PIN pad ------------------------------------------------------------------------------------

    def show_signin(self, notice: str = "", preselect: int | None = None) -> None:
        from clarity_tui.screens.signin import SignInScreen

        self.awaiting_signin = True
        self.app.push_screen(SignInScreen(notice=notice, preselect=preselect), callback=self._signed_in)

    def _signin_off(self) -> None:
        """The site turned sign-in off (ui.require_signin = false): the pad shown at start goes."""
        from clarity_tui.screens.signin import SignInScreen

        self.require_signin = self.awaiting_signin = False
        if isinstance(self.app.screen, SignInScreen):
            self.app.pop_screen()

    def _signed_in(self, result: SignedIn | None) -> None:
        assert result is not None  # the pad is dismissed only with a sign-in
        self.awaiting_signin = False
        self._actor = result.actor
        self.shift_id = result.shift_id
        self._last_activity = self._last_touch = self.app.now()
        self._enter_operator_stack(result.operator_id)
        self.app.notify(f"Signed in: {result.actor.name} ({result.actor.role})", timeout=3)

    def keys_shut(self) -> bool:
        """While the PIN pad is up, the app's own keys (search, hardware, palette…) stay shut."""
        return self.awaiting_signin

    # --- signing out --------------------------------------------------------------------------------------

    def sign_out(self, reason: str = "signout") -> None:
        if not (self.require_signin and self.shift_id and not self.awaiting_signin):
            if self.support_user is None and not self.require_signin:
                self.app.notify("Sign-in is off on this terminal.", severity="warning")
            return
        who = self.actor
        shift_id, self.shift_id = self.shift_id, None
        self.app.run_worker(lambda: self._operators().sign_out(shift_id, reason), thread=True, group="shift",
                            exit_on_error=False)
        if reason == "idle":
            idle = services_of(self.app).settings.ui.idle_signout_seconds
            span = f"{idle // 60} min" if idle >= 60 and idle % 60 == 0 else f"{idle} s"
            notice = f"{who.name} was signed out after {span} idle. Their work is kept: it resumes when they sign in."
        else:
            notice = f"{who.name} signed out. Their work is kept: it resumes when they sign in."
        self.show_signin(notice, preselect=who.operator_id)

    def note_activity(self) -> None:
        """A key, a click or a scroll: the operator is here."""
        self._last_activity = self.app.now()

    def _idle_tick(self) -> None:
        services = self.app.services
        if self.shift_id is None or self.awaiting_signin or self._last_activity is None or services is None:
            return
        now = self.app.now()
        idle = services.settings.ui.idle_signout_seconds
        if idle > 0 and (now - self._last_activity).total_seconds() >= idle:
            self.sign_out("idle")
        elif self._last_touch is not None and self._last_activity > self._last_touch \
                and (now - self._last_touch).total_seconds() >= TOUCH_EVERY_SECONDS:
            self._last_touch = now
            shift_id, when = self.shift_id, self._last_activity
            self.app.run_worker(lambda: self._operators().touch(shift_id, when), thread=True, group="shift",
                                exit_on_error=False)

    # --- support over SSH ---------------------------------------------------------------------------------

    def _start_support(self) -> None:
        assert self.support_user is not None
        result = self._operators().start_support(self.support_user)
        self.app.call_from_thread(self._support_started, result)

    def _support_started(self, result: SignedIn) -> None:
        self._actor, self.shift_id = result.actor, result.shift_id
        self.app.notify(f"Support session: {result.actor.name} at {result.actor.terminal}. Every change is audited.",
                        title="Support", timeout=6)

    # --- the work kept for the operator who left it -------------------------------------------------------

    def _enter_operator_stack(self, operator_id: int) -> None:
        owner = self._stack_owner
        if owner is not None and owner != operator_id and len(self.app.screen_stack) > 1:
            self._park_work(owner)
        self._stack_owner = operator_id
        parked = self._parked.pop(operator_id, None)
        if parked is not None and len(self.app.screen_stack) <= 1:
            self.app.run_worker(self._resume_work(operator_id, parked), group="resume", exit_on_error=False)

    def _park_work(self, owner: int) -> None:
        from clarity_tui.screens.session_detail import SessionDetailScreen

        sessions = [s.session_id for s in self.app.screen_stack if isinstance(s, SessionDetailScreen)]
        if sessions:
            self._parked[owner] = sessions[-1]
        while len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    async def _resume_work(self, operator_id: int, session_id: int) -> None:
        """The session screen opens, and the order goes on, the way the app opens them (its handlers)."""
        order = await asyncio.to_thread(self._operators().open_order_of, operator_id, session_id)
        await self.app.open_session_screen(session_id)
        if order is None:
            return
        order_id, kind = order
        self.app.post_message(StartMigration(session_id) if kind == "migration" else StartSale(session_id))
        self.app.notify(f"Your order #{order_id} for this vehicle is back where you left it.", timeout=5)


class _OperatorHost(Protocol):
    operator_session: OperatorSession


def operator_session_of(node: DOMNode) -> OperatorSession:
    """The running app's operator session (typed; ClarityApp has one from its construction)."""
    return cast(_OperatorHost, node.app).operator_session
