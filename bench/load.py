"""Load: eight terminal processes write to one database at once (issue 8).

Each child (`python -m bench.load child URL TERMINAL SECONDS OUT`) is a terminal: for the
duration it records plate reads (a new session each) through the sessions service and opens a
membership order on every session through the sale service, plus a plan choice: the writes a
busy lane makes. Each write is one transaction, timed. Then the parent counts: every session and
order a child reported committed must be in the database (lost writes), and no child may have
seen "database is locked" (SQLite: WAL, BEGIN IMMEDIATE and busy_timeout queue the writers).
Figures: writes/s across all terminals, p50/p95 write latency, errors by kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import PYTHON, REPO, child_env, prepare_demo_database, scratch_database, summary_ms

TERMINALS = 8
LANES = ("Pre-Gate", "Lane 1", "Lane 2", "Lane 3")


@benchmark("load", "eight terminal processes writing sessions and orders to one database: lost writes, locks, p95")
def run(options: Options) -> dict[str, Any]:
    seconds = 2.0 if options.smoke else 10.0 if options.quick else 60.0
    out: dict[str, Any] = {"terminals": TERMINALS, "seconds_per_run": seconds}
    for backend in options.backends:
        with scratch_database(backend, options.pg_admin_url, "load") as url:
            prepare_demo_database(url, customers=20, legacy=10)
            out[backend] = _measure(url, seconds)
    return out


def _measure(url: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clarity-bench-load-") as tmp:
        work = Path(tmp)
        env = child_env(work)
        start_at = time.time() + 3.0  # every child starts writing at the same moment, after its imports
        procs = []
        for i in range(TERMINALS):
            procs.append(subprocess.Popen(
                [PYTHON, "-m", "bench.load", "child", url, f"load-term-{i}", str(seconds), str(work / f"t{i}.json"),
                 str(start_at)], env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(work / f"t{i}.err", "w")))  # noqa: SIM115 - closed with the directory
        for p in procs:
            p.wait(timeout=seconds + 120)
        failed = [i for i, p in enumerate(procs) if p.returncode != 0]
        if failed:
            raise RuntimeError(f"terminal processes {failed} failed: " + (work / f"t{failed[0]}.err").read_text()[-2000:])
        results = [json.loads((work / f"t{i}.json").read_text()) for i in range(TERMINALS)]
    sessions = [sid for r in results for sid in r["sessions"]]
    orders = [oid for r in results for oid in r["orders"]]
    latencies = [x for r in results for x in r["latencies"]]
    lost_sessions, lost_orders, unreported = _lost(url, sessions, orders)
    locked = sum(r["errors"].get("locked", 0) for r in results)
    other = sum(r["errors"].get("other", 0) for r in results)
    elapsed = max(r["elapsed"] for r in results)
    stats = summary_ms(latencies) if latencies else {"n": 0}
    return {
        "writes": len(latencies),
        "sessions": len(sessions),
        "orders": len(orders),
        "writes_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        **{f"write_{k}": v for k, v in stats.items()},
        "lost_writes": lost_sessions + lost_orders,
        # Rows in the database no child saw commit (a commit reported as failed): should be 0 too.
        "unreported_rows": unreported,
        "locked_errors": locked,
        "other_errors": other,
        "error_samples": [m for r in results for m in r["messages"]][:5],
        "meets_target": lost_sessions + lost_orders + unreported == 0 and locked == 0 and other == 0,
    }


def _lost(url: str, sessions: list[int], orders: list[int]) -> tuple[int, int, int]:
    """How many reported commits are missing from the database, counted independently of the children."""
    from sqlalchemy import text

    from db.engine import Database

    db = Database.from_url(url)
    try:
        with db.read() as s:
            found_s = {r[0] for r in s.execute(text("SELECT id FROM vehicle_session WHERE plate LIKE 'LD%'"))}
            found_o = {r[0] for r in s.execute(text("SELECT id FROM sales_order WHERE terminal LIKE 'load-term-%'"))}
    finally:
        db.dispose()
    unreported = len(found_s - set(sessions)) + len(found_o - set(orders))
    return len(set(sessions) - found_s), len(set(orders) - found_o), unreported


# --- the child: one terminal --------------------------------------------------------------


def child(url: str, terminal: str, seconds: float, out: str, start_at: float) -> None:
    from clarity_tui.config import Settings
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.orders import SaleService
    from clarity_tui.services.sessions import SessionService
    from db.engine import Database
    from hardware.plate_reader import PlateEvent

    Settings(database_url=url, terminal_id=terminal)  # the same settings path as a terminal
    db = Database.from_url(url)
    actor = Actor(f"bench {terminal}", terminal=terminal)
    sessions_svc = SessionService(db)
    sales = SaleService(db, SimulatedGateway(db), actor, terminal=terminal)
    number = int(terminal.rsplit("-", 1)[1])
    result: dict[str, Any] = {"sessions": [], "orders": [], "latencies": [], "errors": {}, "messages": []}

    def timed(fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - counted by kind, the run goes on
            kind = "locked" if "database is locked" in str(exc).lower() else "other"
            result["errors"][kind] = result["errors"].get(kind, 0) + 1
            if len(result["messages"]) < 3:
                result["messages"].append(f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        result["latencies"].append(time.perf_counter() - started)
        return value

    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    n = 0
    while time.perf_counter() - began < seconds:
        n += 1
        # LD<terminal><n>: unique per write, so no read is folded into an earlier session.
        event = PlateEvent(plate=f"LD{number}{n:05d}", lane=LANES[n % len(LANES)], make="Ford", model="Focus")
        sid = timed(sessions_svc.record_plate_read, event, Actor.system("camera", terminal))
        if sid is None:
            continue
        result["sessions"].append(sid)
        view = timed(sales.open_for_session, sid)
        if view is None:
            continue
        result["orders"].append(view.id)
        timed(sales.choose_plan, view.id, "BASIC")
    result["elapsed"] = time.perf_counter() - began
    db.dispose()
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
    else:
        sys.exit("usage: python -m bench.load child URL TERMINAL SECONDS OUT START_AT")
