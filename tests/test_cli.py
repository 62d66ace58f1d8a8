"""The CLI as a person runs it: real processes, one-line errors, files never modified."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

from db import migrate
from db.engine import make_engine
from tests.helpers import forked
from tests.helpers.cli import run_cli


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_db_upgrade_creates_a_fresh_database_and_reports_the_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run_cli("--db", url, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"schema at {migrate.head_revision()}" in result.stdout
    result = run_cli("--db", url, "db", "current")
    assert result.stdout.startswith(migrate.head_revision())


def test_unreachable_database_url(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there.
    result = run_cli("--db", "postgresql://postgres@127.0.0.1:1/nowhere", "db", "upgrade")
    assert_one_line_error(result, "Cannot reach the database", "127.0.0.1:1", "CLARITY_DATABASE_URL")


def test_corrupt_sqlite_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    before = _digest(path)
    result = run_cli("--db", f"sqlite:///{path}", "db", "upgrade")
    assert_one_line_error(result, "corrupt", str(path))
    assert _digest(path) == before
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0


def test_read_only_sqlite_file_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "site.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine, "0001")  # an older schema: the app would want to upgrade it
    engine.dispose()
    for leftover in (Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        leftover.unlink(missing_ok=True)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    before = _digest(path)
    # Root ignores permission bits. It does obey the immutable flag (ext4, xfs, btrfs), so as root the
    # file is also made immutable; where the flag is not supported, the CLI runs as an unprivileged user
    # (which needs the checkout and its venv to be readable by others).
    env = {}
    prefix: list[str] = []
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if not immutable:
            tmp_path.chmod(0o755)
            Path(os.environ["CLARITY_CONFIG"]).chmod(0o644)
            for parent in tmp_path.parents:
                if str(parent) in ("/", "/tmp"):
                    break
                parent.chmod(parent.stat().st_mode | 0o005)
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            env["HOME"] = str(tmp_path)
    args = ["-m", "clarity_tui", "--db", f"sqlite:///{path}", "db", "upgrade"]
    try:
        if prefix:  # setpriv launches the program as another user: a real interpreter behind it
            result = subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True, timeout=120,
                                    env={**os.environ, **env}, cwd=str(tmp_path))
        else:
            result = forked.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **env},
                                cwd=str(tmp_path))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    assert_one_line_error(result, "read-only", str(path))
    assert _digest(path) == before


def test_schema_newer_than_the_code_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    before = _digest(path)
    result = run_cli("--db", f"sqlite:///{path}", "db", "upgrade")
    assert_one_line_error(result, "newer than this version", "upgrade clarity-tui")
    assert _digest(path) == before


def test_missing_settings_file_and_bad_scenario_are_one_line_errors(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "missing.toml"), "db", "current")
    assert_one_line_error(result, "does not exist", "missing.toml")
    garbled = tmp_path / "garbled.toml"
    garbled.write_text("[site\nname = ")
    result = run_cli("--config", str(garbled), "db", "current")
    assert_one_line_error(result, "not valid TOML", "garbled.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[arrivals]\nper_minute = -3\n")
    result = run_cli("--db", f"sqlite:///{tmp_path / 's.db'}", "simulate", "--headless", "--duration", "1", "--scenario", str(bad))
    assert_one_line_error(result, "arrivals.per_minute")


def test_headless_simulation_brings_vehicles_to_the_lanes(tmp_path: Path) -> None:
    scenario = tmp_path / "busy.toml"
    # dwell_minutes = 0.03: washed cars leave after ~2 s, so some sessions close within the run.
    scenario.write_text('initial_vehicles = 3\ndwell_minutes = 0.03\n[arrivals]\nper_minute = 240\nseed = 5\n'
                        '[mix]\nmember = 1\nlegacy = 1\nunknown = 1\n')
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    result = run_cli("--db", url, "simulate", "--headless", "--duration", "4", "--scenario", str(scenario))
    assert result.returncode == 0, result.stderr
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.connect() as conn:
        sessions = conn.execute(text("SELECT count(*) FROM vehicle_session")).scalar_one()
        customers = conn.execute(text("SELECT count(*) FROM customer")).scalar_one()
        actors = set(conn.execute(text("SELECT DISTINCT actor FROM audit_log WHERE action = 'session.created'")).scalars())
        done = conn.execute(text("SELECT count(*) FROM vehicle_session WHERE status = 'done'")).scalar_one()
        tunnel = conn.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'simulated-tunnel' AND action = 'session.done'")).scalar_one()
    engine.dispose()
    assert customers >= 200  # the demo site (and the customers the simulated lane day signs up)
    assert sessions >= 4
    assert actors == {"plate-camera"}
    # The simulated tunnel sends washed cars on their way, so the demo board never fills up.
    assert done >= 1 and tunnel == done
