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
    FinishRule,
    FinishTracker,
    PadListener,
    PadUpdate,
    PenPoint,
    Signature,
    SignatureCancelled,
    SignaturePad,
    Stroke,
    check_signature,
)
from hardware.signature_pad.pad_models import (  # noqa: F401 - re-exported: the protocol's public names
    DEFAULT_MODEL,
    PAD_MODELS,
    PadModel,
    denormalise,
    normalise,
    ok_box_option,
    resolve_model,
)

SYNC = 0x80
PROXIMITY = 0x40
PEN_DOWN = 0x01
COORDINATE_TYPES = frozenset({0, 1, 4})
INVALID = 0x0FFF
MAX_COORD = 0x0FFF
READ_SIZE = 1024  # per read: a burst is parsed in bounded slices, between deadline checks


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




class StrokeBuilder:
    """Pen down adds points to the current stroke; pen up (or an invalid position) ends it.

    Holds at most `max_points`: a point past the cap is dropped and `overflow` set."""

    def __init__(self, model: PadModel, max_points: int | None = None) -> None:
        self.model = model
        self.max_points = max_points
        self.strokes: list[list[PenPoint]] = []
        self.point_count = 0
        self.overflow = False
        self._open = False
        self.pen_down = False
        self._skip_until_lift = False  # after a clear: the rest of the stroke in progress is not kept
        self._closed: tuple[Stroke, ...] = ()  # frozen finished strokes, so an update costs the open one only

    def add(self, packet: TopazPacket, t_ms: int) -> bool:
        """Returns True when the drawing changed."""
        if self._skip_until_lift:
            if packet.pen_down and packet.valid:
                return False
            self._skip_until_lift = False
        if not packet.pen_down or not packet.valid:
            was_open = self._open
            self._open = False
            self.pen_down = False
            return was_open
        if self.max_points is not None and self.point_count >= self.max_points:
            self.overflow = True
            return False
        nx, ny = normalise(self.model, packet.x, packet.y)
        point = PenPoint(nx, ny, t_ms, packet.x, packet.y)
        if not self._open:
            self.strokes.append([])
            self._open = True
        self.strokes[-1].append(point)
        self.point_count += 1
        self.pen_down = True
        return True

    def clear(self) -> None:
        """Start again: the strokes so far, and the rest of one in progress, are thrown away."""
        self._skip_until_lift = self.pen_down
        self.strokes.clear()
        self.point_count = 0
        self._closed = ()
        self._open = False
        self.pen_down = False

    def frozen(self) -> tuple[Stroke, ...]:
        done = len(self.strokes) - (1 if self._open else 0)
        if len(self._closed) != done:
            self._closed = self._closed + tuple(Stroke(tuple(p)) for p in self.strokes[len(self._closed):done])
        if self._open and self.strokes[-1]:
            return (*self._closed, Stroke(tuple(self.strokes[-1])))
        return self._closed


def _open_serial(port: str, baudrate: int, read_timeout: float) -> Any:
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
        self.finish = FinishRule.from_options(self.options, self.finish)
        self.ok_box = ok_box_option(self.options.get("ok_box"))
        self._serial: Any = None  # a pyserial port once open
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
        except Exception as exc:
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
        """At most READ_SIZE bytes; returns within the port's read timeout (`read_timeout`)."""
        serial_port = self._serial
        assert serial_port is not None
        try:
            return await asyncio.to_thread(serial_port.read, READ_SIZE)
        except Exception as exc:
            raise self._dropped(exc) from exc

    async def _before_capture(self) -> None:
        """Hook for the simulated pad (starts its signer)."""

    async def _after_capture(self) -> None:
        """Hook for the simulated pad."""

    async def _on_clear(self) -> None:
        """Hook: capture starts again after Clear (the simulated pad restarts its signer)."""

    def _in_ok_box(self, packet: TopazPacket) -> bool:
        if self.ok_box is None or not (packet.pen_down and packet.valid):
            return False
        x, y = normalise(self.model, packet.x, packet.y)
        x0, y0, x1, y1 = self.ok_box
        return x0 <= x <= x1 and y0 <= y <= y1

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
        max_points = int(self.options.get("max_points", self.MAX_POINTS))
        max_bytes = int(self.options.get("max_bytes", self.MAX_BYTES))
        builder = StrokeBuilder(self.model, max_points)
        start = time.monotonic()
        # A wall-clock deadline: bytes still arriving never push it back. Each read returns within
        # the port's read timeout, and a read's bytes are bounded, so capture returns within about
        # one read timeout (50 ms) of it, whatever the pad sends.
        deadline = None if timeout is None else start + timeout
        last_activity = start
        decoded = 0
        received = 0
        finish = FinishTracker(self.finish)  # is the signature finished (Agree possible)?
        ok_touch = False  # the pen is on the pad's OK button
        drawn = False
        self._set_status(DeviceState.BUSY, "capturing a signature")
        await self._before_capture()
        try:
            while True:
                if self._cancel.is_set():
                    raise SignatureCancelled()
                if self._clear.is_set():
                    self._clear.clear()
                    self._ok.clear()
                    builder.clear()
                    finish.reset()
                    self.ready = ok_touch = drawn = False
                    received = 0
                    await self._on_clear()
                    if on_update:
                        on_update(PadUpdate((), pen_down=False, cleared=True, hint=finish.hint))
                if self._ok.is_set():
                    self._ok.clear()
                    finish.press_ok()
                update = finish.update(builder.frozen(), builder.pen_down, drawn=drawn)
                drawn = False
                if update is not None:
                    self.ready = update.ready
                    if on_update:
                        on_update(update)
                if self._accept.is_set():
                    break
                now = time.monotonic()
                has_strokes = bool(builder.strokes)
                if idle_seconds is not None and has_strokes and not builder.pen_down and now - last_activity >= idle_seconds:
                    break
                if deadline is not None and now >= deadline:
                    if has_strokes and idle_seconds is not None and not builder.pen_down:
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
                received += len(data)
                if received > max_bytes:
                    raise DeviceError(f"The signature pad sent more than {max_bytes // 1024} KB for one signature: "
                                      "that was not a signature. Ask the customer to sign again, then Retry; if it "
                                      "happens again, check the pad's port speed and model.", code="overflow")
                t_ms = int((time.monotonic() - start) * 1000)
                packets = self.parser.feed(data)
                decoded += len(packets)
                for packet in packets:
                    if self._in_ok_box(packet):
                        ok_touch = True  # the pad's OK button, not ink
                        continue
                    if ok_touch and not packet.pen_down:
                        ok_touch = False
                        finish.press_ok()
                    drawn = builder.add(packet, t_ms) or drawn
                    finish.pen(builder.pen_down)
                if builder.overflow:
                    raise DeviceError(f"The signature pad sent more than {max_points:,} points for one signature: "
                                      "that was not a signature. Ask the customer to sign again, then Retry.",
                                      code="overflow")
                if drawn:
                    last_activity = time.monotonic()
        finally:
            await self._after_capture()
            if self.status.state is DeviceState.BUSY:
                self._set_status(DeviceState.CONNECTED)
        return check_signature(Signature(builder.frozen(), model=self.model.name, aspect=self.model.aspect))


def _quiet_close(serial_port: Any) -> None:
    try:
        serial_port.close()
    except Exception:  # noqa: BLE001 - closing a vanished port
        pass


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 90 else text[:87] + "..."
