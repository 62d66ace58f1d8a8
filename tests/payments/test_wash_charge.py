"""A single wash paid card-present on the reader, through the outbox (issue 18 item 2, money side).

Real parts: the database (SQLite file and PostgreSQL), the outbox and its billing hooks, the simulated
gateway (its store in the same database, so other processes see it) and the simulated card reader; a
forked lane process SIGKILLed between the charge and its record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from clarity_tui.payments import CardDeclined, PaymentError
from clarity_tui.payments.sim_store import sim_token
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.billing import BillingService
from clarity_tui.services.card_present import NOT_ATTENDED, pay_at_reader, reader_attended
from clarity_tui.services.outbox import RunResult
from clarity_tui.services.wash_payment import (
    ALREADY_PAID,
    CHANGED_WHILE_UNSURE,
    NOTHING_DUE,
    WASH_CHARGE,
    WashCharge,
    enqueue_wash_charge,
    wash_card,
)
from db.engine import Database
from db.models import AuditLog, Customer, OrderState, Outbox, OutboxStatus, PaymentMethod, SalesOrder, utcnow
from hardware.base import DeviceState, DeviceStatus
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from tests.helpers import forked
from tests.helpers.wash_payment import order_of, rows_of, sim_payment_intents, wash_order, washes_of

pytestmark = pytest.mark.both_databases

ROOT = Path(__file__).resolve().parents[2]
CARD_NUMBER = "4242424242424242"  # the simulated reader's Visa: only its last 4 may be kept


def billing(db: Database) -> tuple[SimulatedGateway, BillingService]:
    gw = SimulatedGateway(db)
    return gw, BillingService(db, gw)


def enqueue(db: Database, order_id: int) -> Outbox:
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        assert order is not None
        return enqueue_wash_charge(s, order)


def pay(db: Database, service: BillingService, order_id: int, reader: SimulatedCardReader | None) -> RunResult:
    """What the lane does: the order's row, then the outbox with the customer at the reader (or nobody)."""
    enqueue(db, order_id)
    if reader is None:
        return service.processor.run_order(order_id)
    with reader_attended(reader):
        return service.processor.run_order(order_id)


def assert_paid_once(db: Database, order_id: int, amount: int = 1500) -> dict:
    """Exactly one payment taken for the order, recorded on it, and its car queued for the tunnel once."""
    paid = [p for p in sim_payment_intents(db) if p["metadata"].get("order_key") == order_of(db, order_id).idempotency_key
            and p["status"] == "succeeded"]
    assert len(paid) == 1 and paid[0]["amount"] == amount
    order = order_of(db, order_id)
    assert order.state == OrderState.COMPLETED and order.gateway_payment_id == paid[0]["id"]
    assert order.last_error is None
    (wash,) = washes_of(db, order_id)
    assert (wash.kind, wash.dispatch_status, wash.package_code) == ("retail", "waiting", "BASIC")
    with db.read() as s:
        audits = s.exec(select(AuditLog).where(AuditLog.action == "wash.paid", AuditLog.entity_id == str(order_id))).all()
    assert len(audits) == 1
    return paid[0]


# --- paid -----------------------------------------------------------------------------------------------


