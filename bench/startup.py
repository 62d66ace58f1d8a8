"""Start-up, measured as the person waits for it: whole processes, timed from outside (issue 17).

Three kinds of real process (see _startup_child.py): `bare` (a bare Textual app that exits after its
first refresh), `paint` (`clarity-tui --db URL` through the real CLI, exiting at the first painted
board) and `booted` (the same, exiting once `app.booted` fired and the board repainted through the ORM).
`orm-floor` (the bare app plus our SQLModel tables and one ORM read) is information only.

Each repetition runs pairs, bare first then Clarity (bare, paint, bare, booted, orm-floor), so load
from other processes hits both sides of a pair alike. Reported per figure: median, min and max of
spawn -> exit wall time, the child's user CPU (wait4 rusage) and peak RSS (VmHWM from /proc, printed
by the child: wait4's ru_maxrss on Linux starts from the parent's RSS at exec); ratios are taken pair
by pair, and their median is judged against the target. Last, one `python -X importtime` run of the
`paint` child gives the ten imports that cost the most (cumulative ms): where start-up time goes; and
the ten costliest of those the bare app does not import (what Clarity adds).
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import HERE, PYTHON, ChildRun, child_env, prepare_demo_database, run_child

TARGETS = {"first_paint_wall": 1.4, "fully_booted_wall": 3.0, "first_paint_rss": 1.3, "fully_booted_rss": 2.2}
CHILD = str(HERE / "_startup_child.py")


class _Run:
    """One child run: spawn -> exit wall time, user CPU, and its AT/RSS lines (times relative to spawn)."""

    def __init__(self, spawned: float, child: ChildRun) -> None:
        self.seconds = child.seconds
        self.user_cpu = child.user_cpu
        self.at: dict[str, float] = {}
        self.rss: dict[str, int] = {}
        self.heavy: list[str] = []
        for line in child.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == "HEAVY":
                self.heavy = parts[1].split(",") if len(parts) > 1 else []
            if len(parts) == 3 and parts[0] == "AT":
                self.at[parts[1]] = float(parts[2]) - spawned
            elif len(parts) == 3 and parts[0] == "RSS":
                self.rss[parts[1]] = int(parts[2])

    @property
    def peak_kb(self) -> int:
        return max(self.rss.values())


def _spread(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, float]:
    return {"median": round(statistics.median(values) * scale, digits), "min": round(min(values) * scale, digits),
            "max": round(max(values) * scale, digits)}


def _judged(pairs: list[tuple[float, float]], target: float) -> dict[str, Any]:
    """Per-pair ratios (Clarity / bare of the same repetition), their median against the target."""
    ratios = [b / a for a, b in pairs]
    median = statistics.median(ratios)
    return {"ratio_median": round(median, 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
            "target_ratio": target, "meets_target": median <= target}


@benchmark("startup", "Whole-process start-up to first painted board / fully booted, and peak RSS, vs a bare Textual app")
def run(options: Options) -> dict[str, Any]:
    repetitions = options.pick(full=11, quick=7, smoke=2)
    with tempfile.TemporaryDirectory(prefix="clarity-bench-startup-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'demo.db'}"
        prepare_demo_database(url, customers=20 if options.smoke else 200, legacy=10 if options.smoke else 100)
        lanes = _lane_count(url)
        env = child_env(workdir)
        commands = {
            "bare": [PYTHON, CHILD, "bare"],
            "paint": [PYTHON, CHILD, "paint", url, str(lanes)],
            "booted": [PYTHON, CHILD, "booted", url, str(lanes)],
            "orm-floor": [PYTHON, CHILD, "orm-floor", url],
        }
        # One untimed run each: compiles .pyc files and warms the page cache (not in a smoke run, whose
        # figures only show that every path works).
        for argv in commands.values() if not options.smoke else ():
            _timed(argv, env)
        pairs: dict[str, list[tuple[_Run, _Run]]] = {"paint": [], "booted": []}
        floor: list[_Run] = []
        for _ in range(repetitions):
            for kind in ("paint", "booted"):
                bare = _timed(commands["bare"], env)
                pairs[kind].append((bare, _timed(commands[kind], env)))
            floor.append(_timed(commands["orm-floor"], env))
        imports = _import_times([PYTHON, "-X", "importtime", *commands["paint"][1:]], env)
        bare_imports = {row["module"] for row in _import_times([PYTHON, "-X", "importtime", *commands["bare"][1:]], env)}

    kind_name = {"paint": "first_paint", "booted": "fully_booted"}

    def side(kind: str, event: str) -> dict[str, Any]:
        bares = [b for b, _ in pairs[kind]]
        runs = [c for _, c in pairs[kind]]
        return {
            "bare_wall_ms": _spread([r.seconds for r in bares], 1000),
            "clarity_wall_ms": _spread([r.seconds for r in runs], 1000),
            "wall": _judged([(b.seconds, c.seconds) for b, c in pairs[kind]],
                            TARGETS[f"{kind_name[kind]}_wall"]),
            "bare_user_cpu_ms": _spread([r.user_cpu for r in bares], 1000),
            "clarity_user_cpu_ms": _spread([r.user_cpu for r in runs], 1000),
            "user_cpu_ratio_median": round(statistics.median(c.user_cpu / b.user_cpu for b, c in pairs[kind]), 3),
            "bare_peak_rss_kb": _spread([float(r.peak_kb) for r in bares], digits=0),
            "clarity_peak_rss_kb": _spread([float(r.peak_kb) for r in runs], digits=0),
            "peak_rss": _judged([(b.peak_kb, c.peak_kb) for b, c in pairs[kind]], TARGETS[f"{kind_name[kind]}_rss"]),
            f"clarity_spawn_to_{event}_ms": _spread([r.at[event] for r in runs], 1000),
            "heavy_libraries_loaded": sorted({name for r in runs for name in r.heavy}),
        }

    first_paint = side("paint", "paint")
    fully_booted = side("booted", "booted")
    fully_booted["clarity_spawn_to_orm_paint_ms"] = _spread([c.at["orm-paint"] for _, c in pairs["booted"]], 1000)
    bare_kb = statistics.median(b.peak_kb for b, _ in pairs["booted"])
    floor_kb = statistics.median(r.peak_kb for r in floor)
    return {
        "repetitions": repetitions,
        "path": "`clarity-tui --db URL` (clarity_tui.cli, run_app's fast path: resolve_boot_config + ClarityApp "
                "with the PIN pad), SQLite demo db, headless at 120x40; bare Textual app run the same way",
        "measured_as": "spawn -> exit of whole processes, timed from outside; pairs bare then Clarity; "
                       "ratios per pair, median judged",
        "lanes": lanes,
        "first_paint": first_paint,
        "fully_booted": fully_booted,
        "orm_floor": {"peak_rss_kb_median": round(floor_kb), "ratio_vs_bare": round(floor_kb / bare_kb, 3),
                      "note": "bare app + SQLModel tables + one ORM read: what SQLModel alone costs (information)"},
        "meets_targets": all(s[k]["meets_target"] for s in (first_paint, fully_booted) for k in ("wall", "peak_rss")),
        "top_imports": _top(imports),
        "top_imports_not_in_bare": _top([row for row in imports if row["module"] not in bare_imports]),
    }


def _lane_count(url: str) -> int:
    """How many lanes the board must show before it counts as painted."""
    from clarity_tui.services.board_view import read_board
    from db.rawconnect import connect_raw

    conn = connect_raw(url)
    try:
        return len(read_board(conn, True, dt.datetime.now(dt.UTC)))
    finally:
        conn.close()


def _top(rows: list[dict[str, Any]], count: int = 10) -> list[dict[str, Any]]:
    """The `count` imports with the largest cumulative time."""
    return sorted(rows, key=lambda r: r["cumulative_ms"], reverse=True)[:count]


def _import_times(argv: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """Every import of one `-X importtime` run of a child: module, cumulative and self ms, nesting depth."""
    child = run_child(argv, env)
    if child.returncode != 0 or "DONE" not in child.stdout:
        raise RuntimeError(f"importtime run failed (exit {child.returncode}): {child.stderr.strip()[-2000:]}")
    rows: list[dict[str, Any]] = []
    for line in child.stderr.splitlines():
        # "import time:      self [us] | cumulative | imported package"; nesting is the name's indent.
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        rows.append({"module": name.strip(), "cumulative_ms": round(int(cumulative_us) / 1000, 1),
                     "self_ms": round(int(self_us) / 1000, 1), "depth": (len(name) - len(name.lstrip()) - 1) // 2})
    return rows


def _timed(argv: list[str], env: dict[str, str]) -> _Run:
    spawned = time.monotonic()  # the children print time.monotonic() (the same clock)
    child = run_child(argv, env)
    if child.returncode != 0 or "DONE" not in child.stdout:
        raise RuntimeError(f"{' '.join(argv[2:4])} did not finish (exit {child.returncode}): "
                           f"{(child.stdout + child.stderr).strip()[-2000:]}")
    return _Run(spawned, child)
