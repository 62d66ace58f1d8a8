"""Money race: real processes race for the same cars and the same outbox rows, and some die (issue 12).

Per backend (an SQLite file, a scratch PostgreSQL database), with the simulated gateway's
in-flight latency knob on (bench/_money_race_child.py `make_gateway`, one place):

1. Same car, two lanes, same instant: pairs of terminal processes. For each car both terminals
   read the plate in their own lane at once (barrier), open the sale at once, and press Agree at
   once. A third of the cars are a family's: one lane sells the Family plan and adds the car the
   other lane is selling on its own; a third are unknown cars (the customer is typed in).
2. Replayers: hundreds of sales paid while the gateway was unreachable wait in the outbox; the
   network comes back and several replayer processes call `replay_pending()` at the same instant.
3. SIGKILLs: sales that kill themselves at a random point (sale steps, every outbox step before
   the call / after the call / after it is recorded, inside the gateway's in-flight window, just
   after the gateway charged, before activation), and replayers that die at a random step, racing
   a replayer that survives. Dead processes are reaped as they die (their pid is gone, so their
   outbox leases are taken over; their in-flight gateway keys answer 409 KeyInUse for a while).
4. Restart: one process replays and activates (what a terminal does on start), then the parent
   counts from the database and the gateway's own objects, independently of the children:

   gateway_charges   successful payment_intents at the simulated gateway; a charge is *kept*
                     while less than its amount was refunded
   double_charges    extra kept charges of one order (by metadata order_key), plus extra orders
                     keeping money for one vehicle (SalesOrder.vehicle_ids)
   lost_charges      kept charges our database has no record of: no order with that key, or its
                     order's gateway_payment_id is another and no done charge row has it
   stranded_charges  kept charges of cancelled or failed orders
   max_open_sessions_per_car        max open (waiting/in_service) sessions per plate_normalized
   max_current_memberships_per_car  max current (active/past_due/paused) memberships per vehicle

`double_charges`, `lost_charges` and `stranded_charges` must be 0; `max_open_sessions_per_car`
and `max_current_memberships_per_car` must be 1. Throughput figures (replays/s, gateway calls per
outbox step, 409s seen) are reported, not judged. `examples` names the offending rows, if any.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import tempfile
import time
from collections import Counter
from multiprocessing.connection import wait as wait_for_exits
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import prepare_demo_database, scratch_database

LANES = ("Lane 1", "Lane 2", "Lane 3", "Pre-Gate")
CURRENT = ("active", "past_due", "paused")
OPEN_SESSION = ("waiting", "in_service")
# Seconds each simulated gateway call stays in flight (widens the window two senders can meet in).
LATENCY_S = 0.02
# What the race processes import. A smoke run (the tests) forks them from a server that imported these
# once (multiprocessing "forkserver"): still real processes with their own pids, engines and SIGKILLs,
# without a fresh interpreter's second of imports each. Other runs spawn fresh interpreters.
SMOKE_PRELOAD = ["sqlalchemy", "sqlmodel", "psycopg", "db.engine", "db.models", "bench._money_race_child",
                 "clarity_tui.services.actor", "clarity_tui.services.orders", "clarity_tui.services.billing",
                 "clarity_tui.services.sessions", "clarity_tui.services.customers", "clarity_tui.payments.simulated",
                 "clarity_tui.payments.errors", "hardware.plate_reader", "hardware.card_reader.base"]


def _sizes(options: Options) -> dict[str, int]:
    return {
        "pairs": options.pick(full=3, quick=2, smoke=1),
        "cars_per_pair": options.pick(full=30, quick=12, smoke=3),  # smoke: one car of each kind
        "pending_orders": options.pick(full=1000, quick=200, smoke=12),  # smoke: two of them decline
        "replayers": options.pick(full=6, quick=4, smoke=2),
        "crashing_sales": options.pick(full=30, quick=12, smoke=4),
        "crashing_replayers": options.pick(full=6, quick=3, smoke=1),
        "crash_pool_orders": options.pick(full=120, quick=40, smoke=4),
        "builders": options.pick(full=2, quick=2, smoke=1),
    }


@benchmark("money_race", "terminals racing for one car, replayers racing on the outbox, SIGKILLs: money exactly once")
def run(options: Options) -> dict[str, Any]:
    sizes = _sizes(options)
    out: dict[str, Any] = {**sizes, "gateway_latency_s": LATENCY_S}
    if options.smoke:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(SMOKE_PRELOAD)
    else:
        ctx = multiprocessing.get_context("spawn")
    for backend in options.backends:
        with scratch_database(backend, options.pg_admin_url, "money_race") as url:
            out[backend] = _race(url, sizes, seed=12, ctx=ctx)
    return out


# --- set-up ------------------------------------------------------------------------------------------


def _seed_customers(url: str, groups: dict[str, int], decline_every: int) -> dict[str, list[Any]]:
    """Customers with a saved card and a car each (a family: two cars), no membership. Returns plates
    per group. Every `decline_every`-th pending order's card declines when charged."""
    from clarity_tui.seeding.demo import random_phone
    from clarity_tui.services.identity import customer_search_keys
    from clarity_tui.services.plates import normalize_plate
    from db.engine import Database
    from db.models import Customer, PaymentMethod, Vehicle

    rng = random.Random(5)
    db = Database.from_url(url)
    plates: dict[str, list[Any]] = {}
    n = 0
    try:
        with db.write() as s:
            for group, count in groups.items():
                plates[group] = []
                for i in range(count):
                    n += 1
                    phone = random_phone(rng)
                    email = f"race{n}@example.com"
                    c = Customer(customer_number=f"R{n:06d}", first_name="Race", last_name=f"Driver{n}",
                                 phone_e164=phone, email=email, city="Austin", region="TX", country="US",
                                 **customer_search_keys("Race", f"Driver{n}", email, phone))
                    s.add(c)
                    s.flush()
                    cars = [f"{group}{i:04d}"] + ([f"{group}{i:04d}F"] if group == "FA" else [])
                    for plate in cars:
                        s.add(Vehicle(customer_id=c.id, plate=plate, plate_region="US-TX",
                                      plate_normalized=normalize_plate(plate), make="Ford", model="Focus"))
                    outcome = "charge_decline" if group == "PB" and decline_every and i % decline_every == 1 else "ok"
                    s.add(PaymentMethod(customer_id=c.id, gateway="simulated", gateway_token=f"pm_sim_{outcome}_r{n}",
                                        brand="Visa", last4="4242", exp_month=12, exp_year=2031, is_default=True))
                    plates[group].append(cars if group == "FA" else cars[0])
    finally:
        db.dispose()
    return plates