def test_a_single_wash_is_paid_one_off_on_the_reader_and_its_car_queued(db, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    gw, service = billing(db)
    order_id = wash_order(db)
    result = pay(db, service, order_id, SimulatedCardReader(delay=0))
    assert result.error is None and result.done == [WASH_CHARGE]
    pi = assert_paid_once(db, order_id)
    order = order_of(db, order_id)
    # One-off: card present, no setup_future_usage, nobody's payment, the order's key and id in the metadata.
    assert pi["card_present"] and pi["setup_future_usage"] is None and pi["customer"] is None
    assert pi["metadata"] == {"clarity_order": str(order_id), "order_key": order.idempotency_key}
    assert pi["reusable"] is None  # no card made for later payments
    (row,) = rows_of(db, order_id)
    assert row.status == OutboxStatus.DONE and row.idempotency_key.startswith(f"{order.idempotency_key}:wash:")
    # Brand and last 4 only, for the receipt; no card row is kept here.
    assert set(row.result or {}) == {"payment_id", "charge_id", "amount_cents", "brand", "last4", "gateway"}
    with db.read() as s:
        assert wash_card(s, order_id) == ("visa", "4242")
        assert s.exec(select(PaymentMethod)).all() == []
        stored = [str(r.payload) + str(r.result) for r in s.exec(select(Outbox)).all()]
        stored += [str(a.after) for a in s.exec(select(AuditLog)).all()]
    assert not any(CARD_NUMBER in text for text in [*stored, caplog.text])
    assert gw.counts("setup_intent") == 0


def test_a_customer_at_the_gateway_is_on_the_payment_and_keeps_no_card(db) -> None:
    gw, service = billing(db)
    from clarity_tui.payments.base import CustomerInfo

    cus = gw.ensure_customer(CustomerInfo("C-W1", "Wash Customer", None, None), idempotency_key="cus-w1")
    order_id = wash_order(db, customer=True, gateway_customer=cus)
    assert pay(db, service, order_id, SimulatedCardReader(delay=0)).error is None
    pi = assert_paid_once(db, order_id)
    assert pi["customer"] == cus and pi["setup_future_usage"] is None
    assert gw.list_cards(cus) == []  # a single wash never saves the card on the customer


def test_a_customer_not_at_the_gateway_pays_without_one(db) -> None:
    _, service = billing(db)
    order_id = wash_order(db, customer=True)
    assert pay(db, service, order_id, SimulatedCardReader(delay=0)).error is None
    assert assert_paid_once(db, order_id)["customer"] is None
    with db.read() as s:  # nothing made the customer at the gateway for a wash
        assert s.get(Customer, order_of(db, order_id).customer_id).gateway_customer_id is None


def test_a_card_keyed_on_the_reader_pays_the_wash_and_is_not_kept_either(db) -> None:
    _, service = billing(db)
    order_id = wash_order(db)
    enqueue(db, order_id)
    with reader_attended(SimulatedCardReader(delay=0), moto=True):  # the attendant keys it (MOTO)
        assert service.processor.run_order(order_id).error is None
    pi = assert_paid_once(db, order_id)
    assert pi["moto"] and pi["reusable"] is None and pi["setup_future_usage"] is None


# --- not paid: the order stays payable and nothing was charged -------------------------------------------


def test_a_decline_leaves_the_wash_payable_and_paying_again_uses_a_new_key(db) -> None:
    _, service = billing(db)
    order_id = wash_order(db)
    declining = SimulatedCardReader(delay=0, tokenize=lambda _card: sim_token("insufficient_funds"))
    result = pay(db, service, order_id, declining)
    assert isinstance(result.error, CardDeclined) and "insufficient funds" in str(result.error)
    assert [p["status"] for p in sim_payment_intents(db)] == ["canceled"]  # it can never be paid later
    order = order_of(db, order_id)
    assert order.state == OrderState.PAYMENT_PENDING and order.last_error == str(result.error)
    assert order.gateway_payment_id is None and washes_of(db, order_id) == []
    (first,) = rows_of(db, order_id)
    assert first.status == OutboxStatus.FAILED
    again = enqueue(db, order_id)
    assert again.idempotency_key != first.idempotency_key and (again.payload or {})["attempt"] == 2
    assert enqueue(db, order_id).id == again.id  # pending: the same row, never a second payment
    assert pay(db, service, order_id, SimulatedCardReader(delay=0)).error is None
    assert sorted(p["status"] for p in sim_payment_intents(db)) == ["canceled", "succeeded"]
    assert_paid_once(db, order_id)
    done = enqueue(db, order_id)  # paid: the done row, as it is
    assert done.id == again.id and done.status == OutboxStatus.DONE
    assert len(rows_of(db, order_id)) == 2


def test_a_decline_on_the_reader_itself_is_the_same(db) -> None:
    _, service = billing(db)
    order_id = wash_order(db)
    result = pay(db, service, order_id, SimulatedCardReader(delay=0, outcome=Outcome.DECLINE))
    assert isinstance(result.error, CardDeclined)
    assert order_of(db, order_id).state == OrderState.PAYMENT_PENDING
    assert [p["status"] for p in sim_payment_intents(db)] == ["canceled"]


async def test_the_attendant_cancels_on_the_reader_and_nothing_is_charged(db) -> None:
    """Esc at the lane: `reader.cancel()` on the app's loop while billing waits in a worker thread."""
    _, service = billing(db)
    device = SimulatedCardReader(delay=30)  # a customer who never taps
    await device.open()
    waiting = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_status(_device: object, status: DeviceStatus) -> None:
        if status.state is DeviceState.BUSY:
            loop.call_soon_threadsafe(waiting.set)

    device.add_status_listener(on_status)
    order_id = wash_order(db)
    enqueue(db, order_id)
    paying = asyncio.create_task(pay_at_reader(device, service.processor.run_order, order_id))
    await asyncio.wait_for(waiting.wait(), 30)
    await device.cancel()
    result = await asyncio.wait_for(paying, 30)
    assert result.error is not None and result.error.code == "cancelled" and "nothing was charged" in str(result.error)
    assert [p["status"] for p in sim_payment_intents(db)] == ["canceled"]
    assert order_of(db, order_id).state == OrderState.PAYMENT_PENDING
    device.delay = 0
    enqueue(db, order_id)
    assert (await pay_at_reader(device, service.processor.run_order, order_id)).error is None
    assert_paid_once(db, order_id)


def test_nobody_at_the_reader_never_lights_it_up_and_charges_nothing(db) -> None:
    _, service = billing(db)
    order_id = wash_order(db)
    result = pay(db, service, order_id, None)  # the timer, `payments replay`
    assert result.error is not None and str(result.error) == NOT_ATTENDED and not result.error.transient
    assert [p["status"] for p in sim_payment_intents(db)] == ["canceled"]
    order = order_of(db, order_id)
    assert (order.state, order.last_error, order.gateway_payment_id) == (OrderState.PAYMENT_PENDING, NOT_ATTENDED,
                                                                         None)


# --- the network and the process fail mid-payment: never charged twice -----------------------------------


def test_the_answer_lost_after_the_reader_paid_is_read_back_by_the_same_key(db) -> None:
    gw, service = billing(db)
    order_id = wash_order(db)
    gw.inject_fault("payment_intent.process", drop=True)  # paid at the gateway; the answer never arrives
    result = pay(db, service, order_id, SimulatedCardReader(delay=0))
    assert result.status == "pending_sync" and result.error is not None and result.error.transient
    assert [p["status"] for p in sim_payment_intents(db)] == ["succeeded"]
    order = order_of(db, order_id)
    # Not "pending sync" (which counts as paid): the wash is unpaid until the gateway says so.
    assert order.state == OrderState.PAYMENT_PENDING and order.last_error == str(result.error)
    (row,) = rows_of(db, order_id)
    assert row.status == OutboxStatus.PENDING
    assert enqueue(db, order_id).id == row.id  # paying again replays the same row (the same key)
    with pytest.raises(PaymentError) as info, db.write() as s:  # ...never for another amount than that row's
        order = s.get(SalesOrder, order_id)
        order.due_today_cents = 2000
        enqueue_wash_charge(s, order)
    assert str(info.value) == CHANGED_WHILE_UNSURE and order_of(db, order_id).due_today_cents == 1500
    assert [r.status for r in service.processor.replay_pending()] == ["synced"]  # nobody at the reader
    assert_paid_once(db, order_id)
    assert service.processor.replay_pending() == []


def test_a_replay_a_day_late_finds_the_payment_by_the_order_key(db) -> None:
    gw, service = billing(db)
    order_id = wash_order(db)
    gw.inject_fault("payment_intent.process", drop=True)
    pay(db, service, order_id, SimulatedCardReader(delay=0))
    with db.write() as s:  # the gateway has forgotten the key by now (Stripe keeps keys 24 hours)
        s.exec(update(Outbox).where(col(Outbox.order_id) == order_id)
               .values(created_at=utcnow() - dt.timedelta(days=2)))
    (row,) = rows_of(db, order_id)
    found = WashCharge().recover(db, gw, row)
    assert found is not None and found["payment_id"] == sim_payment_intents(db)[0]["id"]
    assert [r.status for r in service.processor.replay_pending()] == ["synced"]
    assert_paid_once(db, order_id)
    other = wash_order(db, plate="WASH-2")
    assert WashCharge().recover(db, gw, enqueue(db, other)) is None  # nothing paid for that one


def test_a_lost_create_leaves_nothing_payable_behind(db) -> None:
    """The answer to the create is lost: the replay (nobody at the reader) cancels that payment."""
    gw, service = billing(db)
    order_id = wash_order(db)
    gw.inject_fault("payment_intent.create_card_present", drop=True)
    assert pay(db, service, order_id, SimulatedCardReader(delay=0)).status == "pending_sync"
    result = service.processor.run_order(order_id)
    assert str(result.error) == NOT_ATTENDED
    assert [p["status"] for p in sim_payment_intents(db)] == ["canceled"]
    assert pay(db, service, order_id, SimulatedCardReader(delay=0)).error is None
    assert_paid_once(db, order_id)


def test_cancelling_after_the_network_dropped_refunds_a_payment_that_went_through(db) -> None:
    gw, service = billing(db)
    order_id = wash_order(db)
    gw.inject_fault("payment_intent.process", drop=True)
    pay(db, service, order_id, SimulatedCardReader(delay=0))
    outcome = service.cancel_order(order_id)
    assert outcome.state == OrderState.CANCELLED and "refunded automatically" in (outcome.message or "")
    (pi,) = sim_payment_intents(db)
    assert pi["refunded"] == 1500
    assert order_of(db, order_id).refunded_cents == 1500 and washes_of(db, order_id) == []
    service.processor.replay_pending()  # the wash row was settled by the cancel: nothing more happens
    assert sim_payment_intents(db)[0]["refunded"] == 1500


@pytest.mark.parametrize("kill_at", ["after_call", "after_done"])
def test_sigkill_between_the_charge_and_its_record_then_restart(db, kill_at) -> None:
    _, service = billing(db)
    order_id = wash_order(db)
    enqueue(db, order_id)
    crashed = forked.run(["-m", "tests.payments.wash_charge_child", db.url, str(order_id), kill_at], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr  # it really died there
    assert [p["status"] for p in sim_payment_intents(db)] == ["succeeded"]  # the money was taken
    service.processor.replay_pending()  # the restarted lane, nobody at the reader
    assert_paid_once(db, order_id)
    assert service.processor.replay_pending() == []


# --- refused before anything is sent ----------------------------------------------------------------------


def test_what_cannot_be_paid_as_a_wash_is_refused_with_a_clear_message(db) -> None:
    order_id = wash_order(db, due=0)
    with db.write() as s, pytest.raises(PaymentError) as info:
        enqueue_wash_charge(s, s.get(SalesOrder, order_id))
    assert str(info.value) == NOTHING_DUE
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        order.kind = "sale"
        with pytest.raises(PaymentError) as info:
            enqueue_wash_charge(s, order)
        assert "is not a single wash" in str(info.value)
        order.kind, order.due_today_cents, order.state = "wash", 1500, OrderState.COMPLETED
        with pytest.raises(PaymentError) as info:
            enqueue_wash_charge(s, order)
        assert str(info.value) == ALREADY_PAID
