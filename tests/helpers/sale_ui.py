"""Pilot steps through the sale flow: the app with fast devices, a counting key presser, a session opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.pilot import Pilot

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from clarity_tui.screens.session_detail import SessionDetailScreen
from db.engine import Database
from tests.helpers.sale import fast_devices
from tests.helpers.signature import every_point_shown
from tests.helpers.ui import focus_bubble, make_app, wait_until


def sale_app(settings: Settings, db: Database, **kw: Any) -> ClarityApp:
    return make_app(fast_devices(settings), db, fixed_clock=True, **kw)


@dataclass
class Keys:
    """Presses keys and counts them (typing into fields is counted apart)."""

    pilot: Pilot
    presses: list[str] = field(default_factory=list)
    typed: int = 0

    async def press(self, *keys: str) -> None:
        for key in keys:
            self.presses.append(key)
            await self.pilot.press(key)

    async def type(self, text: str) -> None:
        self.typed += len(text)
        await self.pilot.press(*text)

    async def next_field(self) -> None:
        """Enter inside a form moves to the next field: part of typing the fields."""
        self.typed += 1
        await self.pilot.press("enter")


async def open_session(pilot: Pilot, keys: Keys, session_id: int) -> None:
    await focus_bubble(pilot, session_id)
    await keys.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SessionDetailScreen)
                     and pilot.app.screen.detail is not None, "session detail")


async def signer_done(pilot: Pilot) -> None:
    """Wait until the simulated signer has drawn the whole signature (and the screen has it)."""
    app = pilot.app
    assert isinstance(app, ClarityApp)
    assert app.devices is not None
    pad = app.devices.signature_pad
    await wait_until(pilot, lambda: getattr(pad, "signer_finished", False), "the simulated signer to finish", 20)
    await wait_until(pilot, lambda: len(getattr(app.screen, "strokes", ())) >= 4, "strokes on screen")
    await wait_until(pilot, lambda: getattr(app.screen, "ready", True), "the pad to say the signature is finished")
    await wait_until(pilot, lambda: every_point_shown(pad, getattr(app.screen, "strokes", ())), "every point on screen")
    await pilot.pause()
