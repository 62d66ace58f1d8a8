"""Device status for the UI: the message the app posts when any device changes, and the board's line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from clarity_tui.devices import DeviceSet


@dataclass
class DevicesChanged(Message):
    """A device's status changed (posted from whichever thread changed it; post_message is thread-safe)."""

    kind: str
    state: str
    reason: str


def devices_line(devices: DeviceSet | None) -> str:
    """The board status bar's device part, or "" when the app has no devices."""
    return f"Devices: {devices.summary()}" if devices is not None else ""
