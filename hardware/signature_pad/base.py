"""Signature pads: capture strokes until the signer accepts (accept comes from the UI).

Limits every driver keeps (issue 15: a 5 MB burst made a million points, and random bytes
were taken for a signature):
- a capture holds at most MAX_POINTS pen points and reads at most MAX_BYTES from the pad;
  past either it stops with DeviceError code "overflow" (a real signature is a few hundred
  points: a Topaz pad sends at most ~350 packets a second at 19200 baud);
- its `timeout` is a wall-clock deadline (time.monotonic) that a stream of data cannot push back;
- what it returns must look like handwriting (`signature_problem`), else DeviceError code
  "not_a_signature" with NOT_A_SIGNATURE.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from hardware.base import Device, DeviceError

MAX_POINTS = 20_000
MAX_BYTES = 256 * 1024
# Plausible handwriting (normalised pad units: the pad's box is 1 x 1).
MIN_POINTS = 20  # ~0.1 s of pen contact at a pad's sample rate: less is a tap, not a signature
MIN_EXTENT = 0.05  # the strokes span at least 5% of the pad's width or height (not one dot)
MAX_STEP = 0.25  # consecutive samples of one stroke: a pen does not cross a quarter of the pad in one sample
MAX_WILD_SHARE = 0.10  # ... more than 10% of such jumps is line noise, not a hand
MIN_POINTS_PER_STROKE = 3.0  # on average; noise decodes as a spray of one- and two-point "strokes"
NOT_A_SIGNATURE = "That was not a signature: ask the customer to sign again."


@dataclass(frozen=True)
class PenPoint:
    """One pen sample: x, y normalised to the pad's box (0..1, y downward), raw pad coordinates, time since capture start."""

    x: float
    y: float
    t_ms: int
    raw_x: int
    raw_y: int


@dataclass(frozen=True)
class Stroke:
    points: tuple[PenPoint, ...]

    @property
    def normalised(self) -> list[tuple[float, float, int]]:
        return [(p.x, p.y, p.t_ms) for p in self.points]

    @property
    def raw(self) -> list[tuple[int, int]]:
        return [(p.raw_x, p.raw_y) for p in self.points]


@dataclass(frozen=True)
class Signature:
    strokes: tuple[Stroke, ...]
    model: str = ""
    # Width / height of the pad's signing area, so renderings keep the shape.
    aspect: float = 3.0

    @property
    def point_count(self) -> int:
        return sum(len(s.points) for s in self.strokes)

    @property
    def duration_ms(self) -> int:
        times = [p.t_ms for s in self.strokes for p in s.points]
        return (max(times) - min(times)) if times else 0

    def is_empty(self) -> bool:
        return not any(s.points for s in self.strokes)

    def to_json(self) -> dict:
        """The CLI/storage form: raw pad coordinates plus normalised ones with timing."""
        return {
            "model": self.model,
            "strokes": [[[x, y] for x, y in s.raw] for s in self.strokes],
            "normalised": [[[round(x, 4), round(y, 4), t] for x, y, t in s.normalised] for s in self.strokes],
        }

    def to_svg(self, width: int = 600) -> str:
        """A plain SVG polyline rendering (kept with the signature record)."""
        height = max(1, round(width / self.aspect))
        lines = []
        for stroke in self.strokes:
            if not stroke.points:
                continue
            pts = " ".join(f"{p.x * width:.1f},{p.y * height:.1f}" for p in stroke.points)
            lines.append(f'<polyline points="{pts}" fill="none" stroke="black" stroke-width="2" '
                         'stroke-linecap="round" stroke-linejoin="round"/>')
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}">' + "".join(lines) + "</svg>")


@dataclass(frozen=True)
class PadUpdate:
    """A live change during capture, for drawing: the strokes so far (the last one may be in progress).

    `ready`: the signature is finished (`FinishRule`), so Agree may take it; `hint` says what the
    signer or the attendant does next."""

    strokes: tuple[Stroke, ...]
    pen_down: bool
    cleared: bool = False
    ready: bool = False
    hint: str = ""


PadListener = Callable[[PadUpdate], None]


class SignatureCancelled(DeviceError):
    def __init__(self, message: str = "Signature cancelled.") -> None:
        super().__init__(message, code="cancelled")


