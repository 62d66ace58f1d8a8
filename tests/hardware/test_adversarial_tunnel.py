"""The Modbus tunnel controller when the other end misbehaves: a well-framed answer with no register (or two)
where the status register was asked for, as a gateway mapping the wrong device gives. The driver reports it
as a controller problem naming the device and the register; the lane's dispatch queues the car with the
retry key instead of crashing; the board's status poll reads it as a fault.

Real parts: a real socket on 127.0.0.1 (tests/helpers/adversarial_lane.py), the real pymodbus client, and
the database (SQLite and PostgreSQL) for the dispatch."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import select

from clarity_tui.services.actor import Actor
from clarity_tui.services.tunnel_dispatch import TunnelDispatch
from db.engine import Database
from db.models import DispatchStatus, Lane, OrderKind, OrderState, Role, SalesOrder, Wash, WashItem, WashKind
from hardware.base import DeviceState
from hardware.tunnel.base import TunnelError, TunnelState, TunnelWash
from hardware.tunnel.modbus_tcp import ModbusTcpTunnel
from tests.helpers.adversarial_lane import EMPTY_READ, TWO_REGISTERS, Answer, misbehaving_modbus
from tests.helpers.lanes import arrive

MAP: dict[str, Any] = {"unit_id": 1, "timeout_seconds": 1.0, "gate_coils": {"Lane 1": 0, "Lane 2": 1},
                       "package_register": 1, "start_coil": 16, "status_register": 20}
ALEX = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term")
PROBLEM = ("Tunnel controller problem (register 40021): answered {n} registers instead of 1: check the unit id and "
           "hardware.tunnel.options.status_register [modbus_tcp tunnel {address} unit 1]")


@pytest.mark.parametrize(("answer", "n"), [(EMPTY_READ, 0), (TWO_REGISTERS, 2)])
async def test_a_status_answer_with_the_wrong_number_of_registers_is_a_named_fault(answer: Answer, n: int) -> None:
    """Before: an IndexError from `registers[0]` out of open() and read_state() (0 registers), or a controller
    taken as ready from a payload it did not ask for (2 registers)."""
    with misbehaving_modbus(answer) as address:
        tunnel = ModbusTcpTunnel.from_config(address, MAP)
        with pytest.raises(TunnelError) as opened:
            await tunnel.open()
        assert str(opened.value) == PROBLEM.format(n=n, address=address)
        assert opened.value.register == "register 40021"
        # The board's poll never raises: it reads a fault, with the register on the device bar.
        assert await tunnel.read_state() is TunnelState.FAULT
        assert (tunnel.status.state, tunnel.status.reason) == (DeviceState.ERROR,
                                                               "Tunnel controller problem (register 40021)")
        with pytest.raises(TunnelError, match=r"^Tunnel controller problem \(register 40021\)"):
            await tunnel.send_wash(TunnelWash("Lane 1", package_code=2, plate="ODD-001"))
        await tunnel.close()


@pytest.mark.both_databases
def test_a_garbled_controller_queues_the_car_with_the_retry_key(db: Database) -> None:
    """Before: the IndexError escaped `dispatch` (the car queued with "Tunnel dispatch failed", the attendant's
    key ending in a crash report instead of the controller's words)."""
    with db.write() as s:
        s.add(WashItem(code="ADV-DELUXE", name="Adv deluxe", kind="package", price_cents=1500, tunnel_code=2))
    session_id = arrive(db, "ODD-777", "Lane 1")
    with db.write() as s:
        lane_id = s.exec(select(Lane.id).where(Lane.name == "Lane 1")).one()
        order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=OrderKind.WASH, state=OrderState.COMPLETED,
                           session_id=session_id, lane_id=lane_id, due_today_cents=1500, gateway_payment_id="pi_odd")
        s.add(order)
        s.flush()
        wash = Wash(session_id=session_id, kind=WashKind.RETAIL, plate="ODD-777", lane_id=lane_id,
                    order_id=order.id, package_code="ADV-DELUXE")
        s.add(wash)
        s.flush()
        wash_id, order_id = wash.id, order.id
    assert wash_id is not None
    with misbehaving_modbus(EMPTY_READ) as address:
        outcome = TunnelDispatch(db, ModbusTcpTunnel.from_config(address, MAP), ALEX).dispatch_session(session_id)
    assert (outcome.status, outcome.message) == (
        "queued", "Tunnel controller problem (register 40021): the car is queued. Press R to retry.")
    with db.read() as s:
        row, paid = s.get(Wash, wash_id), s.get(SalesOrder, order_id)
        assert row is not None and paid is not None
        assert (row.dispatch_status, row.dispatched_at) == (DispatchStatus.QUEUED, None)
        assert (paid.state, paid.gateway_payment_id) == (OrderState.COMPLETED, "pi_odd")  # not a money step
