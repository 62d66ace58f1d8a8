"""One session per car (issue 12): a read in another lane moves the car's open session, a unique
partial index keeps it that way under racing cameras (real processes, SQLite and PostgreSQL), the
simulator's cars drive Pre-Gate -> lane -> done as one session, and migration 0006 cleans up."""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import time
import traceback
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db import migrate
from db.changefeed import open_change_feed
from db.engine import Database, make_engine
from db.models import AuditLog, Lane, SalesOrder, SessionStatus, Vehicle, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers import forked

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

CAMERA = Actor.system("test-camera")
LANES = ("Pre-Gate", "Lane 1", "Lane 2", "Lane 3")
OPEN = (SessionStatus.WAITING, SessionStatus.IN_SERVICE)


def _read(db: Database, plate: str, lane: str, **details: Any) -> int:
    return SessionService(db).record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", **details), CAMERA)


def _sessions(db: Database, plate_normalized: str) -> list[VehicleSession]:
    with db.read() as s:
        return list(s.exec(select(VehicleSession).where(VehicleSession.plate_normalized == plate_normalized)
                           .order_by(col(VehicleSession.id))))


def _actions(db: Database, session_id: int) -> list[str]:
    with db.read() as s:
        return list(s.exec(select(AuditLog.action).where(AuditLog.entity == "vehicle_session",
                                                         AuditLog.entity_id == str(session_id)).order_by(col(AuditLog.id))))


def _lane_id(db: Database, name: str) -> int:
    with db.read() as s:
        return s.exec(select(Lane.id).where(Lane.name == name)).one()  # type: ignore[return-value]


def _board_lane_of(db: Database, session_id: int) -> list[str]:
    """Names of the board's lanes that show the session (exactly one when all is well)."""
    return [lane.name for lane in SessionService(db).board() if any(b.session_id == session_id for b in lane.bubbles)]


# --- moving -------------------------------------------------------------------------------------


def test_a_read_in_another_lane_moves_the_session_with_its_customer_hold_and_order(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.orders import SaleService

    with demo_db.read() as s:
        car = s.exec(select(Vehicle).where(col(Vehicle.customer_id).is_not(None)).order_by(col(Vehicle.id))).first()
    sid = _read(demo_db, car.plate, "Pre-Gate", confidence=0.7, make=None, model=None, colour="Blu")
    service = SessionService(demo_db)
    assert service.claim(sid, "lane-1-term") == "lane-1-term"
    order = SaleService(demo_db, SimulatedGateway(demo_db), Actor(name="attendant", terminal="lane-1-term"),
                        terminal="lane-1-term").open_for_session(sid)
    with demo_db.read() as s:
        before = s.get(VehicleSession, sid)

    # The car drove on: a surer read at Lane 1 moves the same session and brings better details.
    moved = _read(demo_db, car.plate.lower(), "Lane 1", confidence=0.95, make="Honda", model="Civic", colour="Blue")

    assert moved == sid
    [row] = _sessions(demo_db, before.plate_normalized)
    assert row.lane_id == _lane_id(demo_db, "Lane 1")
    assert row.status == SessionStatus.WAITING
    assert row.version == before.version + 1
    assert (row.customer_id, row.vehicle_id, row.held_by, row.arrived_at) == (
        before.customer_id, before.vehicle_id, "lane-1-term", before.arrived_at)
    assert (row.make, row.model, row.colour, row.confidence) == ("Honda", "Civic", "Blue", pytest.approx(0.95))
    with demo_db.read() as s:
        kept = s.get(SalesOrder, order.id)
    assert kept.session_id == sid and kept.state == "draft"
    assert _actions(demo_db, sid) == ["session.created", "session.moved"]
    with demo_db.read() as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "session.moved")).one()
    assert audit.before["lane_id"] == _lane_id(demo_db, "Pre-Gate") and audit.after["lane_id"] == row.lane_id
    # The board shows it under its new lane only.
    assert _board_lane_of(demo_db, sid) == ["Lane 1"]

    # A less sure read in Lane 2 still moves the car, but keeps the better details.
    assert _read(demo_db, car.plate, "Lane 2", confidence=0.6, make="Hyundai", model=None, colour="Grey") == sid
    [row] = _sessions(demo_db, before.plate_normalized)
    assert row.lane_id == _lane_id(demo_db, "Lane 2")
    assert (row.make, row.model, row.colour, row.confidence) == ("Honda", "Civic", "Blue", pytest.approx(0.95))
    assert row.version == before.version + 2


