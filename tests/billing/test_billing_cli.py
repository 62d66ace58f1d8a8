"""`payments sync --once`, `payments status --json` and the simulator's clock, as real processes (issue 13
items 5, 7 and "Done when")."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import forked

ROOT = Path(__file__).resolve().parents[2]


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m clarity_tui --db URL ARGS` in a process of its own (forked warm: tests/helpers/forked.py)."""
    return forked.run(["-m", "clarity_tui", "--db", url, *args], capture_output=True, text=True,
                      timeout=300, cwd=ROOT, env={**os.environ, **(env or {})})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_advancing_the_clock_31_days_shows_renewals_and_past_due_members(db_url: str) -> None:
    ok(cli(db_url, "demo", "seed", "--customers", "200", "--legacy", "0"))
    ok(cli(db_url, "payments", "sync", "--once"))
    before = json.loads(ok(cli(db_url, "payments", "status", "--json")))
    assert before["payments"]["renewals"] == 0 and before["last_error"] is None
    advanced = json.loads(ok(cli(db_url, "payments", "clock", "advance", "31", "--json", "--seed", "7",
                                 env={"CLARITY_BILLING__SIMULATED_FAILURE_RATE": "0.1"})))
    assert advanced["renewals"] > 0
    out = ok(cli(db_url, "payments", "sync", "--once"))
    assert out.startswith("Synced:")
    status = json.loads(ok(cli(db_url, "payments", "status", "--json")))
    assert status["payments"]["renewals"] > 0
    assert status["members"]["past_due"] > 0
    assert status["payments"]["failed_renewals"] > before["payments"]["failed_renewals"]
    assert status["sync_lag_seconds"] is not None and status["stale"] is False
    assert set(status["members"]) == {"active", "past_due", "paused", "expired", "cancelled"}
    assert status["last_event"]["id"].startswith("evt_")


def test_sync_once_fails_in_one_line_when_the_gateway_cannot_be_used(db_url: str) -> None:
    ok(cli(db_url, "db", "upgrade"))
    result = cli(db_url, "payments", "sync", "--once",
                 env={"CLARITY_PAYMENTS__GATEWAY": "stripe", "CLARITY_PAYMENTS__STRIPE__API_KEY": "sk_test_x",
                      "CLARITY_PAYMENTS__STRIPE__API_BASE": "http://127.0.0.1:9"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("Error:")
    status = json.loads(ok(cli(db_url, "payments", "status", "--json")))
    assert status["last_error"] and status["stale"] is True


@pytest.mark.parametrize("args", [["payments", "status", "--bogus"], ["payments", "sync", "--once", "extra"]])
def test_bad_usage_is_one_line_and_exit_2(db_url: str, args: list[str]) -> None:
    result = cli(db_url, *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
