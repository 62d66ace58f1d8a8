"""Gate and tunnel controllers (issue 18): send a wash to the tunnel, open a lane's gate, report state.

A controller is told what to wash (`TunnelWash`: the lane, the package's and the extras' tunnel codes,
the plate) and then to open the lane's gate. Its state is ready, busy or fault, or offline when it
cannot be reached. Every failure is a `TunnelError` naming the device and, for a register-mapped
controller (Modbus), the register or coil that failed, so a technician knows where to look.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from hardware.base import Device, DeviceError, DeviceState


class TunnelState(StrEnum):
    READY = "ready"
    BUSY = "busy"
    FAULT = "fault"
    OFFLINE = "offline"


# The device status each controller state shows as (the board's device bar, the hardware screen, doctor).
DEVICE_STATES = {
    TunnelState.READY: DeviceState.CONNECTED,
    TunnelState.BUSY: DeviceState.BUSY,
    TunnelState.FAULT: DeviceState.ERROR,
    TunnelState.OFFLINE: DeviceState.ERROR,
}


@dataclass(frozen=True)
class TunnelWash:
    """What the tunnel is told for one car. Codes are `WashItem.tunnel_code`s: the package's number and
    each extra's bit number."""

    lane: str  # the lane's name, as in the settings ("Lane 1")
    package_code: int
    extras_codes: tuple[int, ...] = ()
    plate: str = ""
    wash_id: int | None = None  # ours, for the simulator and the logs; not sent

    @property
    def extras_mask(self) -> int:
        mask = 0
        for code in self.extras_codes:
            mask |= 1 << code
        return mask


# What the attendant is told for each failure code.
ERROR_MESSAGES = {
    "busy": "Tunnel controller busy",
    "fault": "Tunnel controller fault",
    "offline": "Tunnel controller offline",
    "timeout": "Tunnel controller did not answer",
    "rejected": "Tunnel controller refused the command",
    "config": "Tunnel controller not set up",
    "error": "Tunnel controller problem",
}


class TunnelError(DeviceError):
    """A controller failure. `device` names the controller (driver and address); `register` the register
    or coil that failed ("register 40010", "coil 00003"), when there is one."""

    def __init__(self, code: str, *, device: str, register: str | None = None, detail: str | None = None,
                 message: str | None = None) -> None:
        where = f" ({register})" if register else ""
        text = f"{ERROR_MESSAGES.get(code, ERROR_MESSAGES['error'])}{where}"
        if detail:
            text = f"{text}: {detail}"
        super().__init__(message or f"{text} [{device}]", code=code)
        self.device = device
        self.register = register
        self.detail = detail

    @property
    def summary(self) -> str:
        """The message without the device's address: what the attendant reads on the lane."""
        where = f" ({self.register})" if self.register else ""
        return f"{ERROR_MESSAGES.get(self.code, ERROR_MESSAGES['error'])}{where}"

    @property
    def state(self) -> TunnelState:
        """The controller state this failure means."""
        if self.code == "busy":
            return TunnelState.BUSY
        if self.code in ("offline", "timeout"):
            return TunnelState.OFFLINE
        return TunnelState.FAULT


@dataclass
class TunnelController(Device, abc.ABC):
    kind: str = field(init=False, default="tunnel")

    @abc.abstractmethod
    async def send_wash(self, wash: TunnelWash) -> None:
        """Tell the tunnel what to wash for the next car on `wash.lane`. Raises TunnelError (busy, fault,
        offline, timeout): the car was not sent."""

    @abc.abstractmethod
    async def open_gate(self, lane: str) -> None:
        """Open the lane's gate (the car drives into the tunnel). Raises TunnelError."""

    @abc.abstractmethod
    async def read_state(self) -> TunnelState:
        """Ask the controller for its state; OFFLINE when it cannot be reached (never raises for that)."""

    async def watch(self, interval: float = 5.0) -> None:
        """Ask the state every `interval` seconds until cancelled, so a controller that goes down (or comes
        back) while no car is sent shows on the board (the app runs it as a task)."""
        while True:
            await self.read_state()
            await asyncio.sleep(interval)

    def _show_state(self, state: TunnelState, reason: str = "") -> None:
        """Mirror a controller state on the device status (what the board and doctor show)."""
        device_state = DEVICE_STATES[state]
        if device_state is DeviceState.ERROR and not reason:
            reason = ERROR_MESSAGES["offline" if state is TunnelState.OFFLINE else "fault"]
        if self.status.state is not device_state or self.status.reason != reason:
            self._set_status(device_state, reason)


async def check_controller(tunnel: TunnelController) -> tuple[bool, str]:
    """`doctor`'s check: open, ask the state, close. Ready passes; busy passes (a car is going through);
    fault, offline and a bad register map fail with what the controller or the settings said."""
    try:
        await tunnel.open()
        state = await tunnel.read_state()
    except DeviceError as exc:
        return False, str(exc)
    finally:
        await tunnel.close()
    where = tunnel.port_description
    if state is TunnelState.READY:
        return True, f"{where}: ready"
    if state is TunnelState.BUSY:
        return True, f"{where}: busy (a car is going through)"
    return False, f"{where}: {state.value.upper()}: {tunnel.last_error or state.value}: cars are queued until it is fixed"
