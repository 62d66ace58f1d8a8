"""Latency from a session committed by another process to its bubble painted on the board (issue 2).

Three processes: this one orchestrates, `_latency_app.py` runs the real ClarityApp headless and
logs every BoardScreen.Painted with its wall-clock time, `_latency_writer.py` records plate reads
through the sessions service at jittered intervals and logs each commit time. Matched by session id.

The board holds ON_BOARD vehicles while it is measured (issue 17: 30): the writer puts them there
before the app starts, and retires the oldest before each arrival.

BENCH_LATENCY_TRACE=1 adds a diagnostic "breakdown" of where each sample's time went (the app logs the
stages of every read: see `_latency_app._install_trace`). Leave it off for the figures themselves.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import HERE, PYTHON, REPO, child_env, prepare_demo_database, scratch_database, summary_ms

TARGET_P95_MS = {"sqlite": 50.0, "postgres": 50.0}
ON_BOARD = 30


@benchmark("latency", "session committed in another process -> bubble painted, p50/p95 (SQLite and PostgreSQL)")
def run(options: Options) -> dict[str, Any]:
    samples = options.pick(full=40, quick=20, smoke=3)
    interval = 0.25
    out: dict[str, Any] = {"samples_per_backend": samples, "interval_ms": interval * 1000, "vehicles_on_board": ON_BOARD}
    for backend in options.backends:
        with scratch_database(backend, options.pg_admin_url, "latency") as url:
            if options.smoke:
                prepare_demo_database(url, customers=20, legacy=10)
            else:
                prepare_demo_database(url)
            out[backend] = _measure(url, samples, interval, TARGET_P95_MS[backend])
    return out


def _measure(url: str, samples: int, interval: float, target_p95_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clarity-bench-latency-") as tmp:
        work = Path(tmp)
        paints, stop, writes = work / "paints.log", work / "stop", work / "writes.log"
        trace = work / "trace.log" if os.environ.get("BENCH_LATENCY_TRACE") else None
        env = child_env(work, **({"CLARITY_BENCH_TRACE": str(trace)} if trace else {}))
        subprocess.run([PYTHON, str(HERE / "_latency_writer.py"), url, "prefill", str(ON_BOARD - 1)],
                       check=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
        with open(work / "app.out", "w") as app_out:
            app = subprocess.Popen([PYTHON, str(HERE / "_latency_app.py"), url, str(paints), str(stop)],
                                   stdout=app_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
            try:
                _wait_for(lambda: paints.exists() and paints.stat().st_size > 0, 60, app, work)
                time.sleep(0.5)  # let start-up work (device opening, first ticks) settle
                subprocess.run([PYTHON, str(HERE / "_latency_writer.py"), url, str(samples), str(interval), str(writes),
                                str(ON_BOARD)],
                               check=True, env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
                written = _read_writes(writes)
                _wait_for(lambda: set(written) <= _seen(paints), 5, app, work, must=False)
            finally:
                stop.touch()
                try:
                    app.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    # (On PostgreSQL the app does not exit: the change-feed worker reopens the
                    # feed that on_unmount closed. Reported; not ours to fix here.)
                    app.kill()
                    app.wait()
        first_paint = _first_paints(paints)
        trace_text = trace.read_text() if trace else ""
        board_sizes = _board_sizes(paints, set(written))
        wakeups = _wakeups(paints)
    # Diagnostic split: commit -> the change feed's wake-up on the UI thread -> painted.
    to_wakeup = []
    for sid, committed in written.items():
        later = [t for t in wakeups if t >= committed and (sid not in first_paint or t <= first_paint[sid])]
        if later:
            to_wakeup.append(later[0] - committed)
    latencies = [first_paint[sid] - committed for sid, committed in written.items() if sid in first_paint]
    missed = len(written) - len(latencies)
    if not latencies:
        raise RuntimeError(f"none of the {len(written)} sessions was painted")
    stats = summary_ms(latencies)
    extra = {"breakdown": _breakdown(trace_text, written, first_paint)} if trace else {}
    return {**stats, "missed": missed,
            "commit_to_wakeup_p50_ms": round(sorted(to_wakeup)[len(to_wakeup) // 2] * 1000, 1) if to_wakeup else None,
            # How many vehicles the board showed in the paint that first showed each sample.
            "on_board_min": min(board_sizes, default=0), "on_board_max": max(board_sizes, default=0),
            "target_p95_ms": target_p95_ms,
            "meets_target": missed == 0 and stats["p95_ms"] <= target_p95_ms, **extra}


def _wait_for(cond, timeout: float, app: subprocess.Popen, work: Path, must: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if app.poll() is not None:
            raise RuntimeError(f"the board app exited early ({app.returncode}): {(work / 'app.out').read_text()[-2000:]}")
        time.sleep(0.02)
    if must:
        raise RuntimeError(f"timed out after {timeout} s: {(work / 'app.out').read_text()[-2000:]}")


def _read_writes(path: Path) -> dict[int, float]:
    out = {}
    for line in path.read_text().splitlines():
        sid, committed = line.split()
        out[int(sid)] = float(committed)
    return out


def _paint_lines(path: Path) -> list[tuple[float, set[int]]]:
    rows = []
    for line in path.read_text().splitlines():
        stamp, _, ids = line.partition(" ")
        if ids == "changed":
            continue
        rows.append((float(stamp), {int(x) for x in ids.split(",") if x}))
    return rows


def _wakeups(path: Path) -> list[float]:
    return sorted(float(line.split()[0]) for line in path.read_text().splitlines() if line.endswith(" changed"))


def _seen(path: Path) -> set[int]:
    return set().union(*(ids for _, ids in _paint_lines(path))) if path.exists() else set()


def _board_sizes(path: Path, sampled: set[int]) -> list[int]:
    sizes: list[int] = []
    seen: set[int] = set()
    for _, ids in _paint_lines(path):
        new = (ids & sampled) - seen
        if new:
            sizes.append(len(ids))
            seen |= new
    return sizes


def _first_paints(path: Path) -> dict[int, float]:
    first: dict[int, float] = {}
    for stamp, ids in _paint_lines(path):
        for sid in ids:
            first.setdefault(sid, stamp)
    return first


# Stages from a commit to its paint, in order (see _latency_app._install_trace): each is the time from the
# previous mark to this one.
_STAGES = ("feed", "heard", "read_start", "read_end", "apply_start", "apply_end", "painted", "reported")


def _breakdown(trace: str, written: dict[int, float], first_paint: dict[int, float]) -> dict[str, Any]:
    events = []
    for line in trace.splitlines():
        stamp, stage, detail = (line.split(" ", 2) + [""])[:3]
        events.append((float(stamp), stage, detail.strip()))
    events.sort()
    by_read: dict[str, dict[str, float]] = {}
    shown: dict[int, str] = {}  # session -> the read whose paint first showed it
    for t, stage, detail in events:
        if stage in ("read0", "read1", "apply0", "apply1", "painted"):
            number, *rest = detail.split(" ")
            read = by_read.setdefault(number, {})
            read.setdefault(stage, t)
            if stage in ("apply0", "painted"):
                read[stage + "_cpu"] = float(rest[0])
            for sid in rest[1].split(",") if stage == "painted" and len(rest) > 1 else ():
                shown.setdefault(int(sid), number)

    def first(stage: str, after: float) -> float | None:
        return next((t for t, s, _ in events if s == stage and t >= after), None)

    rows = []
    for sid, committed in written.items():
        painted = first_paint.get(sid)
        if painted is None:
            continue
        read = by_read.get(shown.get(sid, ""))
        feed = first("feed", committed)
        heard = first("changed", feed) if feed is not None else None
        if read is None or feed is None or heard is None or not {"read0", "apply1", "painted"} <= read.keys():
            continue
        marks = [committed, feed, heard, read["read0"], read["read1"], read["apply0"], read["apply1"], read["painted"],
                 painted]
        row = {name: round((b - a) * 1000, 1) for name, a, b in zip(_STAGES, marks[:-1], marks[1:], strict=True)}
        row["total"] = round((painted - committed) * 1000, 1)
        # The UI thread's CPU from the apply to the paint (mount, styles, layout, render): unlike the wall
        # times above, it hardly moves with the machine's load.
        row["ui_cpu"] = round(read["painted_cpu"] - read["apply0_cpu"], 1)
        # What else ran in the window (wall ms; a layout includes the render it triggers): layouts, renders,
        # ticks and GC, and how many reads.
        for kind in ("layout", "render", "tick", "gc"):
            spent = 0.0
            started = None
            for t, s, _ in events:
                if not committed <= t <= painted:
                    continue
                if s == kind + "0":
                    started = t
                elif s == kind + "1" and started is not None:
                    spent += t - started
                    started = None
            row[kind] = round(spent * 1000, 1)
        row["reads"] = sum(1 for t, s, _ in events if s == "read0" and committed <= t <= painted)
        rows.append(row)
    rows.sort(key=lambda r: r["total"])
    keys = [*_STAGES, "ui_cpu", "layout", "render", "tick", "gc"]
    median = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in keys} if rows else {}
    return {"stage_medians_ms": median, "slowest": rows[-4:]}