class NotASignature(DeviceError):
    """What the pad sent does not look like handwriting (noise, a tap, a wrong port speed)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"{NOT_A_SIGNATURE} ({why})", code="not_a_signature")
        self.why = why


def signature_problem(signature: Signature) -> str | None:
    """Why these strokes are not handwriting, or None when they are plausible. An empty signature
    is not judged here (callers say "nothing signed" themselves).

    The rules use sample spacing, not wall-clock speed: a pad samples at a fixed rate, so the
    distance between consecutive samples is the pen's speed, whatever the transport's batching."""
    strokes = [s.points for s in signature.strokes if s.points]
    points = sum(len(s) for s in strokes)
    if points == 0:
        return None
    if points < MIN_POINTS:
        return f"only {points} pen points; a signature has at least {MIN_POINTS}"
    xs = [p.x for s in strokes for p in s]
    ys = [p.y for s in strokes for p in s]
    if max(max(xs) - min(xs), max(ys) - min(ys)) < MIN_EXTENT:
        return "the pen hardly moved"
    if points / len(strokes) < MIN_POINTS_PER_STROKE:
        return f"{len(strokes)} strokes of {points / len(strokes):.1f} points on average: line noise"
    steps = wild = 0
    for stroke in strokes:
        for a, b in zip(stroke, stroke[1:], strict=False):
            steps += 1
            if math.hypot(b.x - a.x, b.y - a.y) > MAX_STEP:
                wild += 1
    if steps and wild / steps > MAX_WILD_SHARE:
        return f"the pen jumped across the pad {wild} times in {steps} samples: line noise"
    return None


HINT_SIGN = "Sign on the pad, then lift the pen."
HINT_SIGNING = "Signing… Agree comes on once the pen is lifted."
HINT_MORE = "Keep signing: that is too short for a signature."
HINT_READY = "Signed: Agree when the customer agrees, or Clear to sign again."


@dataclass(frozen=True)
class FinishRule:
    """When a signature is finished, so Agree may take it (issue 14: Agree 0.8 s into signing stored
    one stroke of 9 points). The one place this is decided, for every driver.

    Finished = the pen is up, at least one stroke is real ink (at least `min_points` pen points and
    `min_length` of pen travel, in pad widths; 0 turns a test off), the strokes are plausible
    handwriting (`signature_problem`), and the pen has stayed lifted for `settle_ms`, or the pad's own
    OK button was pressed since the last stroke (no wait then)."""

    min_points: int = 20
    min_length: float = 0.15
    settle_ms: int = 400

    def is_ink(self, stroke: Stroke) -> bool:
        points = stroke.points
        if len(points) < max(1, self.min_points):
            return False
        if self.min_length <= 0:
            return True
        return stroke_length(stroke) >= self.min_length

    def status(self, strokes: tuple[Stroke, ...], *, pen_down: bool, lifted_ms: float,
               ok_pressed: bool = False) -> tuple[bool, str]:
        """(finished, what happens next) for the strokes so far."""
        if not any(s.points for s in strokes):
            return False, HINT_SIGN
        if pen_down:
            return False, HINT_SIGNING
        if not any(self.is_ink(s) for s in strokes):
            return False, HINT_MORE
        why = signature_problem(Signature(strokes))
        if why is not None:
            return False, f"That does not look like a signature ({why}): Clear, then sign again."
        if ok_pressed or lifted_ms >= self.settle_ms:
            return True, HINT_READY
        return False, HINT_SIGNING

    @classmethod
    def from_options(cls, options: dict | None, base: FinishRule | None = None) -> FinishRule:
        """A rule from a driver's options (min_points, min_length, settle_ms) over `base`."""
        base = base or cls()
        options = options or {}
        try:
            rule = cls(int(options.get("min_points", base.min_points)),
                       float(options.get("min_length", base.min_length)),
                       int(options.get("settle_ms", base.settle_ms)))
        except (TypeError, ValueError) as exc:
            raise DeviceError(f"Signature finish options must be numbers ({exc}).", code="config") from exc
        if rule.min_points < 0 or rule.min_length < 0 or rule.settle_ms < 0:
            raise DeviceError("Signature finish options cannot be negative.", code="config")
        return rule


