"""Several terminals on one PostgreSQL database, each a real process: live updates, who holds a
session, and concurrent edits to one customer record."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.services.actor import Actor
from db.models import AuditLog, Customer, Role, VehicleSession
from tests.helpers import forked
from tests.helpers.signin import signin_settings
from tests.helpers.ui import make_app, wait_until

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    def __init__(self, url: str, name: str, work: Path) -> None:
        self.name, self.work = name, work
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_")}
        env.update(PYTHONPATH=str(REPO), CLARITY_CONFIG=str(work / "none.toml"))
        self.log = open(work / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        # A real process of its own, forked from the warm interpreter (tests/helpers/forked.py).
        self.proc = forked.popen(["-m", "tests.site.headless_terminal", url, name, str(work)],
                                 cwd=REPO, env=env, stdin=forked.DEVNULL, stdout=self.log, stderr=forked.STDOUT)

    def state(self) -> dict:
        path = self.work / f"{self.name}.state.json"
        return json.loads(path.read_text()) if path.exists() else {"board": {}, "detail": None}

    def send(self, command: str) -> None:
        cmd = self.work / f"{self.name}.cmd"
        self.until(lambda: not cmd.exists(), "the previous command taken")
        tmp = cmd.with_suffix(".tmp")
        tmp.write_text(command)
        os.replace(tmp, cmd)

    def until(self, predicate, what: str, timeout: float = 20.0) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {(self.work / f'{self.name}.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}; state {self.state()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_terminal_processes_see_each_others_sessions_and_holds_live(demo_db, db_url, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "none.toml").write_text("")
    lane, office = Terminal(db_url, "lane-1", tmp_path), Terminal(db_url, "office", tmp_path)
    try:
        for t in (lane, office):
            t.until(lambda t=t: t.state().get("actor"), "the board up")
        # A car arrives at the lane terminal's camera: the office board shows it, live.
        lane.send("arrive LIV-123 Lane 2")
        office.until(lambda: len(office.state()["board"]) == 1, "the lane's new session on the office board")
        with demo_db.read() as s:
            sid = s.exec(select(VehicleSession.id).where(VehicleSession.plate == "LIV-123")).one()
        assert list(office.state()["board"]) == [str(sid)]
        # The lane opens it; the office board shows who holds it.
        lane.send(f"open {sid}")
        office.until(lambda: office.state()["board"].get(str(sid)) == "Operator lane-1 @ lane-1", "the hold, live")
        # The office opens it too: it is told the lane has it, and the lane keeps it.
        office.send(f"open {sid}")
        office.until(lambda: "Open on Operator lane-1 @ lane-1" in (office.state()["detail"] or ""), "who holds it")
        lane.until(lambda: lane.state()["detail"] and "Open on" not in lane.state()["detail"], "the lane's detail")
        lane.until(lambda: lane.state()["board"].get(str(sid)) == "Operator lane-1 @ lane-1", "the lane still holds it")
        # The office leaves: the lane's hold stays. The lane leaves: the office sees the session free.
        office.send("back")
        office.until(lambda: office.state()["detail"] is None, "office back on its board")
        # A later change reaches the office board (after any release its leaving would have made).
        office.send("arrive MRK-999 Lane 3")
        office.until(lambda: len(office.state()["board"]) == 2, "a later arrival on the office board")
        assert office.state()["board"][str(sid)] == "Operator lane-1 @ lane-1"
        lane.send("back")
        office.until(lambda: office.state()["board"].get(str(sid)) is None, "the hold released, live")
    finally:
        lane.stop()
        office.stop()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_concurrent_edits_to_one_customer_from_two_apps_the_second_is_told(demo_db, settings) -> None:  # noqa: ANN001
    """Two app instances (a lane terminal and a support session) edit the same customer record on
    screen; the lane saves first, the office's save is refused by the version check and says who."""
    from textual.widgets import Input

    from clarity_tui.screens.customer_record import CustomerRecordScreen

    with demo_db.read() as s:
        customer = s.exec(select(Customer).order_by(Customer.id)).first()
    alex = Actor("Alex Attendant", Role.ATTENDANT, "lane-1", None)
    sam = Actor("Sam Support", Role.SUPPORT, "office", None)
    lane = make_app(signin_settings(settings), demo_db, actor=alex)
    office = make_app(signin_settings(settings.model_copy(update={"terminal_id": "office"})), demo_db, actor=sam)
    async with lane.run_test(size=(80, 24)) as p1, office.run_test(size=(80, 24)) as p2:
        for app, pilot, name in ((lane, p1, "Lane"), (office, p2, "Office")):
            await app.push_screen(CustomerRecordScreen(customer.id))
            await wait_until(pilot, lambda app=app: app.screen.query_one("#in-first_name", Input).value == customer.first_name,
                             "the record loaded")
            app.screen.query_one("#in-first_name", Input).value = name
        await p1.press("f2")
        await wait_until(p1, lambda: "saved" in " ".join(str(n.message) for n in lane._notifications), "the lane's save")
        await p2.press("f2")
        error = office.screen.query_one("#general-error")
        await wait_until(p2, lambda: "changed on another terminal" in str(error.render()), "the office told")
        assert "Alex Attendant (lane-1)" in str(error.render())
        assert office.screen.query_one("#in-first_name", Input).value == "Office"  # the typing is kept
    with demo_db.read() as s:
        saved = s.get(Customer, customer.id)
        assert saved.first_name == "Lane"
        audits = s.exec(select(AuditLog).where(AuditLog.entity == "customer", AuditLog.entity_id == str(customer.id),
                                               AuditLog.action == "customer.updated")).all()
        assert [(a.actor, a.terminal) for a in audits] == [("Alex Attendant", "lane-1")]