def test_a_read_in_the_same_lane_changes_nothing(db) -> None:  # noqa: ANN001
    sid = _read(db, "SAM-101", "Lane 2", confidence=0.8)
    [before] = _sessions(db, "SAM101")
    assert _read(db, "sam 101", "Lane 2", confidence=0.99, make="Kia") == sid
    [after] = _sessions(db, "SAM101")
    assert after.model_dump() == before.model_dump()
    assert _actions(db, sid) == ["session.created"]


def test_a_car_whose_session_is_done_gets_a_new_session(db) -> None:  # noqa: ANN001
    first = _read(db, "DON-202", "Pre-Gate")
    SessionService(db).set_status(first, SessionStatus.DONE, CAMERA)
    second = _read(db, "DON-202", "Pre-Gate")
    assert second != first
    assert [(r.id, r.status) for r in _sessions(db, "DON202")] == [(first, "done"), (second, "waiting")]


def test_the_database_refuses_a_second_open_session_for_a_plate(db) -> None:  # noqa: ANN001
    _read(db, "IDX-303", "Lane 1")
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(VehicleSession(lane_id=_lane_id(db, "Lane 3"), plate="IDX-303", plate_normalized="IDX303"))
    with db.write() as s:  # a closed one is fine
        s.add(VehicleSession(lane_id=_lane_id(db, "Lane 3"), plate="IDX-303", plate_normalized="IDX303",
                             status=SessionStatus.DONE))


# --- racing cameras, in real processes -----------------------------------------------------------


def _camera_process(url: str, reads: list[tuple[str, str]], barrier: Any, results: Any, terminal: str) -> None:
    """One camera terminal: its own engine; every read starts when all cameras are at the barrier."""
    try:
        db = Database.from_url(url)
        service = SessionService(db)
        with db.read() as s:  # connect before the race, so the race is the reads, not the connecting
            service.lane_ids_by_key(s)
        ids = []
        for plate, lane in reads:
            if barrier is not None:
                barrier.wait(timeout=60)
            ids.append(service.record_plate_read(PlateEvent(plate=plate, lane=lane), Actor.system("camera", terminal)))
        db.dispose()
        results.put((terminal, ids, None))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        if barrier is not None:
            barrier.abort()
        results.put((terminal, None, traceback.format_exc()))


class Cameras:
    """Camera processes, forked from the warm fork server of tests/helpers/forked.py (a clean process, not the
    test's: nothing inherited from the test's own connections), without a fresh interpreter's imports each."""

    def __init__(self, url: str, reads_per_camera: list[list[tuple[str, str]]], *, barrier: bool) -> None:
        ctx = forked.context()  # the same server and preload as forked.popen's children
        self.results = ctx.Queue()
        # Kept on self: the children attach to it by name while they start.
        self.barrier = ctx.Barrier(len(reads_per_camera)) if barrier else None
        self.procs = [ctx.Process(target=_camera_process, args=(url, reads, self.barrier, self.results, f"cam-{i}"))
                      for i, reads in enumerate(reads_per_camera)]
        for p in self.procs:
            p.start()

    def ids(self) -> dict[str, list[int]]:
        """Each camera's session ids, once all have reported; fails on a camera's error or death."""
        got: dict[str, list[int]] = {}
        deadline = time.monotonic() + 120
        while len(got) < len(self.procs):
            try:
                terminal, ids, error = self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in self.procs if p.exitcode not in (None, 0)]
                assert not dead, f"a camera process died (exit codes {dead})"
                assert time.monotonic() < deadline, "the cameras did not finish"
                continue
            assert error is None, f"{terminal} failed:\n{error}"
            got[terminal] = ids
        for p in self.procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        return got


