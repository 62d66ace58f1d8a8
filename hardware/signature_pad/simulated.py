"""The simulated signature pad: a synthetic signer writing real Topaz bytes.

`SimulatedTopazPad` is the serial driver on a pyserial `loop://` port with a
thread playing the signer into it, so the real parser and stroke builder run in
simulator mode. `PadPlayer` can play into any byte sink; `TcpPadServer` plays a
pad on a loopback TCP port for `socket://` tests and technician demos.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hardware.signature_pad.topaz import PadModel, TopazSerialPad, denormalise, encode_packet, resolve_model

# (x, y, t_ms) in the normalised box; one list per stroke.
SynthStroke = list[tuple[float, float, int]]


def synth_signature(seed: int | None = None) -> list[SynthStroke]:
    """A few smooth strokes that look handwritten: a capital loop, a cursive run, a dot, an underline."""
    rng = random.Random(seed)
    sx, sy = rng.uniform(0.9, 1.05), rng.uniform(0.85, 1.05)
    ox, oy = rng.uniform(-0.03, 0.03), rng.uniform(-0.04, 0.04)
    paths: list[tuple[Callable[[float], tuple[float, float]], int]] = [
        # Capital: an open loop.
        (lambda u: (0.16 + 0.09 * math.cos(math.pi * (0.25 + 1.7 * u)), 0.48 - 0.3 * math.sin(math.pi * (0.25 + 1.7 * u))), 38),
        # Cursive body: waves with small loops, drifting right.
        (lambda u: (0.27 + 0.5 * u + 0.025 * math.cos(11 * math.pi * u),
                    0.56 + 0.17 * math.sin(11 * math.pi * u + 0.4) * (0.7 + 0.3 * math.sin(3 * u))), 90),
        # A dot / t-cross.
        (lambda u: (0.52 + 0.09 * u, 0.27 - 0.02 * u), 9),
        # Underline flourish.
        (lambda u: (0.1 + 0.8 * u, 0.86 + 0.05 * math.sin(2 * math.pi * u) - 0.04 * u), 45),
    ]
    strokes: list[SynthStroke] = []
    t = 0.0
    for path, n in paths:
        t += rng.uniform(160, 320)  # pen travels in the air
        stroke: SynthStroke = []
        for i in range(n):
            u = i / (n - 1)
            x, y = path(u)
            x = 0.5 + (x - 0.5) * sx + ox + rng.gauss(0, 0.003)
            y = 0.5 + (y - 0.5) * sy + oy + rng.gauss(0, 0.004)
            stroke.append((min(1.0, max(0.0, x)), min(1.0, max(0.0, y)), int(t)))
            # Slower at the ends of a stroke, faster in the middle, like a hand.
            t += 7.0 + 8.0 * (1 - math.sin(math.pi * u)) + rng.uniform(0, 3)
        strokes.append(stroke)
    return strokes


def signature_packets(model: PadModel, strokes: list[SynthStroke]) -> Iterator[tuple[int, bytes]]:
    """(t_ms, packet bytes) as the pad would send them: hover, pen down points, pen up."""
    for stroke in strokes:
        if not stroke:
            continue
        x0, y0 = denormalise(model, stroke[0][0], stroke[0][1])
        yield max(0, stroke[0][2] - 20), encode_packet(x0, y0, pen_down=False, proximity=True)
        for x, y, t in stroke:
            rx, ry = denormalise(model, x, y)
            yield t, encode_packet(rx, ry, pen_down=True)
        xl, yl = denormalise(model, stroke[-1][0], stroke[-1][1])
        yield stroke[-1][2] + 8, encode_packet(xl, yl, pen_down=False, proximity=True)


@dataclass
class PadPlayer:
    """Plays a signature into `write` with the signer's timing divided by `speed`."""

    model: PadModel
    write: Callable[[bytes], Any]
    strokes: list[SynthStroke]
    speed: float = 1.0
    start_delay: float = 0.0
    garbage_rate: float = 0.0
    seed: int | None = None
    # Stop after this many pen-down points (an unplugged cable, for tests).
    stop_after_points: int | None = None
    # Hold the pen down after this many pen-down points until `release` is set (a signer who pauses
    # mid-stroke; tests act at an exact point of the signature, however loaded the machine).
    hold_after_points: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(self.seed)
        try:
            if self.stop.wait(self.start_delay):
                return
            began = time.monotonic()
            sent_points = 0
            for t_ms, packet in signature_packets(self.model, self.strokes):
                if self.stop_after_points is not None and sent_points >= self.stop_after_points:
                    return
                due = began + t_ms / 1000.0 / self.speed
                wait = due - time.monotonic()
                if wait > 0.002 and self.stop.wait(wait):
                    return
                if self.stop.is_set():
                    return
                if self.garbage_rate and rng.random() < self.garbage_rate:
                    # Line noise: bytes without the sync bit, which the parser must skip.
                    self.write(bytes(rng.randrange(0, 0x80) for _ in range(rng.randint(1, 4))))
                self.write(packet)
                if packet[0] & 0x01:
                    sent_points += 1
                    if sent_points == self.hold_after_points:
                        held_at = time.monotonic()
                        self.held.set()
                        while not self.release.wait(0.05):
                            if self.stop.is_set():
                                return
                        began += time.monotonic() - held_at  # the rest keeps the signer's pace
        finally:
            self.done.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="simulated-signer", daemon=True)
        thread.start()
        return thread


