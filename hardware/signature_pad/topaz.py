"""Topaz SigLite / SignatureGem serial protocol, and the real serial driver.

Packets are 5 bytes. Byte 0 has bit 7 set (the sync bit), bit 6 = pen near
(proximity), bit 0 = pen down, bits 2-4 = packet type (0, 1 and 4 carry
coordinates). Bytes 1-4 have bit 7 clear and carry x (b1 low 7 bits, b2 high 5)
and y (b3, b4). 0x0FFF on both axes means "no valid position".

The pads use an FTDI USB-serial bridge at 19200 8-O-1. The port is a pyserial
URL, so `loop://` (the simulated pad) and `socket://host:port` run this same code.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from hardware.base import DeviceError, DeviceState
from hardware.signature_pad.base import (
    PadListener,
    PadUpdate,
    PenPoint,
    Signature,
    SignatureCancelled,
    SignaturePad,
    Stroke,
)

SYNC = 0x80
PROXIMITY = 0x40
PEN_DOWN = 0x01
COORDINATE_TYPES = frozenset({0, 1, 4})
INVALID = 0x0FFF
MAX_COORD = 0x0FFF


@dataclass(frozen=True)
class TopazPacket:
    x: int
    y: int
    pen_down: bool
    proximity: bool
    packet_type: int = 0

    @property
    def valid(self) -> bool:
        return not (self.x == INVALID and self.y == INVALID)


def encode_packet(x: int, y: int, pen_down: bool, proximity: bool = True, packet_type: int = 0) -> bytes:
    """The bytes a pad sends for one sample (used by the simulated pad and the tests)."""
    if not (0 <= x <= MAX_COORD and 0 <= y <= MAX_COORD):
        raise ValueError(f"coordinates out of range: {x}, {y}")
    if packet_type not in range(8):
        raise ValueError(f"packet type {packet_type} does not fit in 3 bits")
    b0 = SYNC | (PROXIMITY if proximity else 0) | (packet_type << 2) | (PEN_DOWN if pen_down else 0)
    return bytes((b0, x & 0x7F, (x >> 7) & 0x1F, y & 0x7F, (y >> 7) & 0x1F))


class TopazParser:
    """Incremental, resynchronising decoder. `feed` never raises, whatever the bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0  # bytes dropped while looking for a packet (for diagnostics)
        self.ignored_packets = 0  # well-formed packets of non-coordinate types

    def feed(self, data: bytes) -> list[TopazPacket]:
        self._buf.extend(data)
        out: list[TopazPacket] = []
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            if not buf[i] & SYNC:
                i += 1
                self.skipped += 1
                continue
            if n - i < 5:
                break  # wait for the rest of this packet
            body = buf[i + 1 : i + 5]
            bad = next((k for k, b in enumerate(body) if b & SYNC), None)
            if bad is not None:
                # A sync byte inside the body: the current header was garbage; restart there.
                self.skipped += bad + 1
                i += bad + 1
                continue
            b0, b1, b2, b3, b4 = buf[i], *body
            packet_type = (b0 >> 2) & 0x07
            i += 5
            if packet_type not in COORDINATE_TYPES:
                self.ignored_packets += 1
                continue
            out.append(
                TopazPacket(
                    x=((b2 & 0x1F) << 7) | (b1 & 0x7F),
                    y=((b4 & 0x1F) << 7) | (b3 & 0x7F),
                    pen_down=bool(b0 & PEN_DOWN),
                    proximity=bool(b0 & PROXIMITY),
                    packet_type=packet_type,
                )
            )
        del buf[:i]
        return out


@dataclass(frozen=True)
class PadModel:
    """A pad's raw coordinate range. Nominal values: calibrate per unit with the x_min/x_max/y_min/y_max options."""

    name: str
    x_min: int
    x_max: int
    y_min: int
    y_max: int
    has_lcd: bool = False

    @property
    def aspect(self) -> float:
        return (self.x_max - self.x_min) / max(1, self.y_max - self.y_min)