class FinishTracker:
    """Follows one capture for a driver: when the pen last lifted, the pad's OK since the last stroke,
    and what was last reported. `update` gives the PadUpdate to send, or None when nothing changed."""

    def __init__(self, rule: FinishRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Capture (re)starts: nothing signed, nothing reported."""
        self.lifted_at = self.clock()
        self.ok = False
        self._pen_down = False
        self._key: tuple | None = None
        self.ready = False
        self.hint = HINT_SIGN

    def pen(self, down: bool) -> None:
        if down and not self._pen_down:
            self.ok = False  # a new stroke: an OK pressed before it no longer counts
        elif self._pen_down and not down:
            self.lifted_at = self.clock()
        self._pen_down = down

    def press_ok(self) -> None:
        self.ok = True

    def update(self, strokes: tuple[Stroke, ...], pen_down: bool, *, drawn: bool) -> PadUpdate | None:
        """The update to report: always when the drawing changed (`drawn`), else only when the
        signature became finished or unfinished, or the hint changed (the pen settled, OK pressed)."""
        self.pen(pen_down)
        lifted_ms = (self.clock() - self.lifted_at) * 1000
        key = (sum(len(s.points) for s in strokes), pen_down, self.ok, lifted_ms >= self.rule.settle_ms)
        if key == self._key and not drawn:
            return None
        self._key = key
        ready, hint = self.rule.status(strokes, pen_down=pen_down, lifted_ms=lifted_ms, ok_pressed=self.ok)
        if not drawn and (ready, hint) == (self.ready, self.hint):
            return None
        self.ready, self.hint = ready, hint
        return PadUpdate(strokes, pen_down, ready=ready, hint=hint)


def stroke_length(stroke: Stroke) -> float:
    """Pen travel along a stroke, in pad widths/heights (the box is 1 x 1)."""
    pts = stroke.points
    return sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(pts, pts[1:], strict=False))


def check_signature(signature: Signature) -> Signature:
    """The signature, or NotASignature when it is not plausible handwriting."""
    why = signature_problem(signature)
    if why is not None:
        raise NotASignature(why)
    return signature


@dataclass
class SignaturePad(Device, abc.ABC):
    """Capture runs until `accept()` (the Agree button in the UI), `cancel()`, or an optional idle/time limit.

    `accept`, `clear` and `cancel` only set flags, so any thread may call them while
    `capture` is awaited elsewhere.

    During capture every driver reports, in each `PadUpdate` and in `ready`, whether the signature is
    finished by its `finish` rule (`FinishRule`); the UI enables Agree only then. `clear()` restarts
    capture: the strokes so far, and the rest of a stroke in progress, are thrown away.
    """

    kind: str = field(init=False, default="signature_pad")
    # Per capture; a driver may take lower ones from its options.
    MAX_POINTS: ClassVar[int] = MAX_POINTS
    MAX_BYTES: ClassVar[int] = MAX_BYTES

    def __post_init__(self) -> None:
        super().__post_init__()
        self._accept = threading.Event()
        self._cancel = threading.Event()
        self._clear = threading.Event()
        self._ok = threading.Event()
        self.finish = FinishRule()
        self.ready = False  # the signature being captured is finished (see FinishRule)

    @property
    def has_screen(self) -> bool:
        return False

    @abc.abstractmethod
    async def capture(
        self,
        on_update: PadListener | None = None,
        *,
        idle_seconds: float | None = None,
        timeout: float | None = None,
    ) -> Signature:
        """Collect strokes until accepted.

        on_update: called on the event loop for every change (live rendering).
        idle_seconds: also finish after this long with the pen up, once at least one stroke exists
            (for the CLI, which has no Agree button).
        timeout: give up (DeviceError code "timeout") if nothing is accepted by then; with
            strokes already drawn, the pen up and idle_seconds set, those strokes are returned
            instead. A wall-clock deadline: data still arriving does not extend it.
        Raises SignatureCancelled on cancel, DeviceError when the pad drops, code "overflow" past
        MAX_POINTS / MAX_BYTES, NotASignature (code "not_a_signature") when the strokes are not
        plausible handwriting (`check_signature`).
        """

    def accept(self) -> None:
        self._accept.set()

    def cancel(self) -> None:
        self._cancel.set()

    def clear(self) -> None:
        """Throw away the strokes so far (the signer wants to start again); capture goes on."""
        self._clear.set()

    def press_ok(self) -> None:
        """The pad's own OK button (for drivers whose pad reports one): the signer says they are done."""
        self._ok.set()

    async def show_text(self, text: str) -> bool:
        """Show text on the pad's own screen. Returns False when the pad has none."""
        return False

    def _reset_flags(self) -> None:
        self.ready = False
        self._ok.clear()
        self._accept.clear()
        self._cancel.clear()
        self._clear.clear()
