"""The benchmarks run as `python -m bench`, in their smoke mode, on the test PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import forked
from tests.helpers.pg import PG_ADMIN_URL

REPO = Path(__file__).resolve().parents[2]
# Benchmarks that start multiprocessing children run in a fresh interpreter: a forked child (a daemonic
# multiprocessing process) may not start children of its own. The others are forked from the warm server.
FRESH = {"money_race"}


def run_bench(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    env["CLARITY_BENCH_PG_URL"] = PG_ADMIN_URL
    if FRESH.intersection(args):
        proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
    else:
        proc = forked.run(["-m", "bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def scratch_databases(label: str) -> set[str]:
    """This benchmark's scratch databases (other benchmarks may be running in parallel test workers)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                           (f"clarity_bench_{label}_",))}
