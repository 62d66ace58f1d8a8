"""Keys sent as one burst, as tmux or SSH deliver them (issue 14), or pressed slowly.

`burst` hands every key to the app's driver at once, the way the terminal driver does when one read
returns a whole packet of keys: nothing waits between keys (Pilot's `press` waits for the app to be
idle after each key, which is exactly what a real burst does not do). `slow` is Pilot's `press`.
"""

from __future__ import annotations

import unicodedata

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot


def text(s: str) -> list[str]:
    """The keys that type `s`."""
    return list(s)


def key_event(key: str) -> events.Key:
    """The Key event the terminal driver makes for `key` (as Textual's own `_press_keys` does)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def burst(pilot: Pilot, keys: list[str]) -> None:
    """Every key read at once: handed to the driver with no wait in between (the test then waits for
    the outcome it expects)."""
    app = pilot.app
    driver = app._driver
    assert driver is not None
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        driver.send_message(event)


async def slow(pilot: Pilot, keys: list[str]) -> None:
    """The same keys one at a time, Pilot waiting for the app after each."""
    for key in keys:
        await pilot.press(key)
