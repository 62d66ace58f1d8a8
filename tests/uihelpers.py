"""Helpers for Pilot tests: build the app on a test database and wait for the UI to catch up."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from textual.pilot import Pilot

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from db.engine import Database

FIXED_NOW = dt.datetime(2026, 11, 22, 14, 30, tzinfo=dt.UTC)


def make_app(settings: Settings, db: Database, *, fixed_clock: bool = False, **kw) -> ClarityApp:  # noqa: ANN003
    if fixed_clock:
        settings = settings.model_copy(update={"ui": settings.ui.model_copy(update={"show_clock": False})})
        kw.setdefault("clock", lambda: FIXED_NOW)
    return ClarityApp(settings=settings, db=db, **kw)


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Let the app run until predicate() holds; fail with `what` if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await pilot.pause(0.05)


def bubble_ids(app: ClarityApp) -> list[int]:
    from clarity_tui.widgets.bubble import SessionBubble

    return [b.session_id for b in app.screen.query(SessionBubble)]


async def tap_bubble(pilot: Pilot, session_id: int) -> None:
    """Click the middle of a session bubble once it is laid out (as a finger would)."""
    selector = f"#session-{session_id}"
    app = pilot.app
    await wait_until(pilot, lambda: bool(app.screen.query(selector)) and app.screen.query_one(selector).region.area > 0,
                     f"bubble {session_id} on screen")
    widget = app.screen.query_one(selector)
    await pilot.click(selector, offset=(widget.region.width // 2, widget.region.height // 2))
