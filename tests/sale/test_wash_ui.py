"""The lane's day through Textual's Pilot at 80x24 (issue 18): a single wash on the reader, Join today with
the wash credited, a member over the limit sold a single wash, and the car sent to the tunnel."""

from __future__ import annotations

import datetime as dt

import pytest

from sqlmodel import col, select

from clarity_tui.screens.session_detail import SessionDetailScreen
from db.models import AuditLog, DispatchStatus, SalesOrder, SimGatewayObject, VisitRefusal, Wash
from tests.helpers.lanes import Lanes, arrive
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of, wait_until


def payment_intents(db) -> list[dict]:
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")
                                       .order_by(col(SimGatewayObject.id)))]


def wash_of(db, session_id: int) -> Wash | None:
    with db.read() as s:
        return s.exec(select(Wash).where(Wash.session_id == session_id)).first()


def message(app) -> str:
    return text_of(app, "#wash-message")


async def pay_deluxe(pilot, keys: Keys, session_id: int) -> None:
    await open_session(pilot, keys, session_id)
    await keys.press("w")
    await at(pilot, "wash-sale")
    await wait_until(pilot, lambda: len(pilot.app.screen.query(".wash-item")) >= 3, "the menu")
    await keys.press("2")  # Deluxe
    await wait_until(pilot, lambda: "Deluxe" in text_of(pilot.app, "#wash-total"), "Deluxe chosen")
    await keys.press("f5")
    await wait_until(pilot, lambda: message(pilot.app).startswith("Paid"), "the payment on the reader")


async def test_a_single_wash_on_the_reader_in_at_most_five_keys(settings, lanes: Lanes) -> None:
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await pay_deluxe(pilot, keys, lanes.unknown)
        assert len(keys.presses) <= 5, keys.presses
        assert keys.presses == ["enter", "w", "2", "f5"]
        assert "$15.00" in text_of(app, "#wash-total") and "PAID" in text_of(app, "#wash-total")
    [pi] = [p for p in payment_intents(db) if p.get("status") == "succeeded"]
    assert pi["amount"] == 1500 and not pi.get("setup_future_usage")
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.unknown,
                                                SalesOrder.kind == "wash")).one()
        assert order.state == "completed" and order.due_today_cents == 1500
        assert s.exec(select(AuditLog).where(AuditLog.entity_id == str(order.id),
                                             AuditLog.action == "wash.paid")).first() is not None
    wash = wash_of(db, lanes.unknown)
    assert wash is not None and wash.kind == "retail" and wash.package_code is not None
    assert wash.dispatch_status == DispatchStatus.WAITING


async def test_a_burst_of_pay_keys_takes_one_payment(settings, lanes: Lanes) -> None:
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.unknown)
        await keys.press("w")
        await at(pilot, "wash-sale")
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 3, "the menu")
        await pilot.press("1", "f5", "f5", "p", "f5", "p")  # a burst, as over SSH
        await wait_until(pilot, lambda: message(app).startswith("Paid"), "the payment")
        await pilot.press("f5", "p")
        await pilot.pause()
        assert app.screen.id == "wash-sale"
    assert len([p for p in payment_intents(db) if p.get("status") == "succeeded"]) == 1


async def test_the_paid_car_goes_to_the_tunnel_and_a_fault_queues_it_with_a_retry_key(settings,
                                                                                        lanes: Lanes) -> None:
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        tunnel = app.devices.tunnel
        tunnel.set_outcome("fault")
        await pay_deluxe(pilot, keys, lanes.unknown)
        await keys.press("g")
        await wait_until(pilot, lambda: "queued" in message(app).lower(), "the fault")
        assert "R" in message(app)
        wash = wash_of(db, lanes.unknown)
        assert wash is not None and wash.dispatch_status == DispatchStatus.QUEUED
        with db.read() as s:  # dispatch is not a money step: the order stays paid
            assert s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.unknown,
                                                   SalesOrder.kind == "wash")).one().state == "completed"
        tunnel.set_outcome("ok")
        await keys.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "back on the session")
        await wait_until(pilot, lambda: wash_of(db, lanes.unknown).dispatch_status == DispatchStatus.SENT, "sent")
    assert len([p for p in payment_intents(db) if p.get("status") == "succeeded"]) == 1


