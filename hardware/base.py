"""What every device has: a kind, a driver name, and a status with a reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class DeviceState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    BUSY = "busy"
    ERROR = "error"


@dataclass(frozen=True)
class DeviceStatus:
    state: DeviceState
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state in (DeviceState.CONNECTED, DeviceState.BUSY)


class DeviceError(Exception):
    """A device problem; str() is a message an attendant or technician can act on.

    `code` is for programs (e.g. "offline", "timeout", "declined"); the message is for people.
    """

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


StatusListener = Callable[["Device", DeviceStatus], None]


@dataclass
class Device:
    """Base for every driver. Subclasses call `_set_status` on every change."""

    kind: str = field(init=False, default="device")
    driver_name: str = field(init=False, default="?")

    def __post_init__(self) -> None:
        self._status = DeviceStatus(DeviceState.DISCONNECTED)
        self._last_error: str | None = None
        self._listeners: list[StatusListener] = []

    @property
    def status(self) -> DeviceStatus:
        return self._status

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def add_status_listener(self, listener: StatusListener) -> None:
        """Called from whichever thread changes the status; bridge to the UI loop yourself."""
        self._listeners.append(listener)

    def _set_status(self, state: DeviceState, reason: str = "") -> None:
        self._status = DeviceStatus(state, reason)
        if state is DeviceState.ERROR and reason:
            self._last_error = reason
        for listener in list(self._listeners):
            listener(self, self._status)

    @property
    def port_description(self) -> str:
        return "-"

    async def open(self) -> None:
        """Connect to the device."""

    async def close(self) -> None:
        """Release the device."""
