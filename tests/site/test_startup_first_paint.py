"""The first painted board loads none of the database stack (issue 17).

The real command line (`clarity-tui --db URL`, the PIN pad included) is started in a fresh interpreter by
the start-up benchmark's own child (bench/_startup_child.py), which exits at the first board showing every
lane and lists the heavy libraries the process loaded by its exit. The PIN pad's operator loader used to
import SQLAlchemy, SQLModel and pydantic beside the first paint; it now waits for the board to be up
(clarity_tui/db_stack.py). The full boot still loads them and finishes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench._support import child_env
from tests.helpers.startup import lane_count

CHILD = Path(__file__).resolve().parents[2] / "bench" / "_startup_child.py"


def run_child(mode: str, url: str, lanes: int, workdir: Path) -> list[str]:
    done = subprocess.run([sys.executable, str(CHILD), mode, url, str(lanes)], capture_output=True, text=True,
                          timeout=180, env=child_env(workdir), stdin=subprocess.DEVNULL)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines and lines[-1] == f"DONE {mode}", done.stdout + done.stderr[-2000:]
    return lines


def heavy(lines: list[str]) -> list[str]:
    (line,) = [line for line in lines if line.startswith("HEAVY")]
    return [name for name in line.removeprefix("HEAVY").strip().split(",") if name]


def test_the_cli_paints_its_first_board_without_the_database_stack(demo_db, settings, tmp_path) -> None:
    url = settings.resolved_database_url()
    lanes = lane_count(url)
    assert lanes > 0
    assert heavy(run_child("paint", url, lanes, tmp_path)) == []


def test_the_full_boot_after_it_loads_the_orm_and_finishes(demo_db, settings, tmp_path) -> None:
    url = settings.resolved_database_url()
    lines = run_child("booted", url, lane_count(url), tmp_path)
    assert {"sqlalchemy", "sqlmodel", "pydantic_settings"} <= set(heavy(lines))
    events = [line.split()[1] for line in lines if line.startswith("AT ")]
    assert events == ["paint", "booted", "orm-paint", "exit"]
