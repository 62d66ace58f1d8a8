"""`clarity-tui simulate --headless --duration S`: the site's day without a screen.

Three things run together for S seconds: the camera (cars arrive, wait at the pre-gate, drive on to a lane),
the lane day (lane_day.py: members let through, single washes sold, "Join today", the tunnel), and the
simulated gateway's billing clock (the scenario's `billing_days_per_minute`: renewals, failures, retries
and the cancellations they end in, synced into the database as the app's billing pass does).

The billing clock runs ahead of the real one, so its renewals and churn fall on the days it reaches. The
figures printed are therefore those of the simulated span: from the site's day the run started on to the
day the billing clock reached, in the shape of `clarity-tui report --date D --json` (lane_metrics), added up
over the days ("day" and "through" say which).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clarity_tui.simulator.scenario import Scenario

if TYPE_CHECKING:
    from clarity_tui.wiring import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatedDay:
    first: dt.date
    through: dt.date
    figures: dict[str, Any]
    tally: dict[str, int]


def build_tunnel(devices: Any, scenario: Scenario) -> Any:
    """The device set's tunnel controller; the simulated one moves cars at the scenario's pace."""
    tunnel = devices.tunnel
    if hasattr(tunnel, "travel_seconds"):
        tunnel.travel_seconds = scenario.day.tunnel_seconds
    return tunnel


async def run_headless(services: Services, scenario: Scenario, duration: float | None) -> SimulatedDay:
    """Run the camera, the lane day and the billing clock for `duration` seconds (None: until cancelled)."""
    from clarity_tui.devices import build_devices
    from clarity_tui.services.sessions import SessionService
    from clarity_tui.simulator.lane_day import LaneDay, run_lane_day, sign_in_attendant, sign_out_attendant
    from clarity_tui.simulator.world import VehiclePool, build_camera, run_camera

    db, settings = services.db, services.settings
    first = services.today()
    devices = build_devices(settings, scenario, db=db)
    tunnel = build_tunnel(devices, scenario)
    await devices.card_reader.open()
    await tunnel.open()
    await asyncio.to_thread(_billing_pass, services)  # the members' standing is fresh before cars arrive
    signed_in = await asyncio.to_thread(sign_in_attendant, services, scenario.day.attendant)
    camera = build_camera(db, scenario)
    pool = camera.source if isinstance(camera.source, VehiclePool) else None
    day = LaneDay(services, scenario, card_reader=devices.card_reader, tunnel=tunnel, attendant=signed_in.actor,
                  pool=pool, loop=asyncio.get_running_loop())
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_camera(
        db, camera, settings.terminal_id, scenario.initial_vehicles, dwell=dt.timedelta(minutes=scenario.dwell_minutes),
        sessions=SessionService.from_services(services))),
        asyncio.create_task(run_lane_day(day, stop)), asyncio.create_task(run_billing_clock(services, scenario, stop))]
    try:
        # Until the duration is up, or one of them fails (a full or unreachable database ends the day).
        await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop.set()
        tasks[0].cancel()  # the camera runs until cancelled; the others finish the car at hand first
        await asyncio.gather(*tasks, return_exceptions=True)
        await devices.card_reader.close()
        await tunnel.close()
        await asyncio.to_thread(sign_out_attendant, services, signed_in)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
    through = max(first, _billing_day(services))
    figures = await asyncio.to_thread(span_figures, db, first, through, settings.site.zone)
    return SimulatedDay(first, through, figures, dict(day.tally))


async def run_billing_clock(services: Services, scenario: Scenario, stop: asyncio.Event) -> None:
    """The simulated gateway's clock, `billing_days_per_minute` days a real minute (whole days, as the app's
    clock moves it), each step synced into the database. Nothing with another gateway, or a rate of 0."""
    rate = scenario.billing_days_per_minute
    if not rate or services.settings.payments.gateway != "simulated":
        return
    loop = asyncio.get_running_loop()
    started, advanced = loop.time(), 0
    while not stop.is_set():
        due = int((loop.time() - started) * rate / 60) - advanced
        if due >= 1:
            await asyncio.to_thread(advance_billing, services, scenario, due)
            advanced += due
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(1.0, 30 / rate))
        except TimeoutError:
            pass


def advance_billing(services: Services, scenario: Scenario, days: int) -> None:
    """Move the simulated gateway's clock `days` forward, then sync (as the app's palette command does)."""
    gateway: Any = services.gateway
    rate = scenario.billing_failure_rate
    if rate is None:
        rate = services.settings.billing.simulated_failure_rate
    try:
        report = gateway.advance_clock(float(days), failure_rate=rate)
    except Exception as exc:  # noqa: BLE001 - a busy database: the next step catches up
        log.warning("billing clock: %s", exc)
        return
    log.info("billing clock %s: %s renewals, %s failed, %s cancelled", report.now, report.renewals,
             report.failures, report.cancelled)
    _billing_pass(services)


def _billing_pass(services: Services) -> None:
    from clarity_tui.services.billing_pass import run_billing_pass

    try:
        run_billing_pass(services.db, services.gateway, services.settings, today=services.today(),
                         terminal=services.terminal, messaging=services.messaging)
    except Exception as exc:  # noqa: BLE001 - as the app's billing pass: try again at the next step
        log.warning("billing pass failed: %s", exc)


def _billing_day(services: Services) -> dt.date:
    from clarity_tui.sitetime import site_date

    return site_date(services.gateway.clock_now(), services.settings.site.zone)


def span_figures(db: Any, first: dt.date, through: dt.date, zone: dt.tzinfo) -> dict[str, Any]:
    """lane_metrics' day figures added up over `first`..`through` (rates over the totals)."""
    from clarity_tui.services.lane_metrics import ratio, series

    days = series(db, through, zone, days=(through - first).days + 1)
    counts: Counter[str] = Counter()
    by: dict[str, Counter[str]] = {"commissions": Counter(), "sales_by_operator": Counter()}
    for figures in days:
        for key, value in figures.as_json().items():
            if key in by:
                by[key].update(value)
            elif isinstance(value, int) and key != "current_members":
                counts[key] += value
    out: dict[str, Any] = {"day": first.isoformat(), "through": through.isoformat(), **counts}
    out["conversion_rate"] = _rounded(ratio(counts["memberships_sold"], counts["retail_washes"]))
    out["current_members"] = days[0].current_members
    out["visits_per_member"] = _rounded(ratio(counts["member_visits"], days[0].current_members))
    out.update({key: dict(sorted(c.items())) for key, c in by.items()})
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
