"""Tunnel dispatch (issue 18 item 5), on SQLite and PostgreSQL: a paid car is sent and its gate opens; a
controller fault queues it with the order still paid and the attendant's words; the retry key sends it;
two terminals (real processes) racing on one car send it once; members on auto lanes go without a key."""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.tunnel_dispatch import DispatchOutcome, TunnelDispatch, TunnelDispatchError
from db.engine import Database
from db.models import (
    AuditLog,
    DispatchStatus,
    Lane,
    OrderKind,
    OrderState,
    Outbox,
    Role,
    SalesOrder,
    Wash,
    WashItem,
    WashKind,
    utcnow,
)
from hardware.tunnel.base import TunnelWash
from hardware.tunnel.modbus_tcp import ModbusTcpTunnel
from hardware.tunnel.simulated import SimulatedTunnel, TunnelOutcome
from tests.helpers import forked
from tests.helpers.lanes import arrive
from tests.helpers.modbus_server import ModbusTestServer, modbus_server

pytestmark = pytest.mark.both_databases  # exactly-once between terminals: the database's locking matters

ALEX = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term")
LANE_LOOP = Actor.system("auto-dispatch", "lane-2-term")
MAP: dict[str, Any] = {"timeout_seconds": 2.0, "gate_coils": {"Lane 1": 0, "Lane 2": 1, "Lane 3": 2},
                       "lane_register": 0, "package_register": 1, "extras_register": 2, "plate_register": 4,
                       "start_coil": 16, "status_register": 20}
MENU = [("TD-DELUXE", "package", 2), ("TD-TIRE", "extra", 1), ("TD-CERAMIC", "extra", 4)]


@pytest.fixture
def menu(db: Database) -> Database:
    with db.write() as s:
        for position, (code, kind, tunnel_code) in enumerate(MENU):
            s.add(WashItem(code=code, name=code.title(), kind=kind, price_cents=500, tunnel_code=tunnel_code,
                           position=position))
    return db


@pytest.fixture
def server() -> Iterator[ModbusTestServer]:
    with modbus_server() as srv:
        yield srv


def paid_wash(db: Database, plate: str, lane: str = "Lane 1", *, kind: str = WashKind.RETAIL,
              package: str | None = "TD-DELUXE", extras: list[str] | None = None) -> int:
    """A car in `lane` with its Wash row (and, for a retail wash, the completed order that paid it)."""
    session_id = arrive(db, plate, lane)
    with db.write() as s:
        lane_id = s.exec(select(Lane.id).where(Lane.name == lane)).one()
        order_id = None
        if kind == WashKind.RETAIL:
            order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=OrderKind.WASH, state=OrderState.COMPLETED,
                               session_id=session_id, lane_id=lane_id, due_today_cents=1500,
                               gateway_payment_id=f"pi_sim_{plate}")
            s.add(order)
            s.flush()
            order_id = order.id
        wash = Wash(session_id=session_id, kind=kind, plate=plate, lane_id=lane_id, order_id=order_id,
                    package_code=package, extras=extras or [])
        s.add(wash)
        s.flush()
        assert wash.id is not None
        return wash.id


def wash_row(db: Database, wash_id: int) -> Wash:
    with db.read() as s:
        wash = s.get(Wash, wash_id)
        assert wash is not None
        return wash


def audit_actions(db: Database, wash_id: int) -> list[str]:
    with db.read() as s:
        return list(s.exec(select(AuditLog.action).where(AuditLog.entity == "wash", AuditLog.entity_id == str(wash_id))
                           .order_by(col(AuditLog.id))))