def _jobs(plates: dict[str, list[Any]], pairs: int, per_pair: int) -> list[list[dict[str, Any]]]:
    """Each pair's cars: a third the same known car, a third a family (one lane sells the Family plan
    with the other lane's car on it), a third an unknown car."""
    from clarity_tui.seeding.demo import random_phone

    rng = random.Random(11)
    known, family = iter(plates["SA"]), iter(plates["FA"])
    out = []
    unknown = 0
    for _ in range(pairs):
        jobs = []
        for i in range(per_pair):
            kind = ("same_car", "family", "unknown")[i % 3]
            if kind == "same_car":
                plan = rng.choice(["BASIC", "DELUXE", "ULTIMATE"])
                jobs.append({"kind": kind, "plate": next(known), "plans": [plan, rng.choice(["BASIC", "DELUXE"])]})
            elif kind == "family":
                jobs.append({"kind": kind, "plates": next(family)})
            else:
                unknown += 1
                form = {"first_name": "Walk", "last_name": f"In{unknown}", "phone": random_phone(rng),
                        "email": f"walkin{unknown}@example.com"}
                jobs.append({"kind": "same_car", "plate": f"UN{unknown:04d}", "plans": ["BASIC", "BASIC"], "form": form})
        out.append(jobs)
    return out


# --- running the processes ---------------------------------------------------------------------------


