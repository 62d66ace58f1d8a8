"""Start-up to the first painted board, and peak RSS, against a bare Textual app (issue 2).

Both are real processes, timed by the parent from spawn to exit, run alternately so
background load hits both alike; medians are compared.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import HERE, PYTHON, child_env, prepare_demo_database, run_child

TARGET_STARTUP_RATIO = 1.5
TARGET_RSS_RATIO = 2.0
CHILD = str(HERE / "_startup_child.py")


@benchmark("startup", "start-up to first painted board and peak RSS vs a bare Textual app (SQLite demo db)")
def run(options: Options) -> dict[str, Any]:
    repetitions = options.pick(full=15, quick=5, smoke=2)
    with tempfile.TemporaryDirectory(prefix="clarity-bench-startup-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'demo.db'}"
        prepare_demo_database(url, customers=20 if options.smoke else 200, legacy=10 if options.smoke else 100)
        env = child_env(workdir)
        commands = {"bare": [PYTHON, CHILD, "bare"], "clarity": [PYTHON, CHILD, "clarity", url]}
        # One untimed run each: compiles .pyc files and warms the page cache.
        for argv in commands.values():
            _check(run_child(argv, env), argv)
        times: dict[str, list[float]] = {k: [] for k in commands}
        rss: dict[str, list[int]] = {k: [] for k in commands}
        for _ in range(repetitions):
            for kind, argv in commands.items():
                child = _check(run_child(argv, env), argv)
                times[kind].append(child.seconds)
                rss[kind].append(child.peak_rss_kb)
    bare_ms = statistics.median(times["bare"]) * 1000
    clarity_ms = statistics.median(times["clarity"]) * 1000
    bare_kb = statistics.median(rss["bare"])
    clarity_kb = statistics.median(rss["clarity"])
    return {
        "repetitions": repetitions,
        "startup": {
            "bare_ms_median": round(bare_ms, 1),
            "clarity_ms_median": round(clarity_ms, 1),
            "bare_ms_min": round(min(times["bare"]) * 1000, 1),
            "clarity_ms_min": round(min(times["clarity"]) * 1000, 1),
            "ratio": round(clarity_ms / bare_ms, 3),
            "target_ratio": TARGET_STARTUP_RATIO,
            "meets_target": clarity_ms / bare_ms <= TARGET_STARTUP_RATIO,
        },
        "peak_rss": {
            "bare_kb_median": bare_kb,
            "clarity_kb_median": clarity_kb,
            "ratio": round(clarity_kb / bare_kb, 3),
            "target_ratio": TARGET_RSS_RATIO,
            "meets_target": clarity_kb / bare_kb <= TARGET_RSS_RATIO,
        },
    }


def _check(child, argv):  # noqa: ANN001, ANN202
    if child.returncode != 0 or "PAINTED" not in child.stdout:
        raise RuntimeError(f"{' '.join(argv[1:3])} did not reach its first paint (exit {child.returncode}): "
                           f"{(child.stdout + child.stderr).strip()[-2000:]}")
    return child
