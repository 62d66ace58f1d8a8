"""Shared plumbing for the benchmarks: scratch databases, child processes, statistics."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def child_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment for a timed child: no developer settings, private data dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
    settings = workdir / "settings.toml"
    settings.touch()
    env.update(
        CLARITY_CONFIG=str(settings),
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    env.pop("TEXTUAL", None)  # no devtools
    env.update(extra)
    return env


@dataclass
class ChildRun:
    seconds: float
    max_rss_kb: int  # wait4's ru_maxrss: on Linux it includes the parent's RSS at exec (see run_child)
    returncode: int
    stdout: str
    stderr: str
    user_cpu: float = 0.0  # the child's user CPU seconds (wait4 rusage)


def run_child(argv: Sequence[str], env: dict[str, str], timeout: float = 120.0) -> ChildRun:
    """Run a process; wall time from spawn to exit.

    (wait4's ru_maxrss is not used for memory: on Linux it starts from the parent's RSS at exec.)
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.001)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(seconds, usage.ru_maxrss, proc.returncode, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"), usage.ru_utime)


def _admin(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _db_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_database(backend: str, admin_url: str, label: str) -> Iterator[str]:
    """A new, empty database URL for one benchmark; removed afterwards whatever happens."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"clarity-bench-{label}-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    name = f"clarity_bench_{label}_{uuid.uuid4().hex[:8]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield _db_url(admin_url, name)
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_demo_database(url: str, customers: int = 200, legacy: int = 100) -> None:
    """Migrate and seed the demo site (outside any timing)."""
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo

    db = open_database(Settings(database_url=url, terminal_id="bench"))
    try:
        seed_demo(db, customers=customers, legacy=legacy)
    finally:
        db.dispose()


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


PYTHON = sys.executable
