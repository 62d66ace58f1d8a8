"""Where simulated vehicles come from (member cars, legacy members' cars, strangers) and where they go.

Strangers are of two kinds: retail customers, who buy a single wash at the lane (simulator/lane_day.py
serves them), and the others, who drive off unserved. Members the lane day sends home come back later
(`VehiclePool.come_back`): the camera reads them again, as it reads any arrival.

Arrivals go through hardware.plate_reader.SimulatedPlateReader and then the
same SessionService.record_plate_read that a real camera webhook uses. A car
is read at the pre-gate, then at the wash lane it drives on to (the same
session moves), then leaves through the tunnel (done): one session per car.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import threading
from collections import deque
from dataclasses import replace

from sqlalchemy import true
from sqlmodel import col, select

from clarity_tui.seeding.demo import COLOURS, VEHICLES, random_plate
from clarity_tui.services.actor import Actor
from clarity_tui.services.plates import normalize_plate
from clarity_tui.services.sessions import SessionService
from clarity_tui.simulator.scenario import Scenario
from db.engine import Database
from db.models import (
    OPEN_SESSION_STATES,
    Lane,
    LaneKind,
    LegacyMember,
    LegacyMemberPlate,
    MembershipVehicle,
    SessionStatus,
    Vehicle,
    VehicleSession,
    utcnow,
)
from hardware.plate_reader import PlateEvent
from hardware.plate_reader.simulated import SimulatedPlateReader

log = logging.getLogger(__name__)

# The share of its time on site a simulated car spends waiting at the pre-gate.
PRE_GATE_SHARE = 1 / 3


class VehiclePool:
    """Picks the next arriving vehicle according to the scenario's mix.

    Cars arrive at the pre-gate (a wash lane where the site has none); the lane weights
    pick the wash lane a car drives on to, and the pre-gate among several.
    """

    def __init__(self, db: Database, scenario: Scenario, rng: random.Random) -> None:
        self.scenario = scenario
        self.rng = rng
        with db.read() as s:
            # Members' cars, current or lapsed (the lane sees both). Retail customers are strangers.
            self.members = [(v.plate, v.make, v.model, v.colour) for v in s.exec(
                select(Vehicle).join(MembershipVehicle, col(MembershipVehicle.vehicle_id) == col(Vehicle.id))
                .where(col(Vehicle.customer_id).is_not(None)).order_by(col(Vehicle.id)).limit(2000))]
            self.legacy = [
                (p.plate_raw, lm.vehicle_desc)
                for p, lm in s.exec(
                    select(LegacyMemberPlate, LegacyMember)
                    .join(LegacyMember, col(LegacyMember.id) == col(LegacyMemberPlate.legacy_member_id))
                    .where(col(LegacyMember.migrated_at).is_(None))
                    .limit(2000)
                )
            ]
            lanes = list(s.exec(select(Lane).where(col(Lane.active) == true()).order_by(col(Lane.position))))
        weights = scenario.lanes
        self.gates = [(lane.name, weights.get(lane.name, 1.0)) for lane in lanes if lane.kind == LaneKind.PRE_GATE]
        self.wash_lanes = [(lane.name, weights.get(lane.name, 1.0)) for lane in lanes if lane.kind != LaneKind.PRE_GATE]
        self._retail: set[str] = set()  # normalized plates of the retail customers who arrived
        self._returning: deque[PlateEvent] = deque()
        self._lock = threading.Lock()  # the camera's loop picks; the lane day's thread adds returns

    def come_back(self, event: PlateEvent) -> None:
        """This car arrives again (a member back the same day): it is the camera's next arrival."""
        with self._lock:
            self._returning.append(event)

    def is_retail(self, plate: str) -> bool:
        """The car came to buy a single wash (as read: a misread plate is nobody the pool knows)."""
        with self._lock:
            return normalize_plate(plate) in self._retail

    def _pick(self, lanes: list[tuple[str, float]]) -> str:
        return self.rng.choices([name for name, _ in lanes], [weight for _, weight in lanes])[0]

    def arrival_lane(self) -> str:
        return self._pick(self.gates or self.wash_lanes)

    def wash_lane(self) -> str:
        return self._pick(self.wash_lanes)

    def __call__(self) -> PlateEvent:
        with self._lock:
            back = self._returning.popleft() if self._returning else None
        if back is not None:
            return replace(back, lane=self.arrival_lane())
        mix = self.scenario.mix
        kinds, weights = ["member", "legacy", "retail", "unknown"], [mix.member, mix.legacy, mix.retail, mix.unknown]
        if not self.members:
            weights[0] = 0
        if not self.legacy:
            weights[1] = 0
        if sum(weights) == 0:
            weights[3] = 1
        kind = self.rng.choices(kinds, weights)[0]
        lane = self.arrival_lane()
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
        plate = random_plate(self.rng)
        if kind == "retail":
            with self._lock:
                self._retail.add(normalize_plate(plate))
        return PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=confidence, make=make, model=model, colour=self.rng.choice(COLOURS))