def test_a_paid_car_is_sent_then_its_gate_opens(menu: Database) -> None:
    tunnel = SimulatedTunnel()
    wash_id = paid_wash(menu, "SND-101", "Lane 2", extras=["TD-CERAMIC", "TD-TIRE"])
    service = TunnelDispatch(menu, tunnel, ALEX)
    assert service.queued() == [wash_id]
    assert service.dispatch(wash_id) == DispatchOutcome(wash_id, "sent", None)
    assert tunnel.sent == [TunnelWash("Lane 2", package_code=2, extras_codes=(1, 4), plate="SND-101", wash_id=wash_id)]
    assert tunnel.gates_opened == ["Lane 2"] and [car.wash.wash_id for car in tunnel.in_tunnel] == [wash_id]
    row = wash_row(menu, wash_id)
    assert (row.dispatch_status, row.dispatch_attempts, row.dispatch_error) == (DispatchStatus.SENT, 1, None)
    assert row.dispatched_by == ALEX.name and row.dispatched_at is not None
    assert audit_actions(menu, wash_id) == ["wash.dispatched"]
    assert service.queued() == []
    # The key pressed again (or on another terminal) sends nothing.
    again = service.dispatch(wash_id)
    assert again.status == "already_sent" and len(tunnel.sent) == 1
    assert service.dispatch_session(row.session_id).status == "already_sent"


def test_a_controller_fault_queues_the_car_and_the_order_stays_paid(menu: Database, server: ModbusTestServer) -> None:
    wash_id = paid_wash(menu, "FLT-202")
    row = wash_row(menu, wash_id)
    server.set_holding(20, 2)  # the controller reports a fault
    service = TunnelDispatch(menu, ModbusTcpTunnel.from_config(server.address, MAP), ALEX)
    outcome = service.dispatch_session(row.session_id)
    message = "Tunnel controller fault (register 40021): the car is queued. Press R to retry."
    assert outcome == DispatchOutcome(wash_id, "queued", message)
    row = wash_row(menu, wash_id)
    assert (row.dispatch_status, row.dispatch_error, row.dispatched_at) == (DispatchStatus.QUEUED, message, None)
    with menu.read() as s:
        order = s.get(SalesOrder, row.order_id)
        assert order is not None and order.state == OrderState.COMPLETED and order.refunded_cents == 0
        assert s.exec(select(func.count()).select_from(Outbox)).one() == 0  # no money step was started
        [failed] = s.exec(select(AuditLog).where(AuditLog.entity == "wash", AuditLog.entity_id == str(wash_id))).all()
    assert failed.action == "wash.dispatch_failed" and failed.after is not None
    assert "modbus_tcp tunnel" in failed.after["controller"]  # the technician's detail: which device
    assert server.writes == [] and service.queued() == [wash_id]

    # Fixed: the retry key sends it.
    server.set_holding(20, 0)
    assert service.retry_queued() == [DispatchOutcome(wash_id, "sent", None)]
    assert server.coils(16) == [True] and server.coils(0) == [True]  # started, and Lane 1's gate
    row = wash_row(menu, wash_id)
    assert (row.dispatch_status, row.dispatch_attempts, row.dispatch_error) == (DispatchStatus.SENT, 2, None)
    assert audit_actions(menu, wash_id) == ["wash.dispatch_failed", "wash.dispatched"]


def test_retry_keeps_the_tunnels_order_and_stops_at_the_first_failure(menu: Database) -> None:
    tunnel = SimulatedTunnel(outcome=TunnelOutcome.OFFLINE)
    service = TunnelDispatch(menu, tunnel, ALEX)
    first, second = paid_wash(menu, "ORD-301"), paid_wash(menu, "ORD-302", "Lane 3")
    assert [service.dispatch(first).status, service.dispatch(second).status] == ["queued", "queued"]
    assert service.queued() == [first, second]
    assert service.retry_queued() == [DispatchOutcome(first, "queued", "Tunnel controller offline: the car is "
                                                                       "queued. Press R to retry.")]
    assert wash_row(menu, second).dispatch_attempts == 1  # not tried behind the failed one
    tunnel.set_outcome("ok")
    assert [o.status for o in service.retry_queued()] == ["sent", "sent"]
    assert [w.plate for w in tunnel.sent] == ["ORD-301", "ORD-302"]


