"""Pilot helpers for the sale flow: a counting key presser and waits for each step."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.pilot import Pilot

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from clarity_tui.screens.session_detail import SessionDetailScreen
from hardware.base import DeviceState
from tests.sale.conftest import fast_devices
from tests.uihelpers import make_app, wait_until


def sale_app(settings: Settings, db, **kw) -> ClarityApp:  # noqa: ANN001, ANN003
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


def screen_id(app: ClarityApp) -> str | None:
    return app.screen.id


async def at(pilot: Pilot, screen: str, what: str | None = None) -> None:
    await wait_until(pilot, lambda: pilot.app.screen.id == screen, what or f"the {screen} screen")
    await pilot.pause()


async def devices_ready(pilot: Pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: all(d.status.state is not DeviceState.DISCONNECTED for _, d in app.devices.items()),
                     "devices open")


async def focus_bubble(pilot: Pilot, session_id: int) -> None:
    """Arrow keys aside: put the board's focus on a bubble (the attendant's cursor is already there)."""
    from clarity_tui.widgets.bubble import SessionBubble

    app = pilot.app
    await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{session_id}")), f"bubble {session_id}")
    await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "board focus")
    app.screen.query_one(f"#session-{session_id}").focus()
    await pilot.pause()


async def open_session(pilot: Pilot, keys: Keys, session_id: int) -> None:
    await focus_bubble(pilot, session_id)
    await keys.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, SessionDetailScreen)
                     and pilot.app.screen.detail is not None, "session detail")


async def signer_done(pilot: Pilot) -> None:
    """Wait until the simulated signer has drawn the whole signature (and the screen has it)."""
    app = pilot.app
    pad = app.devices.signature_pad
    await wait_until(pilot, lambda: getattr(pad, "signer_finished", False), "the simulated signer to finish", 20)
    await wait_until(pilot, lambda: len(getattr(app.screen, "strokes", ())) >= 4, "strokes on screen")
    await wait_until(pilot, lambda: getattr(app.screen, "ready", True), "the pad to say the signature is finished")
    await pilot.pause(0.1)


def text_of(app: ClarityApp, selector: str) -> str:
    """What a widget shows on screen, as plain text."""
    from textual.geometry import Region

    widget = app.screen.query_one(selector)
    width, height = widget.outer_size
    lines = [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]
    return " ".join(" ".join(lines).split())  # wrapped lines read as one