def build_camera(db: Database, scenario: Scenario) -> SimulatedPlateReader:
    rng = random.Random(scenario.arrivals.seed)
    return SimulatedPlateReader(
        source=VehiclePool(db, scenario, rng),
        arrivals_per_minute=scenario.arrivals.per_minute,
        misread_rate=scenario.arrivals.misread_rate,
        seed=scenario.arrivals.seed,
    )


class Traffic:
    """What cars do after arriving: wait at the pre-gate, drive on to a wash lane (read there by
    its camera, which moves the same session), and leave through the tunnel (the session is done)."""

    def __init__(self, sessions: SessionService, pool: VehiclePool, terminal: str) -> None:
        self.sessions = sessions
        self.pool = pool
        self.camera = Actor.system("plate-camera", terminal)
        self.tunnel = Actor.system("simulated-tunnel", terminal)

    def drive_on(self, event: PlateEvent) -> None:
        """The car that `event` read at the pre-gate is read again at a wash lane."""
        if self.pool.gates and self.pool.wash_lanes:
            _record(self.sessions, replace(event, lane=self.pool.wash_lane()), self.camera)

    def drive_on_waiting(self, waited: dt.timedelta) -> int:
        """Cars that have waited at the pre-gate this long drive on. Read from the database, so a car
        an attendant already sent away stays gone, and cars from an earlier run move too."""
        if not (self.pool.gates and self.pool.wash_lanes):
            return 0
        cutoff = utcnow() - waited
        with self.sessions.db.read() as s:
            waiting = s.exec(
                select(VehicleSession)
                .join(Lane, col(Lane.id) == col(VehicleSession.lane_id))
                .where(Lane.kind == LaneKind.PRE_GATE, col(VehicleSession.status).in_(OPEN_SESSION_STATES),
                       VehicleSession.arrived_at < cutoff)
                .order_by(col(VehicleSession.arrived_at))
            ).all()
        for row in waiting:
            _record(self.sessions, PlateEvent(plate=row.plate, lane=self.pool.wash_lane(), region=row.plate_region,
                                              confidence=row.confidence, make=row.make, model=row.model, colour=row.colour),
                    self.camera)
        return len(waiting)

    def leave(self, dwell: dt.timedelta) -> int:
        """Cars past the gate that nobody is serving leave `dwell` after they arrived."""
        keep = LaneKind.PRE_GATE if self.pool.wash_lanes else None
        return self.sessions.expire_stale(dwell, self.tunnel, SessionStatus.DONE, keep_lane_kind=keep)


async def run_camera(db: Database, camera: SimulatedPlateReader, terminal: str, initial: int = 0,
                     dwell: dt.timedelta | None = None, sessions: SessionService | None = None) -> None:
    """Feed camera reads into sessions until cancelled, and move cars along. DB writes run in a thread.
    `sessions`: the terminal's (its entitlement policy and clock judge members' visits); else the defaults."""
    sessions = sessions or SessionService(db)
    actor = Actor.system("plate-camera", terminal)
    pool = camera.source
    traffic = Traffic(sessions, pool, terminal) if isinstance(pool, VehiclePool) else None
    await camera.open()
    moving = asyncio.create_task(_move_along(traffic, dwell)) if traffic and dwell else None
    try:
        for i in range(initial):
            event = camera.next_event()
            await asyncio.to_thread(_record, sessions, event, actor)
            if traffic is not None and i % 2 == 1:  # half the first cars are in the lanes already
                await asyncio.to_thread(traffic.drive_on, event)
        async for event in camera.events():
            await asyncio.to_thread(_record, sessions, event, actor)
    finally:
        if moving is not None:
            moving.cancel()
        await camera.close()


async def _move_along(traffic: Traffic, dwell: dt.timedelta) -> None:
    """Cars drive on after a share of `dwell` at the pre-gate and leave after `dwell`, so the demo
    board keeps moving and never fills up."""
    waited = dwell * PRE_GATE_SHARE
    while True:
        await asyncio.sleep(min(10.0, waited.total_seconds() / 4))
        await asyncio.to_thread(traffic.drive_on_waiting, waited)
        await asyncio.to_thread(traffic.leave, dwell)


def _record(sessions: SessionService, event: PlateEvent, actor: Actor) -> None:
    try:
        sessions.record_plate_read(event, actor)
    except ValueError as exc:  # an unreadable plate or an unmapped lane: log, keep going
        log.warning("plate read ignored: %s", exc)
