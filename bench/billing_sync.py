"""Billing sync (issue 13): how fast the gateway's events come in, and what entitlement costs the board.

Per backend: the demo site with its members as simulated subscriptions, the billing clock advanced a
month (renewals, failures at 10%, retries), then, timed:

- `sync_pass_s`: one leader's pass over every event the month made (retrieve fresh, reconcile, record);
- `idle_pass_s`: the next pass, with nothing new (the baseline: what every sync_every_seconds costs);
- `fallback_pass_s`: the cursor forgotten, every due membership reconciled from its subscription;
- `board_read_ms`: the lanes board's read (with its entitlement rule) with 20 members' cars on it.

Ratios are against the idle pass of the same run.
"""

from __future__ import annotations

import time
from typing import Any

from bench import Options, benchmark
from bench._support import scratch_database


@benchmark("billing_sync", "the billing sync's event pass, idle pass and fallback, and the board read with entitlement")
def run(options: Options) -> dict[str, Any]:
    customers = options.pick(full=400, quick=200, smoke=20)  # smoke: still renewals, a failure and retries
    out: dict[str, Any] = {"customers": customers, "days": 31, "failure_rate": 0.1}
    for backend in options.backends:
        with scratch_database(backend, options.pg_admin_url, "billing_sync") as url:
            out[backend] = _measure(url, customers)
    return out


def _measure(url: str, customers: int) -> dict[str, Any]:
    from sqlmodel import select

    from clarity_tui.config import Settings
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing_sync import BillingSync
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from clarity_tui.services.entitlement import EntitlementPolicy
    from clarity_tui.services.sessions import SessionService
    from db.models import Membership, MembershipVehicle, Vehicle, VehicleSession
    from db.models_billing import BillingSync as SyncRow
    from hardware.plate_reader import PlateEvent

    settings = Settings(database_url=url, terminal_id="bench", site={"timezone": "UTC"})
    db = open_database(settings)
    try:
        seed_demo(db, customers=customers, legacy=0, gateway=True)
        gw = SimulatedGateway(db)
        sync = BillingSync(db, gw, settings, terminal="bench")
        sync.run_once()
        clock = gw.advance_clock(31, failure_rate=0.1, seed=7)
        started = time.perf_counter()
        report = sync.run_once()
        sync_pass = time.perf_counter() - started
        started = time.perf_counter()
        sync.run_once()
        idle_pass = time.perf_counter() - started
        with db.write() as s:
            s.get(SyncRow, "events").cursor = "evt_forgotten"
        started = time.perf_counter()
        fallback = sync.run_once()
        fallback_pass = time.perf_counter() - started
        # Members' cars on the board.
        sessions = SessionService(db, EntitlementPolicy(grace_days=3))
        with db.read() as s:
            plates = s.exec(select(Vehicle.plate).join(MembershipVehicle, MembershipVehicle.vehicle_id == Vehicle.id)
                            .join(Membership, Membership.id == MembershipVehicle.membership_id).limit(20)).all()
        for plate in plates:
            sessions.record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("bench"))
        reads = []
        for _ in range(30):
            t = time.perf_counter()
            sessions.board()
            reads.append(time.perf_counter() - t)
        with db.read() as s:
            on_board = len(s.exec(select(VehicleSession.id)).all())
        events = sum(report.events.values())
        return {
            "gateway": {"renewals": clock.renewals, "failures": clock.failures, "retries": clock.retries,
                        "events": clock.events},
            "events_handled": dict(report.events),
            "sync_pass_s": round(sync_pass, 3),
            "ms_per_event": round(1000 * sync_pass / max(1, events), 2),
            "idle_pass_s": round(idle_pass, 4),
            "fallback_pass_s": round(fallback_pass, 3),
            "fallback_reconciled": fallback.reconciled_due,
            "ratio_sync_to_idle": round(sync_pass / idle_pass, 1) if idle_pass else None,
            "ratio_fallback_to_idle": round(fallback_pass / idle_pass, 1) if idle_pass else None,
            "board_read_ms_median": round(1000 * sorted(reads)[len(reads) // 2], 2),
            "sessions_on_board": on_board,
        }
    finally:
        db.dispose()
