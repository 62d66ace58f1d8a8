"""No crash reaches the attendant: an unhandled exception is logged and the lane app keeps running.

Textual ends the app on any unhandled exception and prints a traceback (with the frames' locals).
`CrashGuard`, mixed into the App, instead:
- writes the traceback (no locals, card numbers masked) to the crash log (clarity_tui/crash_log.py);
- shows the calm error screen (screens/error_screen.py): "Something went wrong. It was logged to
  <file>. Press Enter to return to the board.";
- on Enter, closes the screens above the board (never the PIN pad), and replaces any screen whose
  message loop the exception stopped (Textual stops it), the board included.

Where exceptions come from:
- an action (a key binding, a button's action): run on the App's own message loop, which Textual
  would stop; caught in `_dispatch_action` so the App's loop goes on;
- a screen's or widget's message handler: `_handle_exception`; that screen's loop has stopped;
- a worker: with exit_on_error=True through `_handle_exception`; with exit_on_error=False (most of
  ours) Textual only marks it failed, so `GuardedWorkerManager` reports it when it ends.
A database problem is not a crash: the App's own `_handle_exception` (one calm line, exit 2) and
the screens' own messages deal with those. Nor is a `UserFacingError` (StillStarting during the first
second, say): its message is shown as a warning and the lane goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual._context import active_message_pump
from textual.app import App
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerFailed, WorkerState
from textual.worker_manager import WorkerManager

from clarity_tui.crash_log import record_crash
from clarity_tui.errors import UserFacingError
from clarity_tui.operator_session import operator_session_of

if TYPE_CHECKING:
    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)

# Screens the way back to the board never closes: the PIN pad guards the lane.
KEEP_SCREEN_IDS = frozenset({"signin"})


class GuardedWorkerManager(WorkerManager):
    """Reports a worker that ended in ERROR and does not exit the app on error (those reach
    `_handle_exception` already)."""

    def _remove_worker(self, worker: Worker[Any]) -> None:
        super()._remove_worker(worker)
        failed = worker.state == WorkerState.ERROR and not worker.exit_on_error and worker.error is not None
        if failed and isinstance(self._app, CrashGuard):
            self._app.worker_crashed(worker)


class CrashGuard(_AppBase):
    """App mixin: see the module docstring."""

    _crash_screen_up = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._workers: WorkerManager = GuardedWorkerManager(self)
        self.crashes: list[Path] = []  # the log file, once per crash shown (tests and support read it)
        self._broken_screens: set[Screen[Any]] = set()

    # --- where exceptions arrive ---------------------------------------------------------

    async def _dispatch_action(self, namespace: Any, action_name: str, params: Any) -> bool:
        try:
            return await super()._dispatch_action(namespace, action_name, params)
        except Exception as error:
            if self._is_database_problem(error) or not self._can_recover():
                raise
            if isinstance(error, UserFacingError):
                self.tell_attendant(error)
                return True
            self.crashed(error, f"action {action_name!r} on {type(namespace).__name__}")
            return True

    def _handle_exception(self, error: Exception) -> None:
        cause = error.error if isinstance(error, WorkerFailed) else error
        pump = active_message_pump.get(None)
        app = self
        if app._exit or not app._screen_stack:
            # Already leaving (Ctrl+Q, a signal, the screens gone): an error while screens and workers close
            # is logged only.
            record_crash(cause, f"{type(pump).__name__} while the app was closing")
            return
        if pump is app or not self._can_recover():
            # The App's own message loop has stopped: nothing can carry on. Logged, then one line.
            path = record_crash(cause, "the application")
            self._stop_calmly(f"Clarity stopped after an error. It was logged to {path}.")
            return
        broken = _screen_of(pump)
        if isinstance(cause, UserFacingError):
            self.tell_attendant(cause, broken)
            return
        self.crashed(cause, f"{type(pump).__name__}" if pump is not None else "a worker", broken)

    def worker_crashed(self, worker: Worker[Any]) -> None:
        error = worker.error
        assert error is not None
        if self._is_database_problem(error):
            log.warning("worker %s failed: %s", worker.name, error)
            return
        if not self._can_recover():
            return
        if isinstance(error, UserFacingError):
            self.tell_attendant(error)
            return
        if _left_behind(worker, error):
            # A worker's answer arrived for a screen that was closed meanwhile (Mark done while the session
            # screen was still loading): nobody is looking at it, so there is nothing to recover.
            log.info("worker %s finished after its screen closed: %r", worker.name, error)
            return
        self.crashed(error, f"worker {worker.name!r} of {type(worker.node).__name__}")

    # --- what the attendant sees -----------------------------------------------------------

    def tell_attendant(self, error: UserFacingError, broken: Screen[Any] | None = None) -> None:
        """A message meant for the attendant is not a crash: show it. A screen whose message loop it
        stopped is closed the same way as after a crash, without the error screen."""
        app = self
        log.warning("shown to the attendant: %s", error)
        app.notify(str(error), severity="warning")
        if broken is not None:
            self._broken_screens.add(broken)
            if not self._crash_screen_up:
                app.call_later(self._back_to_board)

    def crashed(self, error: BaseException, where: str, broken: Screen[Any] | None = None) -> None:
        """Log the traceback, show the calm error screen; Enter returns to the board."""
        from clarity_tui.screens.error_screen import ErrorScreen

        app = self
        log.error("unhandled error in %s: %r", where, error)
        path = record_crash(error, where)
        self.crashes.append(path)
        if broken is not None:
            self._broken_screens.add(broken)
        if self._crash_screen_up:
            return  # one calm screen at a time; every crash is in the log
        self._crash_screen_up = True
        # Pushed from the App's own loop: the screen's result callback runs on the pump that pushed it,
        # and the one that raised may have stopped for good.
        app.call_later(app.push_screen, ErrorScreen(path), lambda _: self._back_to_board())

    def _back_to_board(self) -> None:
        """Close what is above the board (not the PIN pad). A screen whose message loop the error stopped
        has already left the DOM (Textual's clean-up): it leaves the stack too, and the board or the
        PIN pad, if it was one of them, is replaced by a new one."""
        from clarity_tui.screens.board import BoardScreen

        app = self
        self._crash_screen_up = False
        broken = {s for s in self._broken_screens if s in app.screen_stack}
        self._broken_screens.clear()
        board = app.screen_stack[0]
        stack = app._screen_stack
        lost_pad = any(s.id in KEEP_SCREEN_IDS for s in broken)
        for screen in broken - {board}:
            stack.remove(screen)
        while len(stack) > 1 and stack[-1].id not in KEEP_SCREEN_IDS:
            app.pop_screen()
        if board in broken and len(stack) == 1:
            board._push_result_callback(app, None)  # the default screen has none; switch_screen pops one
            app.switch_screen(BoardScreen())
        if lost_pad:
            operator_session_of(app).show_signin("Something went wrong and was logged: sign in again.")
        elif app.screen_stack:
            app.screen.post_message(events.ScreenResume())

    # --- helpers -----------------------------------------------------------------------------

    def _can_recover(self) -> bool:
        app = self
        return bool(app.is_running and not app._exit and app._screen_stack)

    @staticmethod
    def _is_database_problem(error: BaseException) -> bool:
        from db.errors import as_problem

        return isinstance(error, Exception) and as_problem(error) is not None

    def _stop_calmly(self, line: str) -> None:
        app = self
        app._return_code = 1
        app.exit(return_code=1, message=line)


def _screen_of(pump: Any) -> Screen[Any] | None:
    if isinstance(pump, Screen):
        return pump
    if isinstance(pump, Widget):
        try:
            return pump.screen
        except Exception:  # noqa: BLE001 - detached already
            return None
    return None


def _left_behind(worker: Worker[Any], error: BaseException) -> bool:
    """True for a NoMatches raised because the worker's screen is no longer on the screen stack."""
    from textual.css.query import NoMatches

    if not isinstance(error, NoMatches):
        return False
    if isinstance(worker.node, Widget) and not worker.node.is_attached:
        return True
    screen = _screen_of(worker.node)
    return screen is not None and screen not in screen.app.screen_stack