def test_when_only_the_gate_failed_the_retry_opens_the_gate_without_a_second_wash(menu: Database,
                                                                                  server: ModbusTestServer) -> None:
    class StuckGate(ModbusTcpTunnel):
        """The controller takes the wash, then its gate relay does not answer (once)."""

        async def open_gate(self, lane: str) -> None:
            if not gate_failed:
                gate_failed.append(lane)
                server.hang()
                try:
                    await super().open_gate(lane)
                finally:
                    server.release()
            await super().open_gate(lane)

    gate_failed: list[str] = []
    tunnel = StuckGate.from_config(server.address, {**MAP, "timeout_seconds": 0.3})
    service = TunnelDispatch(menu, tunnel, ALEX)
    wash_id = paid_wash(menu, "GTE-350", "Lane 2")
    message = "Gate did not answer (coil 00002): the car is queued. Press R to retry."
    assert service.dispatch(wash_id) == DispatchOutcome(wash_id, "queued", message)

    def starts() -> int:
        return sum(1 for kind, address, _ in server.writes if (kind, address) == ("coil", 16))

    assert starts() == 1  # the wash was started
    assert service.retry_queued() == [DispatchOutcome(wash_id, "sent", None)]
    assert starts() == 1 and server.writes[-1] == ("coil", 1, [1])  # only the gate again: no second start
    assert wash_row(menu, wash_id).dispatch_status == DispatchStatus.SENT


def test_a_car_another_terminal_is_sending_is_left_to_it_until_its_claim_is_stale(menu: Database) -> None:
    tunnel = SimulatedTunnel()
    service = TunnelDispatch(menu, tunnel, ALEX)
    wash_id = paid_wash(menu, "LSE-401")
    with menu.write() as s:  # another terminal claimed it a moment ago and is talking to the controller
        s.exec(update(Wash).where(col(Wash.id) == wash_id).values(dispatch_attempts=1, dispatched_at=utcnow(),
                                                                  dispatched_by="other"))
    assert service.dispatch(wash_id).status == "already_sent" and tunnel.sent == []
    with menu.write() as s:  # ... and died mid-send
        s.exec(update(Wash).where(col(Wash.id) == wash_id)
               .values(dispatched_at=utcnow() - dt.timedelta(minutes=10)))
    assert service.dispatch(wash_id).status == "sent" and len(tunnel.sent) == 1


def test_only_members_on_auto_lanes_go_without_a_key(menu: Database) -> None:
    with menu.write() as s:
        s.exec(update(Lane).where(col(Lane.name) == "Lane 2").values(auto_dispatch=True))
    tunnel = SimulatedTunnel()
    service = TunnelDispatch(menu, tunnel, LANE_LOOP)
    member_auto = paid_wash(menu, "AUT-501", "Lane 2", kind=WashKind.MEMBER)
    retail_auto = paid_wash(menu, "AUT-502", "Lane 2")
    member_manual = paid_wash(menu, "AUT-503", "Lane 3", kind=WashKind.MEMBER)
    assert service.waiting_on_auto_lanes() == [member_auto]
    assert service.auto_dispatch(member_auto) == DispatchOutcome(member_auto, "sent", None)
    assert service.auto_dispatch(retail_auto) is None
    assert service.auto_dispatch(member_manual) is None
    assert service.auto_dispatch(member_auto) is None  # sent already: nothing to do
    assert service.waiting_on_auto_lanes() == []
    assert [w.plate for w in tunnel.sent] == ["AUT-501"]
    assert wash_row(menu, member_auto).dispatched_by == "auto-dispatch"
    # A queued member car waits for the retry key, not for the next auto pass.
    tunnel.set_outcome("busy")
    queued_member = paid_wash(menu, "AUT-504", "Lane 2", kind=WashKind.MEMBER)
    outcome = service.auto_dispatch(queued_member)
    assert outcome is not None and outcome.status == "queued"
    tunnel.set_outcome("ok")
    assert service.auto_dispatch(queued_member) is None


