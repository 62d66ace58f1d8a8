from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hardware.base import Device


@dataclass(frozen=True)
class PlateEvent:
    """One plate read. `lane` is a lane name or a camera id; the sessions service maps it."""

    plate: str
    lane: str
    region: str = ""
    confidence: float = 1.0
    make: str | None = None
    model: str | None = None
    colour: str | None = None
    image_ref: str | None = None


@dataclass
class PlateReader(Device, abc.ABC):
    kind: str = field(init=False, default="plate_reader")

    @property
    def records_itself(self) -> bool:
        """True when the driver records reads itself (the webhook receiver); else the app records events()."""
        return False

    @abc.abstractmethod
    def events(self) -> AsyncIterator[PlateEvent]:
        """Yield plate events until closed."""
