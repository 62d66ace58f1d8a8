"""Signature pads: capture strokes until the signer accepts (accept comes from the UI)."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.base import Device, DeviceError


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
    """A live change during capture, for drawing: the strokes so far (the last one may be in progress)."""

    strokes: tuple[Stroke, ...]
    pen_down: bool
    cleared: bool = False


PadListener = Callable[[PadUpdate], None]


class SignatureCancelled(DeviceError):
    def __init__(self, message: str = "Signature cancelled.") -> None:
        super().__init__(message, code="cancelled")


@dataclass
class SignaturePad(Device, abc.ABC):
    """Capture runs until `accept()` (the Agree button in the UI), `cancel()`, or an optional idle/time limit.

    `accept`, `clear` and `cancel` only set flags, so any thread may call them while
    `capture` is awaited elsewhere.
    """

    kind: str = field(init=False, default="signature_pad")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._accept = threading.Event()
        self._cancel = threading.Event()
        self._clear = threading.Event()

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
            strokes already drawn and idle_seconds set, those strokes are returned instead.
        Raises SignatureCancelled on cancel, DeviceError when the pad drops.
        """

    def accept(self) -> None:
        self._accept.set()

    def cancel(self) -> None:
        self._cancel.set()

    def clear(self) -> None:
        """Throw away the strokes so far (the signer wants to start again)."""
        self._clear.set()

    async def show_text(self, text: str) -> bool:
        """Show text on the pad's own screen. Returns False when the pad has none."""
        return False

    def _reset_flags(self) -> None:
        self._accept.clear()
        self._cancel.clear()
        self._clear.clear()