# Nominal ranges of the common SigLite / SignatureGem models (1x5 = 1" by 5" signing area,
# 4x3 = 4" by 3"). Units differ a little; technicians override with options.
PAD_MODELS: dict[str, PadModel] = {
    m.name: m
    for m in (
        PadModel("T-S460", 500, 2650, 350, 1050),
        PadModel("T-LBK460", 500, 2650, 350, 1050),
        PadModel("T-S461", 500, 2650, 350, 1050),
        PadModel("T-LBK462", 400, 2400, 350, 1950),
        PadModel("T-L462", 400, 2400, 350, 1950),
        PadModel("T-LBK755", 410, 2390, 250, 1950, has_lcd=True),
    )
}
DEFAULT_MODEL = "T-S460"


def resolve_model(options: dict[str, Any] | None) -> PadModel:
    options = options or {}
    name = str(options.get("model", DEFAULT_MODEL)).upper()
    base = PAD_MODELS.get(name)
    if base is None:
        known = ", ".join(PAD_MODELS)
        raise DeviceError(f"Unknown signature pad model '{name}': use one of {known}, "
                          "or give x_min/x_max/y_min/y_max in the pad's options.", code="config")
    try:
        model = PadModel(
            name,
            int(options.get("x_min", base.x_min)),
            int(options.get("x_max", base.x_max)),
            int(options.get("y_min", base.y_min)),
            int(options.get("y_max", base.y_max)),
            bool(options.get("has_lcd", base.has_lcd)),
        )
    except (TypeError, ValueError) as exc:
        raise DeviceError(f"Signature pad range options must be whole numbers ({exc}).", code="config") from exc
    if model.x_max <= model.x_min or model.y_max <= model.y_min:
        raise DeviceError("Signature pad range is empty: x_max must exceed x_min and y_max exceed y_min.", code="config")
    return model


def normalise(model: PadModel, x: int, y: int) -> tuple[float, float]:
    nx = (x - model.x_min) / (model.x_max - model.x_min)
    ny = (y - model.y_min) / (model.y_max - model.y_min)
    return min(1.0, max(0.0, nx)), min(1.0, max(0.0, ny))


def denormalise(model: PadModel, nx: float, ny: float) -> tuple[int, int]:
    return (round(model.x_min + nx * (model.x_max - model.x_min)), round(model.y_min + ny * (model.y_max - model.y_min)))


class StrokeBuilder:
    """Pen down adds points to the current stroke; pen up (or an invalid position) ends it."""

    def __init__(self, model: PadModel) -> None:
        self.model = model
        self.strokes: list[list[PenPoint]] = []
        self._open = False
        self.pen_down = False

    def add(self, packet: TopazPacket, t_ms: int) -> bool:
        """Returns True when the drawing changed."""
        if not packet.pen_down or not packet.valid:
            was_open = self._open
            self._open = False
            self.pen_down = False
            return was_open
        nx, ny = normalise(self.model, packet.x, packet.y)
        point = PenPoint(nx, ny, t_ms, packet.x, packet.y)
        if not self._open:
            self.strokes.append([])
            self._open = True
        self.strokes[-1].append(point)
        self.pen_down = True
        return True

    def clear(self) -> None:
        self.strokes.clear()
        self._open = False

    def frozen(self) -> tuple[Stroke, ...]:
        return tuple(Stroke(tuple(points)) for points in self.strokes if points)


def _open_serial(port: str, baudrate: int, read_timeout: float):  # noqa: ANN202
    import serial

    return serial.serial_for_url(
        port, baudrate=baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_ODD,
        stopbits=serial.STOPBITS_ONE, timeout=read_timeout,
    )