class _Procs:
    """Spawned children; reaped as they exit (a dead, unreaped child's pid still looks alive)."""

    def __init__(self, ctx: Any, work: Path) -> None:
        self.ctx, self.work, self.procs = ctx, work, []
        # Process.start() drops its args: the barriers must outlive the children's unpickling.
        self.args: list[tuple[Any, ...]] = []

    def start(self, target: Any, *args: Any) -> None:
        p = self.ctx.Process(target=target, args=args, daemon=True)
        p.start()
        self.procs.append(p)
        self.args.append(args)

    def wait(self, timeout: float, *, killed_ok: bool = False) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        live = list(self.procs)
        while live:
            left = deadline - time.monotonic()
            if left <= 0:
                for p in live:
                    p.kill()
                    p.join()
                raise RuntimeError(f"{len(live)} race process(es) did not finish in {timeout:.0f} s"
                                   + self._stderr_tail())
            ready = wait_for_exits([p.sentinel for p in live], timeout=left)
            for p in [p for p in live if p.sentinel in ready]:
                p.join()
                live.remove(p)
        codes = Counter("ok" if p.exitcode == 0 else "sigkill" if p.exitcode == -9 else f"exit {p.exitcode}"
                        for p in self.procs)
        bad = [p for p in self.procs if p.exitcode not in ((0, -9) if killed_ok else (0,))]
        self.procs, self.args = [], []
        if bad:
            raise RuntimeError(f"race process(es) failed: {dict(codes)}" + self._stderr_tail())
        return dict(codes)

    def _stderr_tail(self) -> str:
        tails = [f"\n--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(self.work.glob("*.err")) if f.stat().st_size]
        return "".join(tails[-3:])


def _race(url: str, sizes: dict[str, int], seed: int, ctx: Any) -> dict[str, Any]:
    from bench import _money_race_child as child

    rng = random.Random(seed)
    prepare_demo_database(url, customers=10, legacy=0)
    pairs, per_pair = sizes["pairs"], sizes["cars_per_pair"]
    n_family = pairs * len([i for i in range(per_pair) if i % 3 == 1])
    n_same = pairs * len([i for i in range(per_pair) if i % 3 == 0])
    plates = _seed_customers(url, {"SA": n_same, "FA": n_family, "PB": sizes["pending_orders"],
                                   "PK": sizes["crash_pool_orders"], "KS": sizes["crashing_sales"]}, decline_every=10)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="clarity-bench-money-race-") as tmp:
        work = Path(tmp)
        procs = _Procs(ctx, work)

        # 1. Two lanes, one car, the same instant.
        started = time.perf_counter()
        for p, jobs in enumerate(_jobs(plates, pairs, per_pair)):
            barrier = ctx.Barrier(2, timeout=120)
            for side in (0, 1):
                procs.start(child.terminal, url, LATENCY_S, str(work), f"lane-p{p}-s{side}", side,
                            LANES[(2 * p + side) % len(LANES)], jobs, barrier)
        procs.wait(600)
        lanes_tally = _sum_tallies(work, "lane-")
        result["same_car"] = {"cars": pairs * per_pair, "seconds": round(time.perf_counter() - started, 2),
                              "outcomes": lanes_tally["tally"], "samples": lanes_tally["samples"][:8]}

        # 2. Hundreds of orders waiting in the outbox; the replayers race for them.
        started = time.perf_counter()
        pb = plates["PB"]
        builders = sizes["builders"]
        for b in range(builders):
            procs.start(child.builder, url, str(work), f"build-{b}", pb[b::builders], LANES[b])
        procs.wait(1200)
        built = _sum_tallies(work, "build-")["tally"]
        build_s = time.perf_counter() - started
        steps_before = _done_steps(url)
        barrier = ctx.Barrier(sizes["replayers"], timeout=120)
        for r in range(sizes["replayers"]):
            procs.start(child.replayer, url, LATENCY_S, str(work), f"replay-{r}", barrier, 600.0)
        procs.wait(900)
        replays = [json.loads(f.read_text()) for f in sorted(work.glob("replay-*.json"))]
        replay_s = max(r["ended"] for r in replays) - min(r["began"] for r in replays)
        steps = _done_steps(url) - steps_before
        replay_tally = _sum_tallies(work, "replay-")
        orders_synced = _orders_in(url, plates["PB"], ("completed",))
        result["replay"] = {
            "pending_orders": len(pb), "built": built, "build_seconds": round(build_s, 2),
            "replayers": sizes["replayers"], "seconds": round(replay_s, 2),
            "orders_completed": orders_synced, "steps_done": steps,
            "replays_per_s": round(orders_synced / replay_s, 1) if replay_s > 0 else None,
            "steps_per_s": round(steps / replay_s, 1) if replay_s > 0 else None,
            "rounds": [r["rounds"] for r in replays],
            "busy_skips": replay_tally["tally"].get("status:busy", 0),
            "key_in_use_409s": replay_tally["tally"].get("key_in_use_409", 0),
            "outcomes": replay_tally["tally"], "samples": replay_tally["samples"][:4],
            "latency_knob": replays[0].get("latency_knob"),
        }

        # 3. SIGKILLs at random points, racing one replayer that survives.
        pool = plates["PK"]
        for b in range(builders):
            procs.start(child.builder, url, str(work), f"buildk-{b}", pool[b::builders], LANES[(b + 2) % len(LANES)])
        procs.wait(600)
        points = child.kill_points()
        crash_jobs: list[dict[str, Any]] = []
        for i, plate in enumerate(plates["KS"]):
            crash_jobs.append({"kind": "sale", "plate": plate, "lane": LANES[i % len(LANES)],
                               "plan": rng.choice(["BASIC", "DELUXE", "ULTIMATE"]),
                               "kill_at": points[i % len(points)] if i < len(points) else rng.choice(points)})
        for _ in range(sizes["crashing_replayers"]):
            # Four steps per order, three observer points and an in-flight window each: die somewhere.
            crash_jobs.append({"kind": "replay", "kill_after_events": rng.randint(1, max(1, 4 * len(pool)))})
        started = time.perf_counter()
        barrier = ctx.Barrier(len(crash_jobs) + 1, timeout=120)
        for i, job in enumerate(crash_jobs):
            procs.start(child.crasher, url, LATENCY_S, str(work), f"crash-{i}", job, barrier)
        procs.start(child.replayer, url, LATENCY_S, str(work), "survivor", barrier, 300.0)
        exits = procs.wait(900, killed_ok=True)
        result["crashes"] = {"processes": len(crash_jobs) + 1, "exits": exits,
                             "kill_points": sorted({j["kill_at"] for j in crash_jobs if j["kind"] == "sale"}),
                             "seconds": round(time.perf_counter() - started, 2),
                             "pending_rows_before_restart": _pending_rows(url)}

        # 4. A terminal starts again: replay, activate. Then count.
        procs.start(child.restart, url, str(work), "restart", 10 * child.IN_FLIGHT_LEASE_S)
        procs.wait(600)
        restarted = json.loads((work / "restart.json").read_text())
        calls = _gateway_calls(work)
    counts = _count(url)
    total_steps = counts.pop("outbox_steps_done")
    return {
        **counts,
        "gateway_calls": calls["calls"],
        "gateway_calls_per_step": round(calls["calls"] / total_steps, 2) if total_steps else None,
        "gateway_errors": calls["errors"],
        "key_in_use_409s": calls["key_in_use"],
        "replays_per_s": result["replay"]["replays_per_s"],
        "restart": restarted,
        "phases": result,
    }


