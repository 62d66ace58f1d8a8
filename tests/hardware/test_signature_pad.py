"""The Topaz serial driver on real pyserial ports: loop:// (simulated pad) and socket:// (a thread playing the pad)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from hardware.base import DeviceError, DeviceState
from hardware.signature_pad.base import PadUpdate, SignatureCancelled
from hardware.signature_pad.simulated import SimulatedTopazPad, TcpPadServer, synth_signature
from hardware.signature_pad.topaz import TopazSerialPad, encode_packet, resolve_model

FAST = {"speed": 25, "start_delay": 0.02, "seed": 5}


def expected_raw(seed: int) -> list[list[tuple[int, int]]]:
    from hardware.signature_pad.topaz import denormalise

    model = resolve_model({})
    return [[denormalise(model, x, y) for x, y, _ in stroke] for stroke in synth_signature(seed)]


async def test_simulated_pad_on_loop_port_goes_through_the_parser_and_accept_finishes() -> None:
    pad = SimulatedTopazPad(options={**FAST, "garbage_rate": 0.2})
    await pad.open()
    updates: list[PadUpdate] = []

    drawn = [len(stroke) for stroke in expected_raw(5)]

    async def accept_when_signed() -> None:
        # Accept once the parser has every point the signer drew (the last bytes have arrived).
        while not (updates and [len(s.points) for s in updates[-1].strokes] == drawn):
            await asyncio.sleep(0.01)
        pad.accept()

    accepting = asyncio.create_task(accept_when_signed())
    signature = await pad.capture(updates.append, timeout=30)
    await accepting
    assert [s.raw for s in signature.strokes] == expected_raw(5)
    assert pad.parser.skipped > 0  # the line noise was there, and skipped
    assert updates and len(updates[-1].strokes) == 4
    times = [p.t_ms for s in signature.strokes for p in s.points]
    assert times == sorted(times)
    assert all(0 <= p.x <= 1 and 0 <= p.y <= 1 for s in signature.strokes for p in s.points)
    assert pad.status.state is DeviceState.CONNECTED
    assert signature.to_svg().count("<polyline") == 4
    await pad.close()


async def test_clear_throws_strokes_away_and_cancel_raises() -> None:
    pad = SimulatedTopazPad(options={**FAST, "speed": 3})
    await pad.open()
    updates: list[PadUpdate] = []

    def on_update(update: PadUpdate) -> None:
        updates.append(update)
        if len(update.strokes) >= 2 and not any(u.cleared for u in updates):
            pad.clear()

    async def cancel_later() -> None:
        while not any(u.cleared for u in updates):
            await asyncio.sleep(0.01)
        pad.cancel()

    task = asyncio.create_task(cancel_later())
    with pytest.raises(SignatureCancelled):
        await pad.capture(on_update, timeout=30)
    await task
    cleared_at = next(i for i, u in enumerate(updates) if u.cleared)
    after = [u for u in updates[cleared_at + 1 :]]
    assert all(len(u.strokes) <= 2 for u in after)  # the first strokes were thrown away
    assert pad.status.state is DeviceState.CONNECTED
    await pad.close()


async def test_socket_port_with_a_thread_playing_the_pad_and_idle_end() -> None:
    with TcpPadServer(seed=11, speed=30) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        assert pad.status.state is DeviceState.CONNECTED
        signature = await pad.capture(idle_seconds=0.3, timeout=30)
        await pad.close()
    assert [s.raw for s in signature.strokes] == expected_raw(11)


async def test_unplugged_pad_mid_capture_gives_a_clear_error_status() -> None:
    with TcpPadServer(seed=2, speed=30, hang_up_after_points=25) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(DeviceError) as caught:
            await pad.capture(idle_seconds=5, timeout=30)
    assert caught.value.code == "offline"
    assert "Signature pad disconnected" in str(caught.value) and "check its USB cable" in str(caught.value)
    assert pad.status.state is DeviceState.ERROR
    assert pad.last_error == str(caught.value)


async def test_simulated_unplug_then_retry_reopens_and_captures() -> None:
    pad = SimulatedTopazPad(options={**FAST, "speed": 2})
    await pad.open()

    drawing = asyncio.Event()

    async def pull_cable() -> None:
        await drawing.wait()  # mid-signature: the first points have arrived
        pad.unplug()

    task = asyncio.create_task(pull_cable())
    with pytest.raises(DeviceError) as caught:
        await pad.capture(lambda update: drawing.set() if update.strokes else None, timeout=30)
    await task
    assert caught.value.code == "offline"
    assert pad.status.state is DeviceState.ERROR
    # Retry: capture reopens the port.
    pad.options["speed"] = 25
    signature = await pad.capture(idle_seconds=0.2, timeout=30)
    assert len(signature.strokes) == 4
    assert pad.status.state is DeviceState.CONNECTED
    await pad.close()


async def test_pad_sending_only_garbage_reports_unreadable_data() -> None:
    noise = bytes(b & 0x7F for b in os.urandom(2000)) + bytes([0x85, 0x01, 0x02]) * 50
    with TcpPadServer(strokes=[], prefix=noise) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(DeviceError) as caught:
            await pad.capture(idle_seconds=0.2, timeout=0.6)
    assert caught.value.code == "garbled"
    assert "19200 8-O-1" in str(caught.value)
    assert pad.status.state is DeviceState.ERROR


async def test_silent_pad_times_out_with_a_message() -> None:
    with TcpPadServer(strokes=[]) as server:
        pad = TopazSerialPad(port=server.url)
        await pad.open()
        with pytest.raises(DeviceError) as caught:
            await pad.capture(timeout=0.3)
        await pad.close()
    assert caught.value.code == "timeout"
    assert "sign again" in str(caught.value)


async def test_missing_port_is_an_error_status_not_a_crash() -> None:
    pad = TopazSerialPad(port="/dev/clarity-no-such-pad")
    with pytest.raises(DeviceError) as caught:
        await pad.open()
    assert "Signature pad not found at /dev/clarity-no-such-pad" in str(caught.value)
    assert pad.status.state is DeviceState.ERROR

    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()
    pad = TopazSerialPad(port=f"socket://127.0.0.1:{port}")
    with pytest.raises(DeviceError):
        await pad.open()
    assert pad.status.state is DeviceState.ERROR


async def test_live_bytes_written_by_hand_into_a_socket() -> None:
    """A pad that is just a socket: our own packets, pen down/up, in two strokes."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    done = threading.Event()
    opened = threading.Event()

    def play() -> None:
        conn, _ = server.accept()
        with conn:
            opened.wait(30)  # pyserial's socket:// open() flushes whatever arrives before it returns
            conn.sendall(b"".join(encode_packet(600 + i * 10, 500, True) for i in range(14)))
            conn.sendall(encode_packet(740, 500, False) + b"\x00\x13garbage")
            conn.sendall(b"".join(encode_packet(900, 700 + i, True) for i in range(8)) + encode_packet(900, 708, False))
            done.wait(5)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    pad = TopazSerialPad(port=f"socket://127.0.0.1:{port}", options={"model": "T-LBK460"})
    try:
        await pad.open()
    finally:
        opened.set()
    signature = await pad.capture(idle_seconds=0.2, timeout=10)
    done.set()
    await pad.close()
    server.close()
    thread.join(5)
    assert [len(s.points) for s in signature.strokes] == [14, 8]  # 22 points: at least MIN_POINTS (20)
    assert signature.strokes[1].raw[0] == (900, 700)
    assert signature.model == "T-LBK460"


def test_unknown_model_and_bad_range_are_config_errors() -> None:
    with pytest.raises(DeviceError, match="Unknown signature pad model"):
        resolve_model({"model": "T-XYZ"})
    with pytest.raises(DeviceError, match="range is empty"):
        resolve_model({"x_min": 900, "x_max": 100})
