"""Stand-ins for a device that could not be built (bad driver name, bad options).

The app keeps running and shows the reason; every call raises it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hardware.base import Device, DeviceError, DeviceState
from hardware.card_reader.base import CardReader, CardToken, PaymentResult
from hardware.plate_reader.base import PlateEvent, PlateReader
from hardware.signature_pad.base import PadListener, Signature, SignaturePad
from hardware.tunnel.base import TunnelController, TunnelError, TunnelState, TunnelWash


class _Unavailable(Device):
    """What every stand-in shares: the reason, shown as the device's error and raised by every call."""

    reason: str
    wanted_driver: str

    def _init_unavailable(self) -> None:
        self._set_status(DeviceState.ERROR, self.reason)

    def _fail(self) -> DeviceError:
        return DeviceError(self.reason, code="config")

    async def open(self) -> None:
        raise self._fail()


@dataclass
class UnavailableCardReader(_Unavailable, CardReader):
    reason: str = "not configured"
    wanted_driver: str = "?"
    driver_name: str = field(init=False, default="unavailable")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.driver_name = self.wanted_driver
        self._init_unavailable()

    async def collect_card_to_save(self, *, customer_id: str | None = None, idempotency_key: str | None = None) -> CardToken:
        raise self._fail()

    async def collect_payment(self, amount_cents: int, currency: str = "usd", *, customer_id: str | None = None,
                              description: str | None = None, idempotency_key: str | None = None) -> PaymentResult:
        raise self._fail()

    async def cancel(self) -> None:
        return None


@dataclass
class UnavailableSignaturePad(_Unavailable, SignaturePad):
    reason: str = "not configured"
    wanted_driver: str = "?"
    driver_name: str = field(init=False, default="unavailable")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.driver_name = self.wanted_driver
        self._init_unavailable()

    async def capture(self, on_update: PadListener | None = None, *, idle_seconds: float | None = None,
                      timeout: float | None = None) -> Signature:
        raise self._fail()


@dataclass
class UnavailablePlateReader(_Unavailable, PlateReader):
    reason: str = "not configured"
    wanted_driver: str = "?"
    driver_name: str = field(init=False, default="unavailable")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.driver_name = self.wanted_driver
        self._init_unavailable()

    async def events(self) -> AsyncIterator[PlateEvent]:
        raise self._fail()
        yield  # pragma: no cover - makes this an async generator




@dataclass
class UnavailableTunnelController(_Unavailable, TunnelController):
    """A controller that could not be built (bad driver, bad register map): its state is a fault, and a
    dispatch fails with the reason (the car stays queued)."""

    reason: str = "not configured"
    wanted_driver: str = "?"
    driver_name: str = field(init=False, default="unavailable")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.driver_name = self.wanted_driver
        self._init_unavailable()

    def _fail(self) -> TunnelError:
        return TunnelError("config", device=f"tunnel {self.wanted_driver}", message=self.reason)

    async def send_wash(self, wash: TunnelWash) -> None:
        raise self._fail()

    async def open_gate(self, lane: str) -> None:
        raise self._fail()

    async def read_state(self) -> TunnelState:
        return TunnelState.FAULT


UNAVAILABLE = {
    "card_reader": UnavailableCardReader,
    "signature_pad": UnavailableSignaturePad,
    "plate_reader": UnavailablePlateReader,
    "tunnel": UnavailableTunnelController,
}
