"""Where simulated vehicles come from: member cars, legacy members' cars, and strangers.

Arrivals go through hardware.plate_reader.SimulatedPlateReader and then the
same SessionService.record_plate_read that a real camera webhook uses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

from sqlmodel import col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.demo import COLOURS, VEHICLES, random_plate
from clarity_tui.services.sessions import SessionService
from clarity_tui.simulator.scenario import Scenario
from db.engine import Database
from db.models import Lane, LegacyMember, LegacyMemberPlate, SessionStatus, Vehicle
from hardware.plate_reader import PlateEvent
from hardware.plate_reader.simulated import SimulatedPlateReader

log = logging.getLogger(__name__)


class VehiclePool:
    """Picks the next arriving vehicle according to the scenario's mix."""

    def __init__(self, db: Database, scenario: Scenario, rng: random.Random) -> None:
        self.scenario = scenario
        self.rng = rng
        with db.read() as s:
            self.members = [(v.plate, v.make, v.model, v.colour) for v in s.exec(select(Vehicle).where(col(Vehicle.customer_id).is_not(None)).limit(2000))]
            self.legacy = [
                (p.plate_raw, lm.vehicle_desc)
                for p, lm in s.exec(
                    select(LegacyMemberPlate, LegacyMember)
                    .join(LegacyMember, LegacyMember.id == LegacyMemberPlate.legacy_member_id)
                    .where(col(LegacyMember.migrated_at).is_(None))
                    .limit(2000)
                )
            ]
            lanes = list(s.exec(select(Lane).where(Lane.active == True).order_by(Lane.position)))  # noqa: E712
        weights = scenario.lanes
        self.lane_names = [lane.name for lane in lanes]
        self.lane_weights = [weights.get(lane.name, 1.0) for lane in lanes]

    def __call__(self) -> PlateEvent:
        mix = self.scenario.mix
        kinds, weights = ["member", "legacy", "unknown"], [mix.member, mix.legacy, mix.unknown]
        if not self.members:
            weights[0] = 0
        if not self.legacy:
            weights[1] = 0
        if sum(weights) == 0:
            weights[2] = 1
        kind = self.rng.choices(kinds, weights)[0]
        lane = self.rng.choices(self.lane_names, self.lane_weights)[0]
        confidence = round(self.rng.uniform(0.86, 0.99), 2)
        if kind == "member":
            plate, make, model, colour = self.rng.choice(self.members)
            return PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=confidence, make=make, model=model, colour=colour)
        if kind == "legacy":
            plate, desc = self.rng.choice(self.legacy)
            parts = (desc or "").split(" ", 2)
            colour, make, model = (parts + [None, None, None])[:3]
            return PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=confidence, make=make, model=model, colour=colour)
        make, model = self.rng.choice(VEHICLES)
        return PlateEvent(plate=random_plate(self.rng), lane=lane, region="US-TX", confidence=confidence, make=make, model=model, colour=self.rng.choice(COLOURS))


def build_camera(db: Database, scenario: Scenario) -> SimulatedPlateReader:
    rng = random.Random(scenario.arrivals.seed)
    return SimulatedPlateReader(
        source=VehiclePool(db, scenario, rng),
        arrivals_per_minute=scenario.arrivals.per_minute,
        misread_rate=scenario.arrivals.misread_rate,
        seed=scenario.arrivals.seed,
    )


async def run_camera(db: Database, camera: SimulatedPlateReader, terminal: str, initial: int = 0,
                     dwell: dt.timedelta | None = None) -> None:
    """Feed camera reads into sessions until cancelled, and send washed cars on their way. DB writes run in a thread."""
    sessions = SessionService(db)
    actor = Actor.system("plate-camera", terminal)
    await camera.open()
    tunnel = asyncio.create_task(_tunnel_exit(sessions, dwell, terminal)) if dwell else None
    try:
        for _ in range(initial):
            await asyncio.to_thread(_record, sessions, camera.next_event(), actor)
        async for event in camera.events():
            await asyncio.to_thread(_record, sessions, event, actor)
    finally:
        if tunnel is not None:
            tunnel.cancel()
        await camera.close()


async def _tunnel_exit(sessions: SessionService, dwell: dt.timedelta, terminal: str) -> None:
    """The simulated tunnel: cars nobody is serving leave after `dwell`, so the demo board never fills up."""
    actor = Actor.system("simulated-tunnel", terminal)
    while True:
        await asyncio.sleep(min(30.0, dwell.total_seconds() / 4))
        await asyncio.to_thread(sessions.expire_stale, dwell, actor, SessionStatus.DONE)


def _record(sessions: SessionService, event: PlateEvent, actor: Actor) -> None:
    try:
        sessions.record_plate_read(event, actor)
    except ValueError as exc:  # an unreadable plate or an unmapped lane: log, keep going
        log.warning("plate read ignored: %s", exc)