# --- reading the children's results -----------------------------------------------------------------


def _sum_tallies(work: Path, prefix: str) -> dict[str, Any]:
    tally: Counter = Counter()
    samples: list[str] = []
    for f in sorted(work.glob(f"{prefix}*.json")):
        data = json.loads(f.read_text())
        tally.update(data.get("tally", {}))
        samples.extend(data.get("samples", []))
    return {"tally": dict(sorted(tally.items())), "samples": samples}


def _gateway_calls(work: Path) -> dict[str, Any]:
    """Every gateway call the racing processes made (builders' offline attempts are not counted)."""
    from bench._money_race_child import is_key_in_use

    calls = 0
    errors: Counter = Counter()
    for f in work.glob("*.calls"):
        if f.name.startswith("build"):
            continue
        for line in f.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "call":
                calls += 1
            elif kind == "err":
                errors[rest.partition(" ")[2]] += 1
    return {"calls": calls, "errors": dict(errors), "key_in_use": sum(n for code, n in errors.items() if is_key_in_use(code))}


# --- counting from the database ------------------------------------------------------------------------


def _db(url: str) -> Any:
    from db.engine import Database

    return Database.from_url(url)


def _done_steps(url: str) -> int:
    from sqlmodel import func, select

    from db.models import Outbox

    db = _db(url)
    try:
        with db.read() as s:
            return s.exec(select(func.count()).select_from(Outbox).where(Outbox.status == "done")).one()
    finally:
        db.dispose()


def _pending_rows(url: str) -> int:
    from sqlmodel import func, select

    from db.models import Outbox

    db = _db(url)
    try:
        with db.read() as s:
            return s.exec(select(func.count()).select_from(Outbox).where(Outbox.status == "pending")).one()
    finally:
        db.dispose()


def _orders_in(url: str, plates: list[str], states: tuple[str, ...]) -> int:
    from sqlmodel import col, func, select

    from db.models import SalesOrder, VehicleSession

    db = _db(url)
    try:
        with db.read() as s:
            return s.exec(select(func.count()).select_from(SalesOrder)
                          .join(VehicleSession, col(VehicleSession.id) == SalesOrder.session_id)
                          .where(col(VehicleSession.plate_normalized).in_(plates), col(SalesOrder.state).in_(states))).one()
    finally:
        db.dispose()


