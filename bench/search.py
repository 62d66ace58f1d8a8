"""Customer search at scale (issues 7 and 17): the `customers search --json` path vs the naive scan.

Targets, at 1,000,000 customers on SQLite and on PostgreSQL: p95 <= 5 ms per query (issue 17,
cold and warm passes each), and >= 30x faster than the naive `LIKE '%term%'` scan in the same run
(issue 7).

What is timed, per query, in this one process: `cli_customers.run_search` (what `clarity-tui customers
search` runs once its database is open: SearchService.search) plus `cli_customers.search_json` (its
`--json` output). Opening the database and Python start-up are outside it: spawning a process per
query would time the interpreter, not the search.

- `cold`: each query's first run, on the database opened anew just before it (untimed), exactly as
  each `customers search` invocation opens it: a new engine and connection, so SQLite's page cache
  and PostgreSQL's per-backend catalog and plan caches start empty, and the query's customers
  have not been read by this process. The OS page cache and PostgreSQL's
  shared buffers are not dropped (that needs root and would slow everyone on the machine).
- `warm`: the same queries again on one long-lived connection, as a terminal searching all day.

The database is seeded by the bulk seeder (as `clarity-tui demo seed --customers N`) and cached by
size (SQLite: <tmp>/clarity-bench/search-N.db, PostgreSQL: database clarity_bench_search_N) unless
`--smoke`: a cached one is reused when present (the JSON's `database` says which). `--smoke` seeds
a small scratch one and removes it, unless `--keep`. It is built under a temporary name and
renamed when complete, so a half-built one is never reused.

Queries are sampled from the data itself (seeded RNG): last-name prefixes of 3-6 characters,
"first last" full names, the last 4/7/10 phone digits typed in different formats, email
prefixes, customer numbers, plates typed with a dash or a space, and misread plates (a
camera-confusable character swapped, or one character dropped). The naive scan is slow, so it
runs a smaller sample of the same mix; both are warmed up first.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import _admin, _db_url, percentile

TARGET_P95_MS = 5.0
TARGET_SPEEDUP = 30.0
KINDS = ("last_prefix", "full_name", "phone_4", "phone_7", "phone_10", "email_prefix", "customer_number",
         "plate_dash", "plate_space", "plate_misread")


@benchmark("search", "`customers search --json` path p50/p95, cold and warm, vs the naive LIKE scan at 1M customers")
def run(options: Options) -> dict[str, Any]:
    customers = options.pick(full=1_000_000, quick=1_000_000, smoke=3_000)
    queries = options.pick(full=300, quick=100, smoke=20)
    naive_queries = options.pick(full=20, quick=5, smoke=5)
    out: dict[str, Any] = {"customers": customers, "queries": queries, "naive_queries": naive_queries,
                           "timed": TIMED, "target_p95_ms": TARGET_P95_MS,
                           "target_p95_judged_on": "cold and warm passes each", "target_speedup": TARGET_SPEEDUP,
                           "speedup_target_judged_on": "ratio of medians (naive p50 / warm p50); p95 ratio reported too"}
    cache = options.keep or not options.smoke
    for backend in options.backends:
        with seeded_database(backend, customers, options, cache=cache) as (url, origin):
            out[backend] = {"database": origin, **_measure(url, queries, naive_queries)}
    return out


# --- the seeded database -----------------------------------------------------------------


def _cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "clarity-bench"


@contextlib.contextmanager
def seeded_database(backend: str, customers: int, options: Options, cache: bool | None = None) -> Iterator[tuple[str, str]]:
    """(url, how it was obtained) of a database at the schema head holding `customers` bulk-seeded customers.

    The cached one (by size) is reused when present; a new one is seeded under the cache name only
    with `cache` (default: --keep), otherwise under a unique scratch name, so concurrent runs never
    share it."""
    keep = options.keep if cache is None else cache
    if backend == "sqlite":
        cached = _cache_dir() / f"search-{customers}.db"
        if cached.exists() and _count_customers(f"sqlite:///{cached}") == customers:
            path, origin = cached, "reused"
        else:
            path = cached if keep else cached.with_name(f"search-{customers}-{uuid.uuid4().hex[:8]}.db")
            origin = "seeded"
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.partial")
            try:
                _seed(f"sqlite:///{partial}", customers)
                os.replace(partial, path)
            finally:
                for leftover in partial.parent.glob(partial.name + "*"):
                    leftover.unlink()
        try:
            yield f"sqlite:///{path}", f"{origin} {path}" + (" (kept)" if keep else " (deleted afterwards)")
        finally:
            if not keep:
                for leftover in path.parent.glob(path.name + "*"):  # and any -wal / -shm
                    leftover.unlink()
        return
    admin = options.pg_admin_url
    cached_name = f"clarity_bench_search_{customers}"
    if _pg_exists(admin, cached_name) and _count_customers(_db_url(admin, cached_name)) == customers:
        name, origin = cached_name, "reused"
    else:
        name = cached_name if keep else f"{cached_name}_{uuid.uuid4().hex[:8]}"
        origin = "seeded"
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        building = f"{cached_name}_building_{uuid.uuid4().hex[:8]}"
        _admin(admin, f'CREATE DATABASE "{building}"')
        try:
            _seed(_db_url(admin, building), customers)
            _admin(admin, f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            _admin(admin, f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    try:
        yield _db_url(admin, name), f"{origin} database {name}" + (" (kept)" if keep else " (dropped afterwards)")
    finally:
        if not keep:
            _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _open(url: str) -> Any:
    """Open (and, if behind, upgrade to the schema head) as the app does."""
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database

    return open_database(Settings(database_url=url, terminal_id="bench"))


def _seed(url: str, customers: int) -> None:
    from clarity_tui.seeding.bulk import bulk_seed

    db = _open(url)
    try:
        bulk_seed(db, customers=customers)
    finally:
        db.dispose()


def _count_customers(url: str) -> int | None:
    """Customers in a complete database of ours (opening it upgrades its schema if behind)."""
    from sqlalchemy import text

    try:
        db = _open(url)
    except Exception:  # noqa: BLE001 - unusable: rebuild it
        return None
    try:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM customer")).scalar_one()
    finally:
        db.dispose()


def _pg_exists(admin_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


# --- the query mix -----------------------------------------------------------------------

_SWAPS: dict[str, list[str]] = defaultdict(list)
for _a, _b in {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2", "G": "6"}.items():
    _SWAPS[_a].append(_b)
    _SWAPS[_b].append(_a)


def _term(kind: str, row: Any, plate: str | None, rng: random.Random) -> str | None:
    """A search term of `kind` that a person would type for this customer (None: not possible)."""
    digits = "".join(ch for ch in (row.phone_e164 or "") if ch.isdigit())
    if kind == "last_prefix":
        size = rng.randint(3, 6)
        return row.last_name[:size] if len(row.last_name) >= 3 else None
    if kind == "full_name":
        return f"{row.first_name} {row.last_name}" if row.first_name and row.last_name else None
    if kind.startswith("phone"):
        if len(digits) < 10:
            return None
        d = digits[-10:]
        if kind == "phone_4":
            return d[-4:]
        if kind == "phone_7":
            return rng.choice([f"{d[3:6]}-{d[6:]}", d[3:], f"{d[3:6]} {d[6:]}"])
        return rng.choice([f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", f"+1 {d[:3]} {d[3:6]} {d[6:]}", d])
    if kind == "email_prefix":
        if not row.email:
            return None
        local = row.email.split("@", 1)[0]
        return local[: rng.randint(min(4, len(local)), len(local))]
    if kind == "customer_number":
        return rng.choice([row.customer_number, row.customer_number.lower()])
    if plate is None:
        return None
    normalized = "".join(ch for ch in plate.upper() if ch.isalnum())
    if kind == "plate_dash":
        return plate if "-" in plate else f"{normalized[:3]}-{normalized[3:]}"
    if kind == "plate_space":
        return plate.replace("-", " ") if "-" in plate else f"{normalized[:3]} {normalized[3:]}"
    # plate_misread: a camera-confusable character swapped, else one character dropped
    swappable = [i for i, ch in enumerate(normalized) if ch in _SWAPS]
    if swappable:
        i = rng.choice(swappable)
        return normalized[:i] + rng.choice(_SWAPS[normalized[i]]) + normalized[i + 1 :]
    i = rng.randrange(len(normalized))
    return normalized[:i] + normalized[i + 1 :]


def sample_terms(db: Any, count: int, seed: int = 7) -> list[tuple[str, str, int]]:
    """`count` (kind, term, customer id) taken from random customers, the kinds in turn."""
    from sqlalchemy import select

    from db.models import Customer, Vehicle

    c, v = Customer.__table__, Vehicle.__table__  # type: ignore[attr-defined]
    rng = random.Random(seed)
    with db.engine.connect() as conn:
        low, high = conn.execute(select(c.c.id).order_by(c.c.id).limit(1)).scalar_one(), conn.execute(
            select(c.c.id).order_by(c.c.id.desc()).limit(1)).scalar_one()
        ids = sorted({rng.randint(low, high) for _ in range(count * 4)})
        rows = conn.execute(select(c.c.id, c.c.customer_number, c.c.first_name, c.c.last_name, c.c.phone_e164,
                                   c.c.email).where(c.c.id.in_(ids))).all()
        plates: dict[int, str] = {}
        for cid, plate in conn.execute(select(v.c.customer_id, v.c.plate).where(v.c.customer_id.in_(ids))):
            plates.setdefault(cid, plate)
    rng.shuffle(rows)
    terms: list[tuple[str, str, int]] = []
    pool = iter(rows)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        for row in pool:
            term = _term(kind, row, plates.get(row.id), rng)
            if term:
                terms.append((kind, term, row.id))
                break
        else:
            raise RuntimeError(f"not enough customers to sample {count} search terms")
    return terms


# --- measuring -----------------------------------------------------------------------------


TIMED = ("per query, in one process: clarity_tui.cli_customers.run_search (SearchService.search, what "
         "`customers search` runs) + search_json (its --json output); database opening and interpreter start-up "
         "excluded. cold: first run of each query, each on the database opened anew as the CLI opens it (new "
         "connection: empty SQLite page cache, new PostgreSQL backend; OS page cache and shared buffers not dropped). warm: the same queries again on one "
         "long-lived connection.")


def _stats(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p95_ms": round(percentile(ms, 95), 3),
            "max_ms": round(max(ms), 3), "mean_ms": round(statistics.fmean(ms), 3)}


def _by_kind(kinds: list[str], ms: list[float]) -> dict[str, dict[str, float]]:
    grouped: dict[str, list[float]] = defaultdict(list)
    for kind, value in zip(kinds, ms, strict=True):
        grouped[kind].append(value)
    return {k: {"p50_ms": round(percentile(v, 50), 3), "p95_ms": round(percentile(v, 95), 3)} for k, v in grouped.items()}


def _timed_cli_search(db: Any, term: str) -> tuple[float, Any]:
    from clarity_tui.cli_customers import run_search, search_json

    started = time.perf_counter()
    result = run_search(db, term)
    search_json(result)
    return (time.perf_counter() - started) * 1000, result


def _measure(url: str, queries: int, naive_queries: int) -> dict[str, Any]:
    from clarity_tui.services.search import SearchService

    db = _open(url)
    try:
        service = SearchService(db)
        terms = sample_terms(db, queries)
        warmup = sample_terms(db, max(10, queries // 10), seed=11)
        for _, term, _ in warmup:  # imports and Python-level caches, on other customers than the timed ones
            _timed_cli_search(db, term)
        kinds = [kind for kind, _, _ in terms]
        cold: list[float] = []
        found: dict[str, list[bool]] = defaultdict(list)
        empty = 0
        for kind, term, customer_id in terms:
            fresh = _open(url)  # as each `customers search` run opens it (untimed)
            try:
                elapsed, result = _timed_cli_search(fresh, term)
            finally:
                fresh.dispose()
            cold.append(elapsed)
            found[kind].append(any(hit.customer_id == customer_id for hit in result.hits))
            empty += not result.hits
        warm = [_timed_cli_search(db, term)[0] for _, term, _ in terms]
        # The naive scan: an evenly spread subset of the same mix, one warm-up query first.
        step = max(1, len(terms) // naive_queries)
        naive_terms = terms[::step][:naive_queries]
        service.naive_like_search(warmup[0][1])
        naive = [service.naive_like_search(term).elapsed_ms for _, term, _ in naive_terms]
        same = [_timed_cli_search(db, term)[0] for _, term, _ in naive_terms]
    finally:
        db.dispose()
    cold_stats, warm_stats, nv = _stats(cold), _stats(warm), _stats(naive)
    speedup_p50 = nv["p50_ms"] / warm_stats["p50_ms"]
    speedup_p95 = nv["p95_ms"] / warm_stats["p95_ms"]
    meets_p95 = cold_stats["p95_ms"] <= TARGET_P95_MS and warm_stats["p95_ms"] <= TARGET_P95_MS
    return {
        "cold": cold_stats,
        "cold_by_kind": _by_kind(kinds, cold),
        "warm": warm_stats,
        "warm_by_kind": _by_kind(kinds, warm),
        # Queries whose sampled customer is among the hits (name prefixes are broad, so not always).
        "found_rate_by_kind": {k: round(sum(v) / len(v), 2) for k, v in found.items()},
        "empty_results": empty,
        "naive_like": nv,
        "speedup_p50": round(speedup_p50, 1),
        "speedup_p95": round(speedup_p95, 1),
        "speedup_same_terms_p50": round(percentile(naive, 50) / percentile(same, 50), 1),
        "meets_p95_target_cold": cold_stats["p95_ms"] <= TARGET_P95_MS,
        "meets_p95_target_warm": warm_stats["p95_ms"] <= TARGET_P95_MS,
        "meets_p95_target": meets_p95,
        "meets_speedup_target": speedup_p50 >= TARGET_SPEEDUP,
        "meets_speedup_target_on_p95": speedup_p95 >= TARGET_SPEEDUP,
        "meets_target": meets_p95 and speedup_p50 >= TARGET_SPEEDUP,
        "example_terms": [f"{kind}: {term}" for kind, term, _ in terms[: len(KINDS)]],
        # The machine is shared: the load when the passes ended says how far to trust the figures.
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
