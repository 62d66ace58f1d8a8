"""Issue 14 item 3, at the driver: a signature is finished (Agree possible) only after real ink and
the pen lifted for a moment, or the pad's OK button; Clear restarts capture on every driver.

Real parts: the Topaz driver on pyserial's `loop://` port (bytes written into it come back as the
pad's), and the simulated pad (the same driver with a signer thread writing real Topaz bytes)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from clarity_tui.config import Settings
from clarity_tui.devices import build_devices
from hardware.base import DeviceError
from hardware.signature_pad.base import (
    HINT_MORE,
    HINT_READY,
    HINT_SIGN,
    HINT_SIGNING,
    FinishRule,
    FinishTracker,
    PadUpdate,
    PenPoint,
    Signature,
    Stroke,
)
from hardware.signature_pad.simulated import SIM_OK_BOX, SimulatedTopazPad, synth_signature
from hardware.signature_pad.topaz import TopazSerialPad, denormalise, encode_packet, resolve_model

MODEL = resolve_model({})


def stroke(n: int, *, x0: float = 0.2, y0: float = 0.5, span: float = 0.5, amp: float = 0.1) -> Stroke:
    """A smooth wavy stroke of n points across `span` of the pad."""
    pts = []
    for i in range(n):
        u = i / max(1, n - 1)
        x, y = x0 + span * u, y0 + amp * math.sin(6 * u)
        rx, ry = denormalise(MODEL, x, y)
        pts.append(PenPoint(x, y, i * 10, rx, ry))
    return Stroke(tuple(pts))


def stroke_bytes(points: list[tuple[float, float]]) -> bytes:
    """Hover, pen down along the points, pen up: as a Topaz pad sends a stroke."""
    raw = [denormalise(MODEL, x, y) for x, y in points]
    out = encode_packet(*raw[0], pen_down=False, proximity=True)
    out += b"".join(encode_packet(x, y, pen_down=True) for x, y in raw)
    return out + encode_packet(*raw[-1], pen_down=False, proximity=True)


def wave(n: int, *, x0: float = 0.2, y0: float = 0.5, span: float = 0.5) -> list[tuple[float, float]]:
    return [(p.x, p.y) for p in stroke(n, x0=x0, y0=y0, span=span).points]


# --- the rule -----------------------------------------------------------------------------------


def test_the_rule_wants_real_ink_then_a_lifted_pen() -> None:
    rule = FinishRule(min_points=20, min_length=0.15, settle_ms=400)
    nine = (stroke(9),)  # the stroke F5 took at 0.8 s in the field
    assert rule.status((), pen_down=False, lifted_ms=10_000) == (False, HINT_SIGN)
    assert rule.status(nine, pen_down=False, lifted_ms=10_000) == (False, HINT_MORE)
    assert rule.status(nine, pen_down=False, lifted_ms=10_000, ok_pressed=True) == (False, HINT_MORE)
    short = (stroke(40, span=0.02, amp=0.01),)  # many points, but a dot: not ink enough
    assert rule.status(short, pen_down=False, lifted_ms=10_000)[0] is False
    signed = (stroke(40), stroke(30, y0=0.7))
    assert rule.status(signed, pen_down=True, lifted_ms=10_000) == (False, HINT_SIGNING)
    assert rule.status(signed, pen_down=False, lifted_ms=399) == (False, HINT_SIGNING)
    assert rule.status(signed, pen_down=False, lifted_ms=400) == (True, HINT_READY)
    assert rule.status(signed, pen_down=False, lifted_ms=0, ok_pressed=True) == (True, HINT_READY)  # the pad's OK
    # 0 turns a test off.
    assert FinishRule(min_points=5, min_length=0, settle_ms=0).is_ink(stroke(5, span=0.01, amp=0))


def test_noise_that_passes_the_ink_test_is_still_not_finished() -> None:
    # A long "stroke" whose samples jump across the pad: line noise, not a hand.
    jumpy = Stroke(tuple(PenPoint(0.1 + 0.8 * (i % 2), 0.5, i, 0, 0) for i in range(40)))
    ready, hint = FinishRule().status((jumpy,), pen_down=False, lifted_ms=10_000)
    assert not ready and hint.startswith("That does not look like a signature") and "Clear" in hint


def test_rule_from_settings_and_options_and_bad_values() -> None:
    base = FinishRule(30, 0.2, 500)
    assert FinishRule.from_options({}, base) == base
    assert FinishRule.from_options({"settle_ms": "250", "min_points": 10}, base) == FinishRule(10, 0.2, 250)
    with pytest.raises(DeviceError) as bad:
        FinishRule.from_options({"min_points": "many"})
    assert bad.value.code == "config"
    with pytest.raises(DeviceError):
        FinishRule.from_options({"settle_ms": -1})


def test_the_tracker_reports_a_change_once_and_an_ok_counts_until_the_next_stroke() -> None:
    now = [0.0]
    tracker = FinishTracker(FinishRule(settle_ms=400), clock=lambda: now[0])
    signed = (stroke(40),)
    assert (tracker.ready, tracker.hint) == (False, HINT_SIGN)
    assert tracker.update((), False, drawn=False) is None  # nothing signed, nothing new to say
    tracker.pen(True)
    down = tracker.update(signed, True, drawn=True)
    assert down is not None and not down.ready
    now[0] = 1.0
    lifted = tracker.update(signed, False, drawn=True)  # the pen lifts at t = 1 s
    assert lifted is not None and not lifted.ready
    now[0] = 1.3
    assert tracker.update(signed, False, drawn=False) is None  # still settling: nothing new to say
    now[0] = 1.45
    settled = tracker.update(signed, False, drawn=False)
    assert settled is not None and settled.ready and settled.hint == HINT_READY
    # Another stroke starts: not finished; an OK pressed after it finishes at once.
    more = (*signed, stroke(30, y0=0.7))
    again = tracker.update(more, True, drawn=True)
    assert again is not None and not again.ready
    tracker.update(more, False, drawn=True)
    tracker.press_ok()
    ok = tracker.update(more, False, drawn=False)
    assert ok is not None and ok.ready
    tracker.pen(True)  # a new stroke: the OK no longer counts
    assert tracker.update((*more, stroke(25, y0=0.3)), True, drawn=True).ready is False  # type: ignore[union-attr]


# --- the Topaz driver on loop:// ----------------------------------------------------------------


class Watch:
    """Collects a capture's updates and wakes waiters when one matches."""

    def __init__(self) -> None:
        self.updates: list[PadUpdate] = []
        self._changed = asyncio.Event()

    def __call__(self, update: PadUpdate) -> None:
        self.updates.append(update)
        self._changed.set()

    async def until(self, test: Callable[[PadUpdate], bool], what: str, timeout: float = 20) -> PadUpdate:
        async def wait() -> PadUpdate:
            seen = 0
            while True:
                for update in self.updates[seen:]:
                    if test(update):
                        return update
                seen = len(self.updates)
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no update: {what}; last: {self.updates[-1:]}") from None