async def test_join_today_sells_the_membership_less_the_wash(settings, lanes: Lanes) -> None:
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await pay_deluxe(pilot, keys, lanes.unknown)
        await keys.press("j")
        await at(pilot, "plan-select")
        await keys.press("2")  # Deluxe Wash Club, $29.99
        await at(pilot, "customer-quick")
        for text in ("Dana", "Reyes", "(512) 555-2368"):
            await keys.type(text)
            await keys.next_field()
        await keys.type("dana@example.com")
        await keys.press("enter")
        await at(pilot, "payment")
        await keys.press("enter")  # the reader
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "credit" in summary.lower() and "-$15.00" in summary
        await keys.press("enter")
        await at(pilot, "terms")
        await keys.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        await keys.press("f5")
        await at(pilot, "confirmation")
        assert "-$15.00" in text_of(app, "#confirm-table")
        # From the paid wash to the member: 7 keys, plus typing the new customer's name, phone and email.
        assert keys.presses[4:] == ["j", "2", "enter", "enter", "enter", "f2", "f5"], keys.presses
    paid = [p["amount"] for p in payment_intents(db) if p.get("status") == "succeeded"]
    with db.read() as s:
        wash_order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.unknown,
                                                     SalesOrder.kind == "wash")).one()
        sale = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.unknown,
                                               SalesOrder.kind == "sale")).one()
        assert sale.credit_order_id == wash_order.id and sale.credit_cents == 1500
        assert sale.due_today_cents == 2999 - 1500
    assert 1500 in paid


async def test_a_member_over_the_limit_shows_limit_and_buys_a_single_wash(settings, lanes: Lanes) -> None:
    db = lanes.db
    with db.read() as s:  # the member's car was read at Lane 3 by the fixture: today's visit
        first = s.exec(select(Wash).where(Wash.session_id == lanes.member)).one()
        plate = first.plate
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from db.models import SessionStatus

    SessionService(db).set_status(lanes.member, SessionStatus.DONE, Actor.system("test"))
    again = arrive(db, plate, "Lane 2")
    with db.read() as s:
        refusal = s.exec(select(VisitRefusal).where(VisitRefusal.session_id == again)).one()
        assert refusal.last_visit_at is not None
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, again)
        await wait_until(pilot, lambda: "LIMIT" in text_of(app, "#session-wash"), "the limit")
        shown = text_of(app, "#session-wash")
        assert "last visit" in shown.lower()
        assert "Washes:" in shown and "Lane 3" in shown  # the car's wash history: today's visit at Lane 3
        await keys.press("w")
        await at(pilot, "wash-sale")
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 3, "the menu")
        await keys.press("1")
        await wait_until(pilot, lambda: "Basic" in text_of(app, "#wash-total"), "Basic chosen")
        await keys.press("f5")
        await wait_until(pilot, lambda: message(app).startswith("Paid"), "the payment")
    wash = wash_of(db, again)
    assert wash is not None and wash.kind == "retail"
    assert dt.datetime.now(dt.UTC) >= wash.at.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("status, offer", [("past_due", "PAST DUE: Update card (F8)"),
                                           ("expired", "EXPIRED: rejoin with a new card")])
async def test_a_lapsed_member_is_offered_the_card_or_a_single_wash(settings, lanes: Lanes, status: str,
                                                                     offer: str) -> None:
    from tests.helpers.visits import visit_member

    db = lanes.db
    member = visit_member(db, status=status, paid_through=dt.date(2026, 1, 1), includes=("BASIC",))
    session_id = arrive(db, member.plate, "Lane 1")
    with db.read() as s:  # not entitled: no visit recorded, no refusal either
        assert s.exec(select(Wash).where(Wash.session_id == session_id)).first() is None
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, session_id)
        await wait_until(pilot, lambda: offer in text_of(app, "#session-wash"), "the offer")
        assert "single wash (W)" in text_of(app, "#session-wash")
        await keys.press("w")
        await at(pilot, "wash-sale")
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 3, "the menu")
        assert app.screen.query_one("#wash-packages").children, "a lapsed member buys a whole wash"
