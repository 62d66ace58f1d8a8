"""Bulk seeding speed (issue 2, item 7): customers per second and the time for 1,000,000."""

from __future__ import annotations

from typing import Any

from bench import Options, benchmark
from bench._support import scratch_database

TARGET_1M_SECONDS = 120.0


@benchmark("seed", "bulk_seed customers/s on SQLite and PostgreSQL; extrapolated (or, with --full, real) 1M time")
def run(options: Options) -> dict[str, Any]:
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.bulk import bulk_seed

    customers = 1_000_000 if options.full else options.pick(full=100_000, quick=20_000, smoke=2_000)
    out: dict[str, Any] = {"customers": customers}
    for backend in options.backends:
        with scratch_database(backend, options.pg_admin_url, "seed") as url:
            db = open_database(Settings(database_url=url, terminal_id="bench"))
            try:
                result = bulk_seed(db, customers=customers)
            finally:
                db.dispose()
        rate = result.customers / result.seconds
        one_million = result.seconds if customers == 1_000_000 else 1_000_000 / rate
        out[backend] = {
            "seconds": round(result.seconds, 2),
            "customers_per_s": round(rate),
            "vehicles": result.vehicles,
            "memberships": result.memberships,
            "payment_methods": result.payment_methods,
            "one_million_seconds": round(one_million, 1),
            "one_million_is": "measured" if customers == 1_000_000 else "extrapolated",
            "target_one_million_seconds": TARGET_1M_SECONDS,
            "meets_target": one_million <= TARGET_1M_SECONDS,
        }
    return out
