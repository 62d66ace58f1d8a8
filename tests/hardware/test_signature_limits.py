"""Signature pad limits (issue 15): random bytes are refused, a burst is capped, the timeout holds.

Before: random bytes came back as a "signature"; a 5 MB burst made 1,000,000 points (594 MB) and
ran 12 s past `--timeout 5`. The Topaz driver runs here on real pyserial `socket://` ports, fed
by a thread on a loopback server. No test asserts a duration: a capture that did not stop at its
deadline would never return (the trickle below never ends by itself).
"""

from __future__ import annotations

import math
import os
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hardware.base import DeviceError
from hardware.signature_pad.base import (
    MAX_BYTES,
    MAX_POINTS,
    NOT_A_SIGNATURE,
    NotASignature,
    PadUpdate,
    Signature,
    SignaturePad,
    check_signature,
    signature_problem,
)
from hardware.signature_pad.simulated import TcpPadServer, signature_packets, synth_signature
from hardware.signature_pad.topaz import StrokeBuilder, TopazParser, TopazSerialPad, encode_packet, resolve_model
from tests.helpers import forked

MODEL = resolve_model({})
PEN_UP = encode_packet(1000, 700, pen_down=False) * 4


def decoded(data: bytes) -> Signature:
    builder = StrokeBuilder(MODEL)
    for packet in TopazParser().feed(data):
        builder.add(packet, 0)
    return Signature(builder.frozen(), model=MODEL.name)


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def smooth_stroke_bytes(points: int) -> bytes:
    """Pen down along a slow, plausible path (a wave across the pad): handwriting-like steps."""
    out = []
    for i in range(points):
        u = i / 50
        x = 0.5 + 0.4 * math.sin(u)
        y = 0.5 + 0.3 * math.sin(u * 1.7)
        rx = round(MODEL.x_min + x * (MODEL.x_max - MODEL.x_min))
        ry = round(MODEL.y_min + y * (MODEL.y_max - MODEL.y_min))
        out.append(encode_packet(rx, ry, pen_down=True))
    return b"".join(out)


# --- plausibility, on the parser's own output -------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_the_simulated_signer_is_plausible_handwriting(seed: int) -> None:
    data = b"".join(packet for _, packet in signature_packets(MODEL, synth_signature(seed)))
    signature = decoded(data)
    assert signature.point_count > 100 and signature_problem(signature) is None
    assert check_signature(signature) is signature


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("size", [2_000, 20_000, 200_000])
def test_random_bytes_are_never_a_signature(size: int, seed: int) -> None:
    signature = decoded(noise(size, seed))
    assert signature.point_count > 0  # noise does decode to "points"...
    with pytest.raises(NotASignature) as refused:
        check_signature(signature)  # ... which are not handwriting
    assert str(refused.value).startswith(NOT_A_SIGNATURE) and refused.value.code == "not_a_signature"


def test_a_tap_and_a_dot_are_not_signatures() -> None:
    tap = decoded(smooth_stroke_bytes(8) + PEN_UP)
    assert "only 8 pen points" in (signature_problem(tap) or "")
    dot = decoded(encode_packet(1000, 700, pen_down=True) * 60 + PEN_UP)
    assert signature_problem(dot) == "the pen hardly moved"
    assert signature_problem(Signature(())) is None  # nothing signed: the caller says so itself


def test_the_caps_are_the_abcs() -> None:
    assert (SignaturePad.MAX_POINTS, SignaturePad.MAX_BYTES) == (MAX_POINTS, MAX_BYTES) == (20_000, 256 * 1024)
    assert TopazSerialPad.MAX_POINTS == MAX_POINTS


# --- the driver on a socket -------------------------------------------------------------------


async def test_random_bytes_from_the_pad_are_refused_when_agree_is_pressed() -> None:
    with TcpPadServer(strokes=[], prefix=noise(64 * 1024, 3)) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()

        def agree_after_enough(update: PadUpdate) -> None:
            if sum(len(s.points) for s in update.strokes) >= 100:
                pad.accept()  # the attendant presses Agree with "strokes" on screen

        with pytest.raises(NotASignature) as refused:
            await pad.capture(agree_after_enough)
        await pad.close()
    assert str(refused.value).startswith("That was not a signature: ask the customer to sign again.")


