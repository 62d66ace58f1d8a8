"""The fixed test day, and a clock the test moves (idle sign-out, lockout expiry)."""

from __future__ import annotations

import datetime as dt

FIXED_NOW = dt.datetime(2026, 11, 22, 14, 30, tzinfo=dt.UTC)
TODAY = FIXED_NOW.date()


class Clock:
    """The app's injectable clock, moved by the test."""

    def __init__(self, start: dt.datetime = FIXED_NOW) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
