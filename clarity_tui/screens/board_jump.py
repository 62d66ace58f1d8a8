"""Type-to-jump on the lanes board: letters and digits typed on the board build a plate prefix, and the first
bubble whose plate starts with it gets the focus.

The prefix is forgotten after PAUSE seconds without a key (measured by the app's clock, so tests and the
simulator's fixed clocks agree), or at once by Esc. A key that a board binding owns (h j k l move) still does
its job when no prefix is being typed; once a prefix is under way, every letter and digit extends it, so a
plate such as "HKL 123" is typed after "/" (which starts an empty prefix) or after a first unbound character.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TypeVar

from clarity_tui.services.plates import normalize_plate

T = TypeVar("T")
PAUSE = dt.timedelta(seconds=1.5)
MAX_PREFIX = 10


class PlatePrefix:
    """The plate being typed on the board; no Textual here."""

    def __init__(self, now: Callable[[], dt.datetime]) -> None:
        self._now = now
        self._text = ""
        self._started = False
        self._last: dt.datetime | None = None

    @property
    def live(self) -> bool:
        """A prefix is being typed: started, and the last key came less than PAUSE ago."""
        if not self._started or self._last is None:
            return False
        if self._now() - self._last >= PAUSE:
            self.clear()
            return False
        return True

    @property
    def text(self) -> str:
        return self._text if self.live else ""

    def start(self) -> None:
        self._text = ""
        self._started = True
        self._last = self._now()

    def add(self, character: str) -> str:
        if not self.live:
            self.start()
        self._text = normalize_plate(self._text + character)[:MAX_PREFIX]
        self._last = self._now()
        return self._text

    def back(self) -> str:
        self._text = self._text[:-1]
        self._last = self._now()
        return self._text

    def clear(self) -> None:
        self._text = ""
        self._started = False
        self._last = None


def first_match(prefix: str, plates: Sequence[tuple[T, str]]) -> T | None:
    """The first item (in board order) whose plate, normalised, starts with `prefix`."""
    if not prefix:
        return None
    return next((item for item, plate in plates if normalize_plate(plate).startswith(prefix)), None)
