"""The simulated signer held at an exact point, and what the stored signature must be."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from hardware.signature_pad.simulated import SimulatedTopazPad
from hardware.signature_pad.topaz import denormalise, normalise
from tests.helpers.sale import fast_devices


def held_signer(settings: Settings, hold_after_points: int, seed: int = 3) -> Settings:
    """The simulated signer pauses, pen down, after `hold_after_points` points until the test lets it
    go: the attendant acts at an exact point of the signature, however slow the machine."""
    settings = fast_devices(settings)
    settings.hardware.signature_pad.settle_ms = 300
    settings.hardware.signature_pad.options = {"speed": 12, "start_delay": 0.05, "seed": seed, "garbage_rate": 0,
                                               "hold_after_points": hold_after_points}
    return settings


def assert_same_drawing(stored: list[Any], drawn: list[list[tuple[float, float, int]]], pad: SimulatedTopazPad) -> None:
    """The stored strokes are the signer's strokes, as the pad reports them (raw units, normalised)."""
    assert len(stored) == len(drawn)
    for got, want in zip(stored, drawn, strict=True):
        assert len(got) == len(want)
        for (gx, gy, _t), (wx, wy, _wt) in zip(got, want, strict=True):
            ex, ey = normalise(pad.model, *denormalise(pad.model, wx, wy))
            assert abs(gx - ex) <= 1e-4 and abs(gy - ey) <= 1e-4


def agree_button_disabled(app: ClarityApp) -> bool:
    return app.screen.query_one("#agree").disabled


def every_point_shown(pad: Any, shown: Sequence[Sequence[object]]) -> bool:
    """The screen has every point the simulated signer drew: the last bytes have arrived."""
    drawn = getattr(pad, "signer_strokes", None)
    return drawn is not None and [len(getattr(s, "points", s)) for s in shown] == [len(s) for s in drawn]
