"""Sign in through the PIN pad, as a person does (arrow keys to the name, then the PIN)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import OptionList

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from clarity_tui.screens.signin import SignInScreen
from db.engine import Database
from db.models import OperatorShift
from tests.helpers.ui import wait_until

PINS = {"Alex Attendant": "123456", "Morgan Manager": "654321", "Taylor Tech": "111111", "Sam Support": "999999"}


def signin_settings(settings: Settings, idle: int = 300, attempts: int = 5, lockout: int = 300) -> Settings:
    ui = settings.ui.model_copy(update={"idle_signout_seconds": idle, "lockout_attempts": attempts,
                                        "lockout_seconds": lockout, "show_clock": False})
    return settings.model_copy(update={"ui": ui})


async def pad(pilot: Pilot) -> SignInScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen) and bool(app.screen._choices),
                     "the PIN pad with its operators")
    screen = app.screen
    assert isinstance(screen, SignInScreen)
    return screen


async def choose(pilot: Pilot, name: str) -> SignInScreen:
    """Pick the operator with the arrow keys, as a person would."""
    screen = await pad(pilot)
    target = next(i for i, c in enumerate(screen._choices) if c.name == name)
    current = screen.query_one(OptionList).highlighted or 0
    await pilot.press(*(["down"] * (target - current) if target >= current else ["up"] * (current - target)))
    assert screen.chosen is not None and screen.chosen.name == name
    return screen


async def sign_in(pilot: Pilot, name: str, pin: str | None = None) -> None:
    app = pilot.app
    assert isinstance(app, ClarityApp)
    screen = await choose(pilot, name)
    await pilot.press(*(pin or PINS[name]))
    await wait_until(pilot, lambda: screen not in app.screen_stack and app.actor.name == name, f"{name} signed in")


def message(screen: SignInScreen) -> str:
    return str(screen.query_one("#signin-message").render())


def shifts_last_active(db: Database) -> set[dt.datetime]:
    """When each shift last recorded activity (naive UTC): the idle check writes it, at most once a minute."""
    with db.read() as s:
        return {shift.last_activity_at.replace(tzinfo=None) for shift in s.exec(select(OperatorShift))}