def points_of(signature: Signature) -> list[list[tuple[float, float]]]:
    return [[(round(p.x, 3), round(p.y, 3)) for p in s.points] for s in signature.strokes]


def expected(strokes: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    from hardware.signature_pad.topaz import normalise

    return [[tuple(round(v, 3) for v in normalise(MODEL, *denormalise(MODEL, x, y))) for x, y in s]  # type: ignore[misc]
            for s in strokes]


async def test_topaz_is_finished_only_after_ink_and_a_lift_then_clear_restarts_capture() -> None:
    pad = TopazSerialPad(port="loop://", options={"settle_ms": 150})
    await pad.open()
    watch = Watch()
    capture = asyncio.create_task(pad.capture(watch, timeout=60))
    first = wave(40)
    raw = stroke_bytes(first)
    # The first 9 pen points (the field's "1 stroke, 9 points"), pen still down: not finished.
    pad._serial.write(raw[: 5 * 10])
    early = await watch.until(lambda u: u.strokes and len(u.strokes[0].points) == 9, "9 points drawn")
    assert not early.ready and not pad.ready and early.hint == HINT_SIGNING
    pad._serial.write(raw[5 * 10 :])
    lifted = await watch.until(lambda u: not u.pen_down and u.strokes, "pen lifted")
    assert not lifted.ready  # lifted, but not yet for settle_ms
    done = await watch.until(lambda u: u.ready, "finished")
    assert done.hint == HINT_READY and pad.ready and len(done.strokes) == 1
    # Clear in the middle of a second stroke: that stroke's rest is not ink of the new signature.
    second = stroke_bytes(wave(30, y0=0.3))
    pad._serial.write(second[: 5 * 12])
    await watch.until(lambda u: u.pen_down and len(u.strokes) == 2, "second stroke started")
    pad.clear()
    cleared = await watch.until(lambda u: u.cleared, "cleared")
    assert not cleared.ready and not pad.ready and cleared.strokes == ()
    pad._serial.write(second[5 * 12 :])  # the pen finishes the old stroke and lifts
    new = wave(35, y0=0.6, x0=0.15, span=0.6)
    pad._serial.write(stroke_bytes(new))
    after = await watch.until(lambda u: u.ready, "finished again after Clear")
    assert len(after.strokes) == 1
    pad.accept()
    signature = await capture
    assert points_of(signature) == expected([new])  # exactly what was drawn after Clear
    await pad.close()


async def test_topaz_ok_box_tap_finishes_without_waiting_and_is_not_ink() -> None:
    box = [0.85, 0.0, 1.0, 0.15]
    pad = TopazSerialPad(port="loop://", options={"ok_box": box, "settle_ms": 600_000})
    await pad.open()
    watch = Watch()
    capture = asyncio.create_task(pad.capture(watch, timeout=60))
    ink = wave(40)
    pad._serial.write(stroke_bytes(ink))
    await watch.until(lambda u: not u.pen_down and u.strokes, "signed, pen up")
    assert not pad.ready  # settle_ms is ten minutes: only OK can finish it
    pad._serial.write(stroke_bytes([(0.92, 0.05), (0.92, 0.06), (0.93, 0.06)]))
    ok = await watch.until(lambda u: u.ready, "OK tapped")
    assert len(ok.strokes) == 1
    pad.accept()
    signature = await capture
    assert points_of(signature) == expected([ink])  # the tap is not part of the signature
    await pad.close()


async def test_a_pad_with_its_own_button_calls_press_ok() -> None:
    pad = TopazSerialPad(port="loop://", options={"settle_ms": 600_000})
    await pad.open()
    watch = Watch()
    capture = asyncio.create_task(pad.capture(watch, timeout=60))
    pad.press_ok()  # OK with nothing signed finishes nothing
    pad._serial.write(stroke_bytes(wave(40)))
    await watch.until(lambda u: not u.pen_down and u.strokes, "signed, pen up")
    assert not pad.ready
    pad.press_ok()
    await watch.until(lambda u: u.ready, "OK pressed")
    pad.accept()
    assert len((await capture).strokes) == 1
    await pad.close()


def test_bad_ok_box_is_a_config_error() -> None:
    for bad in ([0.5, 0.5, 0.4, 0.6], [0, 0, 2, 1], "corner"):
        with pytest.raises(DeviceError) as caught:
            TopazSerialPad(port="loop://", options={"ok_box": bad})
        assert caught.value.code == "config"


# --- the simulated pad ------------------------------------------------------------------------------


async def test_simulated_pad_is_not_finished_while_signing_and_signs_again_after_clear() -> None:
    pad = SimulatedTopazPad(options={"speed": 6, "start_delay": 0.02, "seed": 21, "garbage_rate": 0, "settle_ms": 300})
    await pad.open()
    watch = Watch()
    capture = asyncio.create_task(pad.capture(watch, timeout=60))
    # A finished state only ever follows a lifted pen with real ink.
    first = await watch.until(lambda u: u.ready, "the first signer finished")
    assert not first.pen_down and any(len(s.points) >= pad.finish.min_points for s in first.strokes)
    assert all(not u.ready for u in watch.updates if u.pen_down)
    pad.clear()
    await watch.until(lambda u: u.cleared, "cleared")
    cleared_at = len(watch.updates)
    # The simulated signer signs again (the bug: after Clear it never did), with the next seed.
    second = await watch.until(lambda u: u.ready and watch.updates.index(u) > cleared_at and len(u.strokes) == 4,
                               "signed again after Clear")
    assert pad.signer_strokes == synth_signature(22)
    assert second.ready and pad.ready
    await watch.until(lambda u: pad.signer_finished and u.ready, "second signer done")
    pad.accept()
    signature = await capture
    assert points_of(signature) == expected([[(x, y) for x, y, _ in s] for s in synth_signature(22)])
    await pad.close()


async def test_simulated_pad_taps_its_ok_box_when_asked() -> None:
    pad = SimulatedTopazPad(options={"speed": 10, "start_delay": 0.02, "seed": 4, "garbage_rate": 0,
                                     "tap_ok": True, "settle_ms": 600_000})
    assert pad.ok_box == SIM_OK_BOX
    await pad.open()
    watch = Watch()
    capture = asyncio.create_task(pad.capture(watch, timeout=60))
    done = await watch.until(lambda u: u.ready, "OK tapped after signing")
    assert len(done.strokes) == 4
    pad.accept()
    signature = await capture
    assert points_of(signature) == expected([[(x, y) for x, y, _ in s] for s in synth_signature(4)])
    await pad.close()


def test_settings_set_the_rule_and_pad_options_override_it(settings: Settings) -> None:
    settings.hardware.signature_pad.min_points = 35
    settings.hardware.signature_pad.min_length = 0.3
    settings.hardware.signature_pad.settle_ms = 700
    pad = build_devices(settings).signature_pad
    assert pad.finish == FinishRule(35, 0.3, 700)
    settings.hardware.signature_pad.options = {"settle_ms": 250}
    assert build_devices(settings).signature_pad.finish == FinishRule(35, 0.3, 250)
    assert Settings().hardware.signature_pad.settle_ms == FinishRule().settle_ms  # one default