def test_cameras_racing_in_separate_processes_leave_one_open_session_per_car(db) -> None:  # noqa: ANN001
    rounds, cameras = 6, 4
    # Round r: every camera reads the same car at the same moment, each in a different lane.
    plan = [[(f"RCE-{r:03d}", LANES[(i + r) % len(LANES)]) for r in range(rounds)] for i in range(cameras)]
    got = Cameras(db.url, plan, barrier=True).ids()
    for r in range(rounds):
        rows = _sessions(db, f"RCE{r:03d}")
        assert len(rows) == 1, f"round {r}: {len(rows)} sessions"
        [row] = rows
        assert row.status in OPEN
        assert {ids[r] for ids in got.values()} == {row.id}
        # Every read after the first moved it (all lanes differ): no move was lost.
        assert row.version == cameras
        assert _actions(db, row.id) == ["session.created"] + ["session.moved"] * (cameras - 1)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_cameras_that_lose_the_insert_race_move_the_winners_session(db) -> None:  # noqa: ANN001
    """Deterministic race: the winner's insert is held uncommitted until every other camera is blocked
    on the unique index behind it; then their inserts fail and each moves the winner's session."""
    cameras = 3
    engine = db.engine
    with Session(engine) as winner:
        winner.add(VehicleSession(lane_id=_lane_id(db, "Pre-Gate"), plate="WIN-404", plate_normalized="WIN404"))
        winner.flush()
        racing = Cameras(db.url, [[("WIN-404", LANES[1 + i])] for i in range(cameras)], barrier=False)
        deadline = time.monotonic() + 120
        blocked = 0
        while blocked < cameras:
            assert time.monotonic() < deadline, f"only {blocked} of {cameras} cameras got blocked behind the winner"
            assert all(p.exitcode is None for p in racing.procs), "a camera finished without waiting for the winner"
            with engine.connect() as probe:
                blocked = probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )).scalar_one()
            time.sleep(0.05)  # polling pg_stat_activity: the signal itself
        winner.commit()
        winner_id = winner.exec(select(VehicleSession.id).where(VehicleSession.plate == "WIN-404")).one()
    got = racing.ids()
    [row] = _sessions(db, "WIN404")
    assert row.id == winner_id and set(sum(got.values(), [])) == {winner_id}
    assert row.version == 1 + cameras
    assert _actions(db, winner_id) == ["session.moved"] * cameras


# --- boards see the move -------------------------------------------------------------------------

MOVER = """
import sys
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.engine import Database
from hardware.plate_reader import PlateEvent
db = Database.from_url(sys.argv[1])
print(SessionService(db).record_plate_read(PlateEvent(plate="MOV-505", lane="Lane 3"), Actor.system("other")))
db.dispose()
"""


def test_a_move_by_another_process_wakes_the_change_feed(db) -> None:  # noqa: ANN001
    sid = _read(db, "MOV-505", "Pre-Gate")
    feed = open_change_feed(db.url, poll_interval=0.02)
    listener = None
    if not db.is_sqlite:  # and the NOTIFY comes from vehicle_session's own trigger, on an UPDATE
        import psycopg

        listener = psycopg.connect(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                                   autocommit=True)
        listener.execute("LISTEN clarity_changes")
    try:
        out = forked.run(["-c", MOVER, db.url], check=True, timeout=60, capture_output=True, text=True)
        assert int(out.stdout) == sid
        assert feed.wait(10.0) is True
        if listener is not None:
            payloads = {n.payload for n in listener.notifies(timeout=5, stop_after=1)}
            assert payloads == {"vehicle_session"}
    finally:
        feed.close()
        if listener is not None:
            listener.close()
    assert [r.id for r in _sessions(db, "MOV505")] == [sid]
    assert _board_lane_of(db, sid) == ["Lane 3"]


async def test_the_board_shows_the_moved_bubble_under_its_new_lane(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.widgets.bubble import SessionBubble
    from tests.helpers.ui import bubble_ids, make_app, wait_until

    sid = _read(demo_db, "BRD-606", "Pre-Gate")
    pre_gate, lane_2 = _lane_id(demo_db, "Pre-Gate"), _lane_id(demo_db, "Lane 2")
    app = make_app(settings, demo_db)

    def column_of() -> list[str | None]:
        return [b.parent.parent.id for b in app.screen.query(SessionBubble) if b.session_id == sid]  # type: ignore[union-attr]

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: column_of() == [f"lane-{pre_gate}"], "the bubble in Pre-Gate")
        await asyncio.to_thread(_read, demo_db, "BRD-606", "Lane 2")
        await wait_until(pilot, lambda: column_of() == [f"lane-{lane_2}"], "the bubble moved to Lane 2, and only there")
        assert bubble_ids(app).count(sid) == 1


