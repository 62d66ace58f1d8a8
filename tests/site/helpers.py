"""Helpers for the site tests: sign in through the PIN pad, a clock the test moves."""

from __future__ import annotations

import datetime as dt

from textual.pilot import Pilot
from textual.widgets import OptionList

from clarity_tui.config import Settings
from clarity_tui.screens.signin import SignInScreen
from tests.uihelpers import FIXED_NOW, wait_until

PINS = {"Alex Attendant": "123456", "Morgan Manager": "654321", "Taylor Tech": "111111", "Sam Support": "999999"}


class Clock:
    """The app's injectable clock, moved by the test (idle sign-out, lockout expiry)."""

    def __init__(self, start: dt.datetime = FIXED_NOW) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def signin_settings(settings: Settings, idle: int = 300, attempts: int = 5, lockout: int = 300) -> Settings:
    ui = settings.ui.model_copy(update={"idle_signout_seconds": idle, "lockout_attempts": attempts,
                                        "lockout_seconds": lockout, "show_clock": False})
    return settings.model_copy(update={"ui": ui})


async def pad(pilot: Pilot) -> SignInScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen) and bool(app.screen._choices),
                     "the PIN pad with its operators")
    return app.screen  # type: ignore[return-value]


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
    screen = await choose(pilot, name)
    await pilot.press(*(pin or PINS[name]))
    await wait_until(pilot, lambda: screen not in app.screen_stack and app.actor.name == name, f"{name} signed in")


def message(screen: SignInScreen) -> str:
    return str(screen.query_one("#signin-message").render())