def test_bad_requests_are_refused_with_what_to_do(menu: Database) -> None:
    tunnel = SimulatedTunnel()
    service = TunnelDispatch(menu, tunnel, ALEX)
    with pytest.raises(TunnelDispatchError, match="no paid or entitled wash yet"):
        service.dispatch_session(arrive(menu, "NON-601"))
    unknown = paid_wash(menu, "UNK-602", package="NO-SUCH")
    with pytest.raises(TunnelDispatchError, match="NO-SUCH is not on the wash menu"):
        service.dispatch(unknown)
    assert wash_row(menu, unknown).dispatch_attempts == 0
    with pytest.raises(PermissionDenied):
        TunnelDispatch(menu, tunnel, Actor("Taylor Tech", Role.TECHNICIAN, "laptop")).dispatch(unknown)
    assert tunnel.sent == []


async def test_from_the_apps_loop_the_controller_runs_on_that_loop(menu: Database) -> None:
    """The lane runs dispatch in a worker thread; the controller's coroutines go back to the app's loop."""
    loop = asyncio.get_running_loop()
    seen: list[asyncio.AbstractEventLoop] = []

    class LoopTunnel(SimulatedTunnel):
        async def send_wash(self, wash: TunnelWash) -> None:
            seen.append(asyncio.get_running_loop())
            await super().send_wash(wash)

    wash_id = paid_wash(menu, "LOP-701")
    service = TunnelDispatch(menu, LoopTunnel(), ALEX, loop=loop)
    with pytest.raises(RuntimeError, match="worker thread"):
        service.dispatch(wash_id)  # on the loop itself it would wait on itself
    assert (await asyncio.to_thread(service.dispatch, wash_id)).status == "sent"
    assert seen == [loop]


# --- two terminals, one car ---------------------------------------------------------------------------


def _terminal_process(url: str, address: str, wash_ids: list[int], barrier: Any, results: Any, name: str) -> None:
    try:
        db = Database.from_url(url)
        service = TunnelDispatch(db, ModbusTcpTunnel.from_config(address, MAP), Actor(name, Role.ATTENDANT, name))
        with db.read() as s:  # connect before the race, so the race is the dispatches
            s.exec(select(Wash.id)).first()
        statuses = []
        for wash_id in wash_ids:
            barrier.wait(timeout=60)
            statuses.append(service.dispatch(wash_id).status)
        db.dispose()
        results.put((name, statuses, None))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        barrier.abort()
        results.put((name, None, traceback.format_exc()))


def test_two_terminals_racing_on_the_same_car_send_it_once(menu: Database, server: ModbusTestServer) -> None:
    plates = [f"RCE-{i:03d}" for i in range(5)]
    wash_ids = [paid_wash(menu, plate, ("Lane 1", "Lane 2", "Lane 3")[i % 3]) for i, plate in enumerate(plates)]
    ctx = forked.context()
    results, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_terminal_process, args=(menu.url, server.address, wash_ids, barrier, results, name))
             for name in ("term-a", "term-b")]
    for p in procs:
        p.start()
    got: dict[str, list[str]] = {}
    deadline = time.monotonic() + 120
    while len(got) < len(procs):
        try:
            name, statuses, error = results.get(timeout=0.5)
        except queue.Empty:
            assert all(p.exitcode in (None, 0) for p in procs), "a terminal process died"
            assert time.monotonic() < deadline, "the terminals did not finish"
            continue
        assert error is None, f"{name} failed:\n{error}"
        got[name] = statuses
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for i in range(len(wash_ids)):
        assert sorted(statuses[i] for statuses in got.values()) == ["already_sent", "sent"], f"car {i}: {got}"
    # The controller was told once per car: one start command each, one gate each.
    assert sum(1 for kind, address, _ in server.writes if (kind, address) == ("coil", 16)) == len(wash_ids)
    assert sum(1 for kind, address, _ in server.writes if kind == "coil" and address in (0, 1, 2)) == len(wash_ids)
    for wash_id in wash_ids:
        row = wash_row(menu, wash_id)
        assert (row.dispatch_status, row.dispatch_attempts) == (DispatchStatus.SENT, 1)
        assert audit_actions(menu, wash_id) == ["wash.dispatched"]
