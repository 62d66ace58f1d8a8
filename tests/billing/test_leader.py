"""One leader per site database (issue 13 item 1): real processes racing on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.services.billing_sync import BillingSync
from db.models_billing import GatewayEvent as EventRow
from tests.helpers import forked
from tests.helpers.billing import make_member
from tests.helpers.processes import wait_for_file

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

CHILD = Path(__file__).with_name("leader_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, hold: str) -> forked.ForkedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return forked.popen([str(CHILD), url, hold], stdout=forked.PIPE, stderr=forked.PIPE, text=True, env=env)


def _result(proc: forked.ForkedProcess) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_while_one_terminal_leads_the_others_do_nothing(db, gw, settings, db_url, tmp_path) -> None:  # noqa: ANN001
    members = [make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1)) for _ in range(3)]
    BillingSync(db, gw, settings).run_once()  # the cursor
    gw.advance_clock(2, failure_rate=0.0)
    leader = _spawn(db_url, str(tmp_path))
    wait_for_file(tmp_path / "leading", leader)
    # Four more terminals at once while the leader is mid-pass.
    others = [_spawn(db_url, "-") for _ in range(4)]
    results = [_result(p) for p in others]
    assert [r["leader"] for r in results] == [False] * 4 and all(not r["events"] for r in results)
    (tmp_path / "release").write_text("1")
    first = _result(leader)
    assert first["leader"] is True and first["events"].get("processed", 0) >= len(members)
    with db.read() as s:
        assert len({e.id for e in s.exec(select(EventRow))}) == sum(first["events"].values())
    # The leader is gone: the next terminal leads.
    assert _result(_spawn(db_url, "-"))["leader"] is True


def test_a_leader_killed_mid_pass_is_replaced(db, gw, settings, db_url, tmp_path) -> None:  # noqa: ANN001
    make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1))
    BillingSync(db, gw, settings).run_once()
    gw.advance_clock(2, failure_rate=0.0)
    leader = _spawn(db_url, str(tmp_path))
    wait_for_file(tmp_path / "leading", leader)
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=30)
    # SQLite: the dead pid's lease is taken over; PostgreSQL: its advisory lock died with its connection.
    result = _result(_spawn(db_url, "-"))
    assert result["leader"] is True and result["events"].get("processed", 0) >= 1
