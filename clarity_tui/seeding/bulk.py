"""Bulk loader for large, realistic benchmark databases (`clarity-tui demo seed --customers N`).

A million customers with vehicles, memberships and saved cards in well under two
minutes. How:

- rows are built in plain Python tuples with a seeded RNG (no ORM objects);
- ids are allocated by us in blocks, so children point at parents without round trips
  (SQLite: inside the batch's write lock; PostgreSQL: reserved from the sequences);
- SQLite: the raw DBAPI connection, `executemany`, one transaction per batch,
  foreign-key checks and fsync off while loading, secondary indexes rebuilt once at the end;
- PostgreSQL: psycopg 3 `COPY ... FROM STDIN` fed with ready-made text lines.

Customer search runs on this data, so names are varied (accents, apostrophes,
hyphens, thousands of distinct last names, a Zipf-like distribution) and the search
keys are exactly those of `identity.customer_search_keys`. Cards are gateway
tokens only: never a card number.

Appends to an existing database (for example one holding the demo site).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import text

from clarity_tui.seeding.bulk_loaders import postgres_load, sqlite_load
from clarity_tui.seeding.bulk_rows import TABLES, Batch, IdBlocks, RowGenerator
from clarity_tui.seeding.demo import ensure_reference_data
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from db.engine import Database
from db.models import Plan

log = logging.getLogger(__name__)

BATCH_CUSTOMERS = 50_000


def _plan_id(plan: Plan) -> int:
    assert plan.id is not None, "ensure_reference_data returns stored plans"
    return plan.id


@dataclass
class BulkSeedResult:
    customers: int
    vehicles: int
    memberships: int
    legacy: int
    payment_methods: int = 0
    membership_vehicles: int = 0
    seconds: float = 0.0
    first_customer_id: int | None = None
    last_customer_id: int | None = None


def bulk_seed(
    db: Database,
    customers: int,
    legacy: int = 0,
    seed: int = 2026,
    batch_size: int = BATCH_CUSTOMERS,
    progress: Callable[[str], None] | None = None,
) -> BulkSeedResult:
    """Append `customers` customers (with vehicles, cards, memberships) and `legacy` legacy members."""
    started = time.perf_counter()
    say = progress or (lambda msg: log.info("bulk seed: %s", msg))
    with db.write() as s:
        plans = ensure_reference_data(s)
        plan_ids = {code: _plan_id(plan) for code, plan in plans.items()}
        plan_info = {code: (plan_ids[code], plan.max_vehicles)
                     for code, plan in sorted(plans.items(), key=lambda kv: kv[1].tier)}
        existing_plates = set(s.execute(text("SELECT plate_normalized FROM vehicle")).scalars())
        existing_plates.update(s.execute(text("SELECT plate_normalized FROM legacy_member_plate")).scalars())
        plate_counter = s.execute(text("SELECT count(*) FROM vehicle")).scalar_one() + s.execute(
            text("SELECT count(*) FROM legacy_member_plate")).scalar_one()
    gen = RowGenerator(plan_info, seed, "" if db.is_sqlite else "+00", existing_plates, plate_counter)
    totals = {t: 0 for t in TABLES}
    first_id: list[int] = []

    def batches(ids: IdBlocks) -> Iterable[Batch]:
        first_id.append(ids.next["customer"])
        done = 0
        while done < customers:
            n = min(batch_size, customers - done)
            batch = gen.customers(ids, n)
            for t in TABLES:
                totals[t] += batch.count(t)
            yield batch
            done += n
            say(f"{done:,}/{customers:,} customers ({time.perf_counter() - started:.1f} s)")
        done = 0
        while done < legacy:
            n = min(batch_size, legacy - done)
            batch = gen.legacy(ids, n, plan_ids)
            for t in TABLES:
                totals[t] += batch.count(t)
            yield batch
            done += n

    if db.is_sqlite:
        sqlite_load(db, batches, say)
    else:
        # Upper bounds for the id blocks: 2 vehicles, 1 card, 1 membership per customer at most.
        counts = {"customer": customers, "vehicle": 2 * customers + legacy, "membership": customers,
                  "payment_method": customers, "legacy_member": legacy, "legacy_member_plate": legacy}
        postgres_load(db, batches, counts, say)
    result = BulkSeedResult(
        customers=totals["customer"], vehicles=totals["vehicle"], memberships=totals["membership"],
        legacy=totals["legacy_member"], payment_methods=totals["payment_method"],
        membership_vehicles=totals["membership_vehicle"], seconds=time.perf_counter() - started,
        first_customer_id=first_id[0] if first_id and customers else None,
        last_customer_id=first_id[0] + customers - 1 if first_id and customers else None,
    )
    with db.write() as s:
        audit.record(s, Actor.system("bulk-seed"), "demo.bulk_seeded", "site", None,
                     after={"customers": result.customers, "vehicles": result.vehicles,
                            "memberships": result.memberships, "legacy": result.legacy})
    return result