@dataclass
class TopazSerialPad(SignaturePad):
    """The real driver: a Topaz pad on a serial port (any pyserial URL)."""

    port: str = "/dev/ttyUSB0"
    baudrate: int = 19200
    options: dict[str, Any] = field(default_factory=dict)
    read_timeout: float = 0.05
    driver_name: str = field(init=False, default="serial")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model = resolve_model(self.options)
        self._serial = None
        self.parser = TopazParser()

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **_: Any) -> TopazSerialPad:
        return cls(port=port or "/dev/ttyUSB0", baudrate=int(options.get("baudrate", 19200)), options=dict(options))

    @property
    def port_description(self) -> str:
        return f"{self.port} {self.baudrate} 8O1 ({self.model.name})"

    @property
    def has_screen(self) -> bool:
        return self.model.has_lcd

    async def open(self) -> None:
        if self._serial is not None:
            return
        try:
            self._serial = await asyncio.to_thread(_open_serial, self.port, self.baudrate, self.read_timeout)
        except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, ValueError, OSError...
            reason = (f"Signature pad not found at {self.port} ({_short(exc)}): check its USB cable and the "
                      "port in the settings, then Retry.")
            self._set_status(DeviceState.ERROR, reason)
            raise DeviceError(reason, code="offline") from exc
        self._set_status(DeviceState.CONNECTED)

    async def close(self) -> None:
        serial_port, self._serial = self._serial, None
        if serial_port is not None:
            await asyncio.to_thread(_quiet_close, serial_port)
        if self.status.state is not DeviceState.ERROR:
            self._set_status(DeviceState.DISCONNECTED)

    def _dropped(self, exc: BaseException) -> DeviceError:
        serial_port, self._serial = self._serial, None
        if serial_port is not None:
            _quiet_close(serial_port)
        reason = (f"Signature pad disconnected ({_short(exc)}): check its USB cable, then Retry. "
                  "The customer will sign again.")
        self._set_status(DeviceState.ERROR, reason)
        return DeviceError(reason, code="offline")

    async def _read(self) -> bytes:
        serial_port = self._serial
        assert serial_port is not None
        try:
            return await asyncio.to_thread(serial_port.read, 256)
        except Exception as exc:  # noqa: BLE001 - SerialException, OSError: the port went away
            raise self._dropped(exc) from exc

    async def _before_capture(self) -> None:
        """Hook for the simulated pad (starts its signer)."""

    async def _after_capture(self) -> None:
        """Hook for the simulated pad."""

    async def capture(
        self,
        on_update: PadListener | None = None,
        *,
        idle_seconds: float | None = None,
        timeout: float | None = None,
    ) -> Signature:
        if self._serial is None:
            await self.open()
        self._reset_flags()
        self.parser = TopazParser()
        builder = StrokeBuilder(self.model)
        start = time.monotonic()
        last_activity = start
        decoded = 0
        self._set_status(DeviceState.BUSY, "capturing a signature")
        await self._before_capture()
        try:
            while True:
                if self._cancel.is_set():
                    raise SignatureCancelled()
                if self._clear.is_set():
                    self._clear.clear()
                    builder.clear()
                    if on_update:
                        on_update(PadUpdate((), pen_down=False, cleared=True))
                if self._accept.is_set():
                    break
                now = time.monotonic()
                has_strokes = bool(builder.strokes)
                if idle_seconds is not None and has_strokes and not builder.pen_down and now - last_activity >= idle_seconds:
                    break
                if timeout is not None and now - start >= timeout:
                    if has_strokes and idle_seconds is not None:
                        break
                    if decoded == 0 and self.parser.skipped > 0:
                        reason = (f"The signature pad sends unreadable data ({self.parser.skipped} bytes skipped): "
                                  "check the port speed (19200 8-O-1) and the pad model, then Retry.")
                        self._set_status(DeviceState.ERROR, reason)
                        raise DeviceError(reason, code="garbled")
                    raise DeviceError("No signature was accepted in time: ask the customer to sign again, then Retry.",
                                      code="timeout")
                data = await self._read()
                if not data:
                    continue
                t_ms = int((time.monotonic() - start) * 1000)
                changed = False
                packets = self.parser.feed(data)
                decoded += len(packets)
                for packet in packets:
                    changed = builder.add(packet, t_ms) or changed
                if changed:
                    last_activity = time.monotonic()
                    if on_update:
                        on_update(PadUpdate(builder.frozen(), builder.pen_down))
        finally:
            await self._after_capture()
            if self.status.state is DeviceState.BUSY:
                self._set_status(DeviceState.CONNECTED)
        return Signature(builder.frozen(), model=self.model.name, aspect=self.model.aspect)


def _quiet_close(serial_port: Any) -> None:
    try:
        serial_port.close()
    except Exception:  # noqa: BLE001 - closing a vanished port
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 90 else text[:87] + "..."
