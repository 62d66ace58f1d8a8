"""Topaz pad models (raw coordinate ranges), scaling to the pad's box, and the pad's OK box option."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hardware.base import DeviceError


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


def ok_box_option(value: Any) -> tuple[float, float, float, float] | None:
    """The pad's OK button: a box (x0, y0, x1, y1, in pad units 0..1) where a tap means "done", as
    Topaz LCD pads draw one. Unset: the pad has no OK button."""
    if value in (None, "", False):
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DeviceError(f"The pad's ok_box must be four numbers x0, y0, x1, y1 between 0 and 1 ({exc}).",
                          code="config") from exc
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise DeviceError("The pad's ok_box must have 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1.", code="config")
    return x0, y0, x1, y1
