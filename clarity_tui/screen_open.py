"""Opening a screen is idempotent: a second request while the same screen is open is ignored.

Every screen with a fixed id (session-detail, customer-record, customer-search, manager-pin…) is a
child of the App, and Textual raises DuplicateIds when a second one with the same id is pushed: a
double tap on Enter, or two keys bundled together over a slow SSH link, used to end the app.

One mechanism for every push (`push_screen` and `push_screen_wait` both pass here), mixed into the
App (`ScreenOpenGuard`):
- a screen whose id is on the screen stack is not pushed again. `push_screen` returns at once;
  `push_screen_wait` returns None, which every caller reads as "cancelled" (the flow that asked
  second stops, the one that asked first carries on);
- a screen whose id still belongs to a screen that was just closed (popped, not yet removed) is
  pushed as soon as the old one is gone, so Esc then Enter, typed together, reopens it.

`screen_is_open(app, id)` lets an action say where the open screen is instead of doing nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.screen import Screen
from textual.widget import AwaitMount, Widget

if TYPE_CHECKING:
    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)


def _stacked(app: App[Any], screen_id: str) -> Screen[Any] | None:
    for stack in app._screen_stacks.values():
        for screen in stack:
            if screen.id == screen_id:
                return screen
    return None


def screen_is_open(app: App[Any], screen_id: str) -> bool:
    """Is a screen with this id on the stack (it may be under the current one)?"""
    return _stacked(app, screen_id) is not None


class ScreenOpenGuard(_AppBase):
    """App mixin: see the module docstring."""

    def push_screen(self, screen: Any, callback: Any = None, wait_for_dismiss: bool = False,
                    *, mode: str | None = None) -> Any:
        app = self
        if isinstance(screen, Screen) and screen.id and not screen.is_running:
            holder = app._nodes._get_by_id(screen.id)
            if holder is not None and holder is not screen:
                if _stacked(app, screen.id) is not None:
                    log.info("screen %r is already open: a second request was ignored", screen.id)
                    return _ignored(holder, wait_for_dismiss)
                return self._push_after_removal(holder, screen, callback, wait_for_dismiss, mode)
        if wait_for_dismiss:  # App.push_screen's overloads tell the two results apart by this literal
            return super().push_screen(screen, callback, True, mode=mode)
        return super().push_screen(screen, callback, False, mode=mode)

    def _push_after_removal(self, old: Any, screen: Screen[Any], callback: Any, wait_for_dismiss: bool,
                            mode: str | None) -> Any:
        """The id still belongs to a closing screen: push once it is removed (its task has ended)."""
        app = self
        log.info("screen %r is still closing: it opens again once removed", screen.id)
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def push_later() -> None:
            try:
                for _ in range(1000):  # its removal ends with its task; a few loop turns at most otherwise
                    if app._nodes._get_by_id(screen.id or "") is not old:
                        break
                    task = old._task if old is not None else None
                    if task is not None and not task.done():
                        await asyncio.wait([task])
                    else:
                        await asyncio.sleep(0)
                if _stacked(app, screen.id or "") is not None:  # another request got there first
                    outcome: Any = None
                else:
                    outcome = self.push_screen(screen, callback, wait_for_dismiss, mode=mode)
                    if wait_for_dismiss:
                        outcome = await outcome
                    else:
                        await outcome
                        outcome = None
            except BaseException as exc:
                if not result.done():
                    result.set_exception(exc)
                raise
            if not result.done():
                result.set_result(outcome)

        task = asyncio.create_task(push_later(), name=f"push {screen.id} after removal")
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        if wait_for_dismiss:
            return result
        return _Waiter(result)


_pending: set[asyncio.Task[None]] = set()  # keeps the deferred pushes alive until they run


class _Waiter:
    """Awaitable like AwaitMount: resolves when the deferred push has mounted the screen."""

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def __await__(self) -> Any:
        return self._future.__await__()


def _ignored(holder: Widget, wait_for_dismiss: bool) -> Any:
    if not wait_for_dismiss:
        return AwaitMount(holder, [])
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future

