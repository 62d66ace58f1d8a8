"""Pilot basics: build the app on a test database, wait for the UI to catch up, read what it shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from db.engine import Database
from hardware.base import DeviceState
from tests.helpers.clock import FIXED_NOW


def make_app(settings: Settings, db: Database, *, fixed_clock: bool = False, **kw: Any) -> ClarityApp:
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
            raise AssertionError(f"timed out waiting for: {what}\n{app_state(pilot.app)}")
        await pilot.pause(0.05)


def app_state(app: Any) -> str:
    """What the app shows and does now: for the message of a test that timed out."""
    screens = " > ".join(type(s).__name__ for s in app.screen_stack)
    notes = [n.message for n in app._notifications]
    workers = [f"{w.group}:{w.name}:{w.state.name}" for w in app.workers]
    return f"screens: {screens}; focused: {app.focused!r}; notifications: {notes}; workers: {workers}"


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


async def focus_bubble(pilot: Pilot, session_id: int) -> None:
    """Arrow keys aside: put the board's focus on a bubble (the attendant's cursor is already there)."""
    from clarity_tui.widgets.bubble import SessionBubble

    app = pilot.app
    await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{session_id}")), f"bubble {session_id}")
    await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "board focus")
    app.screen.query_one(f"#session-{session_id}").focus()
    await pilot.pause()


async def open_focused_session(pilot: Pilot) -> None:
    """Enter on the board's focused bubble; return once its session screen has loaded."""
    from clarity_tui.screens.session_detail import SessionDetailScreen
    from clarity_tui.widgets.bubble import SessionBubble

    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None,
                     "the session")


def screen_id(app: ClarityApp) -> str | None:
    return app.screen.id


async def at(pilot: Pilot, screen: str, what: str | None = None) -> None:
    await wait_until(pilot, lambda: pilot.app.screen.id == screen, what or f"the {screen} screen")
    await pilot.pause()


async def devices_ready(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, ClarityApp)
    await wait_until(pilot, lambda: app.devices is not None and all(d.status.state is not DeviceState.DISCONNECTED for _, d in app.devices.items()),
                     "devices open")


def text_of(app: ClarityApp, selector: str) -> str:
    """What a widget shows on screen, as plain text."""
    from textual.geometry import Region

    widget = app.screen.query_one(selector)
    width, height = widget.outer_size
    lines = [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]
    return " ".join(" ".join(lines).split())  # wrapped lines read as one