def _count(url: str) -> dict[str, Any]:
    """The money and identity figures, from our tables and the simulated gateway's own objects."""
    from sqlmodel import col, func, select

    from db.models import Membership, MembershipVehicle, Outbox, SalesOrder, SimGatewayObject, VehicleSession

    db = _db(url)
    try:
        with db.read() as s:
            orders = {o.idempotency_key: o for o in s.exec(select(SalesOrder)).all()}
            charges = [(row.id, dict(row.data or {})) for row in
                       s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")).all()]
            refunds = s.exec(select(func.count()).select_from(SimGatewayObject)
                             .where(SimGatewayObject.kind == "refund")).one()
            recorded: set[str] = set()
            for row in s.exec(select(Outbox).where(Outbox.operation == "payment.charge", Outbox.status == "done")):
                if row.result and row.result.get("payment_id"):
                    recorded.add(row.result["payment_id"])
            open_sessions = s.exec(select(VehicleSession.plate_normalized, func.count())
                                   .where(col(VehicleSession.status).in_(OPEN_SESSION))
                                   .group_by(VehicleSession.plate_normalized)).all()
            current = s.exec(select(MembershipVehicle.vehicle_id, func.count(func.distinct(Membership.id)))
                             .join(Membership, col(Membership.id) == MembershipVehicle.membership_id)
                             .where(col(Membership.status).in_(CURRENT))
                             .group_by(MembershipVehicle.vehicle_id)).all()
            steps_done = s.exec(select(func.count()).select_from(Outbox).where(Outbox.status == "done")).one()
            pending_rows = s.exec(select(func.count()).select_from(Outbox).where(Outbox.status == "pending")).one()
    finally:
        db.dispose()

    succeeded = [(pi, d) for pi, d in charges if d.get("status") == "succeeded"]
    kept = [(pi, d) for pi, d in succeeded if (d.get("refunded") or 0) < d.get("amount", 0)]
    by_order: dict[str, list[str]] = {}
    for pi, d in kept:
        by_order.setdefault((d.get("metadata") or {}).get("order_key", "?"), []).append(pi)
    double_orders = {k: v for k, v in by_order.items() if len(v) > 1}
    by_vehicle: dict[int, set[str]] = {}
    for key in by_order:
        order = orders.get(key)
        for vid in (order.vehicle_ids or []) if order is not None else []:
            by_vehicle.setdefault(vid, set()).add(key)
    double_vehicles = {v: keys for v, keys in by_vehicle.items() if len(keys) > 1}
    lost, stranded, unfinished = [], [], []
    for pi, d in kept:
        key = (d.get("metadata") or {}).get("order_key")
        order = orders.get(key or "")
        if order is None or (order.gateway_payment_id != pi and pi not in recorded):
            lost.append(pi)
        elif order.state in ("cancelled", "failed"):
            stranded.append(f"{pi} (order {order.id}, {order.state})")
        elif order.state not in ("completed", "pending_sync"):
            unfinished.append(f"{pi} (order {order.id}, {order.state})")
    states = Counter(o.state for o in orders.values())
    examples = {
        "double_charged_orders": {k: v for k, v in list(double_orders.items())[:3]},
        "double_charged_vehicles": {str(v): sorted(
            f"order {orders[k].id} ({orders[k].state}, terminal {orders[k].terminal})" for k in keys)
            for v, keys in list(double_vehicles.items())[:3]},
        "lost": lost[:3], "stranded": stranded[:3], "unfinished": unfinished[:3],
    }
    return {
        "orders": len(orders),
        "orders_by_state": dict(sorted(states.items())),
        "gateway_charges": len(succeeded),
        "charges_kept": len(kept),
        "refunds": refunds,
        "declined_charges": len(charges) - len(succeeded),
        "double_charges": sum(len(v) - 1 for v in double_orders.values())
        + sum(len(keys) - 1 for keys in double_vehicles.values()),
        "double_charged_orders": len(double_orders),
        "double_charged_vehicles": len(double_vehicles),
        "lost_charges": len(lost),
        "stranded_charges": len(stranded),
        "kept_charges_on_unfinished_orders": len(unfinished),
        "max_open_sessions_per_car": max((n for _, n in open_sessions), default=0),
        "cars_with_two_open_sessions": sum(1 for _, n in open_sessions if n > 1),
        "max_current_memberships_per_car": max((n for _, n in current), default=0),
        "cars_on_two_current_memberships": sum(1 for _, n in current if n > 1),
        "pending_outbox_rows_left": pending_rows,
        "outbox_steps_done": steps_done,
        "examples": examples,
    }
