"""A simulated plate camera: vehicles arrive at a configurable rate, with occasional misreads.

What arrives (a member's car, a legacy member's, an unknown one) comes from a
`source` callable that the simulator injects, so this driver knows nothing of
the database.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any
from dataclasses import dataclass, field, replace

from hardware.base import DeviceState
from hardware.plate_reader.base import PlateEvent, PlateReader

# What a camera confuses, as read -> misread.
MISREADS = {"0": "O", "O": "0", "1": "I", "I": "1", "8": "B", "B": "8", "5": "S", "S": "5", "2": "Z", "Z": "2"}


def misread(plate: str, rng: random.Random) -> str:
    """Swap one confusable character, or drop one character when none is confusable."""
    spots = [i for i, ch in enumerate(plate) if ch in MISREADS]
    if spots:
        i = rng.choice(spots)
        return plate[:i] + MISREADS[plate[i]] + plate[i + 1 :]
    if len(plate) > 3:
        i = rng.randrange(len(plate))
        return plate[:i] + plate[i + 1 :]
    return plate


@dataclass
class SimulatedPlateReader(PlateReader):
    source: Callable[[], PlateEvent] | None = None
    arrivals_per_minute: float = 6.0
    misread_rate: float = 0.07
    seed: int | None = None
    driver_name: str = field(init=False, default="simulated")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rng = random.Random(self.seed)
        self._closed = asyncio.Event()
        self._injected: asyncio.Queue[PlateEvent] = asyncio.Queue()

    @classmethod
    def from_config(cls, port: str | None, options: dict, **context: Any) -> SimulatedPlateReader:
        """From settings: no vehicle source (the scenario simulator has its own camera), so it only
        yields injected reads unless a `source` is given in context."""
        return cls(
            source=context.get("plate_source"),
            arrivals_per_minute=float(options.get("arrivals_per_minute", 0.0)),
            misread_rate=float(options.get("misread_rate", 0.0)),
            seed=options.get("seed"),
        )

    @property
    def port_description(self) -> str:
        if self.source is None:
            return "simulated (injected reads)"
        return f"simulated, {self.arrivals_per_minute:g}/min"

    async def open(self) -> None:
        self._closed = asyncio.Event()  # reopenable after close()
        self._set_status(DeviceState.CONNECTED)

    async def close(self) -> None:
        self._closed.set()
        self._set_status(DeviceState.DISCONNECTED)

    def inject(self, event: PlateEvent) -> None:
        """Queue a read as if the camera saw it (the hardware screen's "inject a plate")."""
        self._injected.put_nowait(event)

    def next_event(self) -> PlateEvent:
        if self.source is None:
            raise RuntimeError("SimulatedPlateReader needs a source of vehicles")
        event = self.source()
        if self._rng.random() < self.misread_rate:
            event = replace(event, plate=misread(event.plate, self._rng), confidence=round(self._rng.uniform(0.55, 0.8), 2))
        return event

    async def events(self) -> AsyncIterator[PlateEvent]:
        while not self._closed.is_set():
            if self.arrivals_per_minute > 0:
                delay = self._rng.expovariate(self.arrivals_per_minute / 60.0)
            else:
                delay = 3600.0
            get_injected = asyncio.ensure_future(self._injected.get())
            closed = asyncio.ensure_future(self._closed.wait())
            done, pending = await asyncio.wait({get_injected, closed}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if closed in done:
                return
            if get_injected in done:
                yield get_injected.result()
            elif self.source is not None:
                yield self.next_event()