# --- the simulator ----------------------------------------------------------------------------


async def test_a_simulated_car_drives_pre_gate_to_lane_to_done_as_one_session(db) -> None:  # noqa: ANN001
    from clarity_tui.simulator.scenario import Scenario
    from clarity_tui.simulator.world import build_camera, run_camera

    scenario = Scenario.model_validate({"initial_vehicles": 1, "dwell_minutes": 0.01,
                                        "arrivals": {"per_minute": 0, "misread_rate": 0, "seed": 3},
                                        "mix": {"member": 0, "legacy": 0, "unknown": 1}})
    camera = build_camera(db, scenario)
    task = asyncio.create_task(run_camera(db, camera, "sim-term", scenario.initial_vehicles,
                                          dwell=dt.timedelta(minutes=scenario.dwell_minutes)))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            with db.read() as s:
                rows = list(s.exec(select(VehicleSession)))
            if rows and all(r.status == SessionStatus.DONE for r in rows):
                break
            assert asyncio.get_running_loop().time() < deadline, f"the car never left: {rows}"
            await asyncio.sleep(0.05)  # polling the database for the outcome
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [row] = rows
    assert _actions(db, row.id) == ["session.created", "session.moved", "session.done"]
    with db.read() as s:
        audits = list(s.exec(select(AuditLog).where(AuditLog.entity_id == str(row.id)).order_by(col(AuditLog.id))))
        kinds = {lane.id: lane.kind for lane in s.exec(select(Lane))}
    assert kinds[audits[0].after["lane_id"]] == "pre_gate"
    assert kinds[audits[1].after["lane_id"]] == "lane" == kinds[row.lane_id]


# --- migration 0006 ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_empty_url")


def test_upgrading_a_database_with_duplicate_open_sessions_keeps_the_newest_open(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate.upgrade(engine, "0005")
    t0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        site = conn.execute(text("INSERT INTO site (code, name, phone_region, created_at) "
                                 "VALUES ('S1', 'Site', 'US', :t) RETURNING id"), {"t": t0}).scalar_one()
        lanes = [conn.execute(text("INSERT INTO lane (site_id, name, kind, position, active) "
                                   "VALUES (:site, :name, 'lane', :pos, true) RETURNING id"),
                              {"site": site, "name": name, "pos": pos}).scalar_one() for pos, name in enumerate(LANES)]

        def session(plate: str, lane: int, minutes: int, status: str = "waiting") -> int:
            return conn.execute(text(
                "INSERT INTO vehicle_session (lane_id, plate, plate_region, plate_normalized, confidence, arrived_at, "
                "status, source, version) VALUES (:lane, :plate, '', :norm, 1.0, :at, :status, 'camera', 1) RETURNING id"),
                {"lane": lane, "plate": plate, "norm": plate.replace("-", ""), "status": status,
                 "at": t0 + dt.timedelta(minutes=minutes)}).scalar_one()

        older = session("DUP-1", lanes[0], 0)
        newest = session("DUP-1", lanes[1], 5, "in_service")
        oldest = session("DUP-1", lanes[2], -5)
        gone = session("DUP-1", lanes[3], 10, "done")
        other = session("ONE-2", lanes[0], 1)
    migrate.upgrade(engine, "0006")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, status FROM vehicle_session")).all())
        closed = dict(conn.execute(text("SELECT id, closed_at FROM vehicle_session WHERE status = 'abandoned'")).all())
        audited = set(conn.execute(text("SELECT entity_id FROM audit_log WHERE action = 'session.abandoned'")).scalars())
    assert rows == {older: "abandoned", newest: "in_service", oldest: "abandoned", gone: "done", other: "waiting"}
    assert set(closed) == {older, oldest} and all(closed.values())
    assert audited == {str(older), str(oldest)}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE vehicle_session SET status = 'waiting' WHERE id = :id"), {"id": older})
    migrate.downgrade(engine, "0005")
    with engine.begin() as conn:  # the index is gone again
        conn.execute(text("UPDATE vehicle_session SET status = 'waiting' WHERE id = :id"), {"id": older})
    engine.dispose()
