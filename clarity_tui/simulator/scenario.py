"""Scenario files (TOML) for simulator mode.

    [arrivals]
    per_minute = 6          # mean arrival rate (Poisson)
    misread_rate = 0.07     # share of plates the camera gets wrong
    seed = 42               # optional, for repeatable runs

    [mix]                   # relative weights
    member = 0.6
    legacy = 0.2
    unknown = 0.2

    [lanes]                 # relative weights per lane name: the wash lane a car drives on to
    "Lane 1" = 2            # after the pre-gate (and the pre-gate it arrives at, if several)
    "Lane 2" = 1

Top-level keys (in TOML, before the first [table]) include the simulated gateway's billing clock:

    billing_days_per_minute = 1.0   # the billing clock runs this many days per real minute (renewals,
                                    # failures, retries, cancellations, as `payments clock advance` runs
                                    # them); 0, the default in a file, leaves it still. The simulator
                                    # with no scenario file (the demo) runs it: see Scenario.demo()
    billing_failure_rate = 0.1      # the share of renewals whose card fails meanwhile; unset: the
                                    # setting billing.simulated_failure_rate
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from clarity_tui.errors import UserFacingError


class ScenarioError(UserFacingError, ValueError):
    pass


class Arrivals(BaseModel):
    per_minute: float = Field(default=6.0, ge=0, le=600)
    misread_rate: float = Field(default=0.07, ge=0, le=1)
    seed: int | None = None


class Mix(BaseModel):
    member: float = Field(default=0.6, ge=0)
    legacy: float = Field(default=0.2, ge=0)
    unknown: float = Field(default=0.2, ge=0)

    @field_validator("unknown")
    @classmethod
    def _some_weight(cls, v: float, info) -> float:
        if v + info.data.get("member", 0) + info.data.get("legacy", 0) <= 0:
            raise ValueError("at least one of member, legacy, unknown must be above 0")
        return v


class Scenario(BaseModel):
    name: str = "default"
    arrivals: Arrivals = Field(default_factory=Arrivals)
    mix: Mix = Field(default_factory=Mix)
    lanes: dict[str, float] = Field(default_factory=dict)
    # Initial vehicles put on the board at start so the demo is never empty.
    initial_vehicles: int = Field(default=6, ge=0, le=200)
    # Simulated cars go through the tunnel (their session closes) after this long.
    dwell_minutes: float = Field(default=6.0, gt=0, le=240)
    # Outcome of the next simulated card-reader action (see hardware).
    card_reader_outcome: str = "approve"
    # The simulated gateway's billing clock: days of billing per real minute (0: off), and the share of
    # renewals that fail meanwhile (None: settings.billing.simulated_failure_rate).
    billing_days_per_minute: float = Field(default=0.0, ge=0, le=1440)
    billing_failure_rate: float | None = Field(default=None, ge=0, le=1)

    @classmethod
    def demo(cls) -> Scenario:
        """The simulator started with no scenario file (`./dev demo`): a technician watches members renew,
        fail and recover on the board within minutes (a billing day a minute, one renewal in ten failing)."""
        return cls(billing_days_per_minute=DEMO_BILLING_DAYS_PER_MINUTE, billing_failure_rate=DEMO_FAILURE_RATE)


DEMO_BILLING_DAYS_PER_MINUTE = 1.0
DEMO_FAILURE_RATE = 0.1


def load_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(f"Scenario file {p} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"Scenario file {p} is not valid TOML: {exc}.") from exc
    data.setdefault("name", p.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ScenarioError(f"Scenario file {p}: {where}: {first['msg']}.") from exc
