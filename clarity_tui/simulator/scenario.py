"""Scenario files (TOML) for simulator mode.

    [arrivals]
    per_minute = 6          # mean arrival rate (Poisson)
    misread_rate = 0.07     # share of plates the camera gets wrong
    seed = 42               # optional, for repeatable runs

    [mix]                   # relative weights of who arrives
    member = 0.5            # a member's car (a visit, unless over the plan's limit or lapsed)
    legacy = 0.1            # a legacy system's member (the attendant migrates them)
    retail = 0.3            # a stranger who buys a single wash: the "retail share" of arrivals
    unknown = 0.1           # a stranger who drives off without buying (or a car nobody serves)

    [day]                   # what people do at the lane (the simulated lane day, simulator/lane_day.py)
    upsell_share = 0.3      # retail customers who then "Join today" (the wash is credited)
    extras_share = 0.35     # each extra on the menu: the chance a single-wash customer adds it
    return_share = 0.3      # members who come back the same day (and meet their plan's limit)
    single_after_refusal = 0.6  # members refused (over the limit, past due, expired) who buy a single wash
    cancel_share = 0.03     # members who ask to cancel at the lane (it ends at their period's end)
    tunnel_seconds = 8      # how long a car takes through the tunnel (its session closes as it leaves)
    attendant = "Alex Attendant"  # the demo site's operator who takes the orders (and earns commissions)

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
    tunnel_outcome = "ok"           # what the simulated tunnel controller answers: ok, busy, fault, offline
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from clarity_tui.errors import UserFacingError


class ScenarioError(UserFacingError, ValueError):
    pass


class Arrivals(BaseModel):
    per_minute: float = Field(default=6.0, ge=0, le=600)
    misread_rate: float = Field(default=0.07, ge=0, le=1)
    seed: int | None = None


class Mix(BaseModel):
    member: float = Field(default=0.5, ge=0)
    legacy: float = Field(default=0.1, ge=0)
    # Strangers who buy a single wash (the retail share); `unknown` strangers drive off without buying.
    retail: float = Field(default=0.3, ge=0)
    unknown: float = Field(default=0.1, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> Mix:
        if self.member + self.legacy + self.retail + self.unknown <= 0:
            raise ValueError("at least one of member, legacy, retail, unknown must be above 0")
        return self


def _share(default: float) -> Any:
    return Field(default=default, ge=0, le=1)


class Day(BaseModel):
    """What simulated people do once their car is at a lane (shares are probabilities, 0 to 1)."""

    model_config = ConfigDict(extra="forbid")  # a mistyped share would silently keep its default

    upsell_share: float = _share(0.3)
    extras_share: float = _share(0.35)
    return_share: float = _share(0.3)
    single_after_refusal: float = _share(0.6)
    cancel_share: float = _share(0.03)
    tunnel_seconds: float = Field(default=8.0, gt=0, le=3600)
    attendant: str = Field(default="Alex Attendant", min_length=1, max_length=80)


class Scenario(BaseModel):
    name: str = "default"
    arrivals: Arrivals = Field(default_factory=Arrivals)
    mix: Mix = Field(default_factory=Mix)
    lanes: dict[str, float] = Field(default_factory=dict)
    day: Day = Field(default_factory=Day)
    # Initial vehicles put on the board at start so the demo is never empty.
    initial_vehicles: int = Field(default=6, ge=0, le=200)
    # Simulated cars go through the tunnel (their session closes) after this long.
    dwell_minutes: float = Field(default=6.0, gt=0, le=240)
    # Outcome of the next simulated card-reader action (see hardware).
    card_reader_outcome: str = "approve"
    # What the simulated tunnel controller answers (a fault queues the cars: the retry key sends them).
    tunnel_outcome: Literal["ok", "busy", "fault", "offline"] = "ok"
    # The simulated gateway's billing clock: days of billing per real minute (0: off), and the share of
    # renewals that fail meanwhile (None: settings.billing.simulated_failure_rate).
    billing_days_per_minute: float = Field(default=0.0, ge=0, le=1440)
    billing_failure_rate: float | None = Field(default=None, ge=0, le=1)

    @classmethod
    def demo(cls) -> Scenario:
        """The simulator started with no scenario file (`./dev demo`): a technician watches members renew,
        fail and recover on the board within minutes (a billing day a minute, one renewal in ten failing),
        and the lane's day as the defaults of [mix] and [day] have it (retail customers, upsells, returns)."""
        return cls(billing_days_per_minute=DEMO_BILLING_DAYS_PER_MINUTE, billing_failure_rate=DEMO_FAILURE_RATE)


DEMO_BILLING_DAYS_PER_MINUTE = 1.0
DEMO_FAILURE_RATE = 0.1


# The scenarios that come with Clarity, also found by name: `--scenario busy_day`.
SHIPPED = Path(__file__).resolve().parent / "scenarios"


def shipped(name: str) -> Path | None:
    """The shipped scenario called `name` (with or without .toml), if there is one."""
    stem = name.removesuffix(".toml")
    found = SHIPPED / f"{stem}.toml"
    return found if stem and "/" not in stem and "\\" not in stem and found.is_file() else None


def load_scenario(path: str | Path | None) -> Scenario:
    if path is None:
        return Scenario()
    p = Path(path)
    if not p.exists():
        p = shipped(str(path)) or p
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        names = ", ".join(sorted(f.stem for f in SHIPPED.glob("*.toml")))
        raise ScenarioError(f"Scenario file {p} does not exist: give a file, or one of the scenarios that come "
                            f"with Clarity ({names}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"Scenario file {p} is not valid TOML: {exc}.") from exc
    data.setdefault("name", p.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ScenarioError(f"Scenario file {p}: {where}: {first['msg']}.") from exc