async def test_random_bytes_then_pen_up_are_refused_at_the_idle_end() -> None:
    with TcpPadServer(strokes=[], prefix=noise(64 * 1024, 4) + PEN_UP) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(NotASignature):
            await pad.capture(idle_seconds=0.2, timeout=60)
        await pad.close()


async def test_a_real_signature_is_accepted() -> None:
    with TcpPadServer(seed=8, speed=30) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        signature = await pad.capture(idle_seconds=0.3, timeout=60)
        await pad.close()
    assert len(signature.strokes) == 4 and signature_problem(signature) is None


async def test_a_5_mb_burst_of_points_stops_at_the_point_cap() -> None:
    stroke = smooth_stroke_bytes(1000)
    burst = stroke * (5 * 1024 * 1024 // len(stroke))  # ~1,000,000 pen-down points
    seen: list[int] = []
    with TcpPadServer(strokes=[], prefix=burst) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(DeviceError) as stopped:
            await pad.capture(lambda u: seen.append(sum(len(s.points) for s in u.strokes)), idle_seconds=1, timeout=30)
        await pad.close()
    assert stopped.value.code == "overflow" and "more than 20,000 points" in str(stopped.value)
    assert "not a signature" in str(stopped.value)
    assert seen and max(seen) <= MAX_POINTS  # memory: never more than the cap held


async def test_a_5_mb_burst_without_points_stops_at_the_byte_cap() -> None:
    hover = encode_packet(1000, 700, pen_down=False, proximity=True) * (5 * 1024 * 1024 // 5)
    with TcpPadServer(strokes=[], prefix=hover) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(DeviceError) as stopped:
            await pad.capture(idle_seconds=1, timeout=30)
        await pad.close()
    assert stopped.value.code == "overflow" and f"more than {MAX_BYTES // 1024} KB" in str(stopped.value)
    assert pad.parser.ignored_packets == 0 and len(pad.parser._buf) < 5  # nothing piled up in the parser


@contextmanager
def trickling_pad() -> Iterator[tuple[str, threading.Event]]:
    """A pad that sends one endless stroke a byte at a time (the pen never lifts), until the test
    is over: only the driver's deadline can end a capture. It starts once the test sets the event
    (its port is open)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    opened = threading.Event()
    first = encode_packet(MODEL.x_min + 100, MODEL.y_min + 100, pen_down=False)
    data = smooth_stroke_bytes(315)  # replayed in a loop: one jump back per 315 points, the rest smooth

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            try:
                opened.wait(30)  # pyserial's socket:// open() flushes whatever arrives before it returns
                conn.sendall(first)
                i = 0
                while not stop.is_set():
                    conn.sendall(data[i % len(data): i % len(data) + 1])
                    i += 1
                    stop.wait(0.005)  # pacing: a slow trickle, not a wait for something
            except OSError:
                pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}", opened
    finally:
        stop.set()
        opened.set()
        server.close()
        thread.join(5)


@pytest.mark.parametrize("idle", [None, 0.2])
async def test_a_trickle_that_never_ends_times_out_at_the_deadline(idle: float | None) -> None:
    with trickling_pad() as (url, opened):
        pad = TopazSerialPad(port=url)
        await pad.open()
        opened.set()
        updates: list[PadUpdate] = []
        with pytest.raises(DeviceError) as caught:
            await pad.capture(updates.append, idle_seconds=idle, timeout=1.5)
        await pad.close()
    assert caught.value.code == "timeout" and "sign again" in str(caught.value)
    assert updates and updates[-1].pen_down  # it was still drawing when the deadline came


def test_the_cli_refuses_random_bytes_with_one_clear_line(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "clarity.toml"
    config.write_text("")
    env = {**os.environ, "CLARITY_CONFIG": str(config), "CLARITY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    with TcpPadServer(strokes=[], prefix=noise(64 * 1024, 9) + PEN_UP, start_delay=0.5) as server:
        result = forked.run(["-m", "clarity_tui", "hardware", "test", "signature-pad", "--port", server.url,
                             "--idle", "0.3", "--timeout", "60"], env=env, cwd=root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Error: That was not a signature: ask the customer to sign again." in result.stderr
