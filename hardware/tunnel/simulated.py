"""The simulated tunnel: outcomes set in advance, and cars that move through over a settable time.

Tests, the hardware screen and the simulator choose what the next commands meet (`set_outcome`: ok,
busy, fault, offline). A car sent and let through its gate enters the tunnel (`in_tunnel`) and leaves
`travel_seconds` later: `tick()` moves the cars whose time is up out, calls every `on_exit` listener
with each, and keeps them in `exited`. Time comes from `clock` (monotonic seconds; a test passes its
own), so nothing here sleeps: the simulator runs `run()` as a task, or calls `tick()` itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hardware.base import DeviceState
from hardware.tunnel.base import TunnelController, TunnelError, TunnelState, TunnelWash


class TunnelOutcome(StrEnum):
    OK = "ok"
    BUSY = "busy"
    FAULT = "fault"
    OFFLINE = "offline"


OUTCOME_LABELS: dict[TunnelOutcome, str] = {
    TunnelOutcome.OK: "Ready",
    TunnelOutcome.BUSY: "Busy",
    TunnelOutcome.FAULT: "Fault",
    TunnelOutcome.OFFLINE: "Offline",
}

_STATES = {TunnelOutcome.OK: TunnelState.READY, TunnelOutcome.BUSY: TunnelState.BUSY,
           TunnelOutcome.FAULT: TunnelState.FAULT, TunnelOutcome.OFFLINE: TunnelState.OFFLINE}


def parse_tunnel_outcome(value: str) -> TunnelOutcome:
    try:
        return TunnelOutcome(value.strip().lower())
    except ValueError:
        known = ", ".join(o.value for o in TunnelOutcome)
        raise TunnelError("config", device="simulated tunnel",
                          detail=f"unknown outcome '{value}': use one of {known}") from None


@dataclass(frozen=True)
class CarInTunnel:
    wash: TunnelWash
    entered_at: float
    leaves_at: float


ExitListener = Callable[[CarInTunnel], None]


@dataclass
class SimulatedTunnel(TunnelController):
    outcome: TunnelOutcome = TunnelOutcome.OK
    travel_seconds: float = 90.0
    clock: Callable[[], float] = time.monotonic
    driver_name: str = field(init=False, default="simulated")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.outcome = parse_tunnel_outcome(str(self.outcome))
        self._lock = threading.Lock()  # the lane's worker threads and the simulator's loop share it
        self._pending: dict[str, TunnelWash] = {}  # lane -> wash sent, gate not yet opened
        self._in_tunnel: list[CarInTunnel] = []
        self.exited: list[CarInTunnel] = []
        self.sent: list[TunnelWash] = []  # every wash the tunnel took, in order
        self.gates_opened: list[str] = []
        self._exit_listeners: list[ExitListener] = []

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> SimulatedTunnel:
        outcome = context.get("outcome") or options.get("outcome", "ok")
        travel = options.get("travel_seconds", 90.0)
        if not isinstance(travel, (int, float)) or travel < 0:
            raise TunnelError("config", device="simulated tunnel",
                              detail=f"travel_seconds must be a number of seconds, not {travel!r}")
        return cls(outcome=parse_tunnel_outcome(str(outcome)), travel_seconds=float(travel))

    @property
    def port_description(self) -> str:
        return f"simulated tunnel ({self.travel_seconds:g} s)"

    @property
    def device_name(self) -> str:
        return "simulated tunnel"

    def set_outcome(self, outcome: TunnelOutcome | str) -> None:
        """What the next commands meet; the status shows it at once (a fault shows on the board)."""
        self.outcome = parse_tunnel_outcome(str(outcome))
        self._show_state(_STATES[self.outcome])

    def on_exit(self, listener: ExitListener) -> None:
        """Called (from whichever thread ticks) with each car as it leaves the tunnel."""
        self._exit_listeners.append(listener)

    @property
    def in_tunnel(self) -> list[CarInTunnel]:
        with self._lock:
            return list(self._in_tunnel)

    async def open(self) -> None:
        self._show_state(_STATES[self.outcome])

    async def close(self) -> None:
        self._set_status(DeviceState.DISCONNECTED)

    def _check(self, register: str | None = None) -> None:
        state = _STATES[self.outcome]
        if state is not TunnelState.READY:
            error = TunnelError(self.outcome.value, device=self.device_name, register=register)
            self._show_state(state, error.summary)
            raise error
        self._show_state(TunnelState.READY)

    async def send_wash(self, wash: TunnelWash) -> None:
        self._check()
        with self._lock:
            self._pending[wash.lane] = wash
            self.sent.append(wash)

    async def open_gate(self, lane: str) -> None:
        self._check()
        now = self.clock()
        with self._lock:
            self.gates_opened.append(lane)
            wash = self._pending.pop(lane, None)
            if wash is not None:
                self._in_tunnel.append(CarInTunnel(wash, now, now + self.travel_seconds))
        self.tick()

    async def read_state(self) -> TunnelState:
        state = _STATES[self.outcome]
        self._show_state(state)
        return state

    def tick(self) -> list[CarInTunnel]:
        """Move out the cars whose time in the tunnel is up; returns them (listeners hear each)."""
        now = self.clock()
        with self._lock:
            leaving = [car for car in self._in_tunnel if car.leaves_at <= now]
            self._in_tunnel = [car for car in self._in_tunnel if car.leaves_at > now]
            self.exited.extend(leaving)
        for car in leaving:
            for listener in list(self._exit_listeners):
                listener(car)
        return leaving

    async def run(self, interval: float = 0.5) -> None:
        """Tick until cancelled (the simulator's task)."""
        while True:
            self.tick()
            await asyncio.sleep(interval)