@dataclass
class SimulatedTopazPad(TopazSerialPad):
    """Topaz driver on `loop://` with a synthetic signer. Options: seed, speed, start_delay, garbage_rate, model,
    tap_ok (the signer taps the pad's OK box when done; the box defaults to SIM_OK_BOX), hold_after_points
    (the signer pauses, pen down, after that many points until `release_signer()`).

    Every capture, and every Clear within one, starts a new signer (the next seed): after Clear the
    customer signs again, as at a real pad. `signer_strokes` is what the current signer draws (tests
    compare the stored signature with it)."""

    port: str = "loop://"
    driver_name: str = field(init=False, default="simulated")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._player: PadPlayer | None = None
        self.signer_strokes: list[SynthStroke] = []  # what the current signer draws
        self._thread: threading.Thread | None = None
        self._captures = 0
        self.screen_text = ""
        if self.options.get("tap_ok") and self.ok_box is None:
            self.ok_box = SIM_OK_BOX

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **_: Any) -> SimulatedTopazPad:
        return cls(port=port or "loop://", options=dict(options))

    @property
    def port_description(self) -> str:
        return f"{self.port} (simulated {self.model.name})"

    @property
    def has_screen(self) -> bool:
        return True

    async def show_text(self, text: str) -> bool:
        self.screen_text = text
        return True

    def unplug(self) -> None:
        """Pull the cable: close the port under the reader, as a real unplug does."""
        serial_port = self._serial
        if serial_port is not None:
            serial_port.close()

    def _seed(self, n: int) -> int | None:
        seed = self.options.get("seed")
        return None if seed is None else int(seed) + n

    async def _before_capture(self) -> None:
        self._start_signer()

    async def _on_clear(self) -> None:
        await self._stop_signer()
        self._start_signer()

    def _start_signer(self) -> None:
        opts = self.options
        seed = self._seed(self._captures)
        self._captures += 1
        serial_port = self._serial
        assert serial_port is not None
        strokes = synth_signature(seed)
        self.signer_strokes = strokes
        if self.ok_box is not None and opts.get("tap_ok"):
            strokes = [*strokes, ok_tap(self.ok_box, strokes[-1][-1][2] + 350)]
        self._player = PadPlayer(
            model=self.model,
            write=lambda data: _safe_write(serial_port, data),
            strokes=strokes,
            speed=float(opts.get("speed", 1.0)),
            start_delay=float(opts.get("start_delay", 0.4)),
            garbage_rate=float(opts.get("garbage_rate", 0.02)),
            seed=seed,
            hold_after_points=None if opts.get("hold_after_points") is None else int(opts["hold_after_points"]),
        )
        self._thread = self._player.start()

    @property
    def signer_held(self) -> bool:
        """The signer paused with the pen down (option hold_after_points)."""
        return self._player is not None and self._player.held.is_set() and not self._player.release.is_set()

    def release_signer(self) -> None:
        """Let a held signer go on."""
        if self._player is not None:
            self._player.release.set()

    async def _stop_signer(self) -> None:
        player, thread = self._player, self._thread
        self._player = self._thread = None
        if player is not None:
            player.stop.set()
        if thread is not None:
            await asyncio.to_thread(thread.join, 1.0)

    async def _after_capture(self) -> None:
        await self._stop_signer()

    @property
    def signer_finished(self) -> bool:
        return self._player is not None and self._player.done.is_set()


# Where the simulated pad's OK button is (top right, clear of synth_signature's ink).
SIM_OK_BOX = (0.88, 0.0, 1.0, 0.12)


def ok_tap(box: tuple[float, float, float, float], t_ms: int) -> SynthStroke:
    """A short tap in the middle of the pad's OK box."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [(x, y, t_ms), (x, y, t_ms + 15), (x, y, t_ms + 30)]


def _safe_write(serial_port: Any, data: bytes) -> None:
    try:
        serial_port.write(data)
    except Exception:  # noqa: BLE001 - the port was closed (unplugged) under the signer
        pass


class TcpPadServer:
    """A pad on a loopback TCP port: connect with `socket://127.0.0.1:PORT`.

    Plays one signature to the first client. `hang_up_after_points` closes the
    connection mid-signature (an unplugged pad); `prefix` is sent first (e.g. garbage).
    """

    def __init__(
        self,
        model: PadModel | None = None,
        *,
        seed: int | None = 7,
        speed: float = 20.0,
        start_delay: float = 0.05,
        garbage_rate: float = 0.0,
        hang_up_after_points: int | None = None,
        prefix: bytes = b"",
        strokes: list[SynthStroke] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.model = model or resolve_model({})
        self.strokes = strokes if strokes is not None else synth_signature(seed)
        self.seed = seed
        self.speed = speed
        self.start_delay = start_delay
        self.garbage_rate = garbage_rate
        self.hang_up_after_points = hang_up_after_points
        self.prefix = prefix
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(10)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tcp-pad", daemon=True)
        self.finished = threading.Event()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def __enter__(self) -> TcpPadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        with conn:
            try:
                # pyserial's socket:// open() flushes what is already waiting, so give it a moment.
                if self._stop.wait(self.start_delay):
                    return
                if self.prefix:
                    conn.sendall(self.prefix)
                player = PadPlayer(
                    model=self.model, write=conn.sendall, strokes=self.strokes, speed=self.speed,
                    start_delay=0.0, garbage_rate=self.garbage_rate, seed=self.seed,
                    stop_after_points=self.hang_up_after_points, stop=self._stop,
                )
                player.run()
                self.finished.set()
                if self.hang_up_after_points is not None:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                # Stay connected (pen idle) until the test is done, like a pad left plugged in.
                self._stop.wait()
            except OSError:
                self.finished.set()


__all__ = ["SIM_OK_BOX", "PadPlayer", "SimulatedTopazPad", "TcpPadServer", "ok_tap", "synth_signature"]
