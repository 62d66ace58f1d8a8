"""Money exactly once (issue 12): claims on outbox rows and on cars, cached 5xx, stranded charges,
the per-car badge, and the app's replay timer. Races are real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from clarity_tui.services.billing import BillingService
from db.models import (
    AuditLog,
    Customer,
    Membership,
    Outbox,
    SalesOrder,
    SimGatewayObject,
    Vehicle,
    VehicleClaim,
)
from tests.helpers import forked
from tests.helpers.orders import new_order

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]


def reader_card() -> CardToken:
    return CardToken(sim_token("ok"), "visa", "4242", 12, 2030)


def _order_for_car(db, customer_number: str, vehicle_id: int, plan: str = "BASIC") -> int:  # noqa: ANN001
    order_id = new_order(db, plan, customer_number=customer_number)
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        order.vehicle_ids = [vehicle_id]
        order.terminal = f"term-{customer_number}"
        s.add(order)
    BillingService(db, SimulatedGateway(db)).attach_card_token(order_id, reader_card())
    return order_id


def _new_car(db, plate: str) -> int:  # noqa: ANN001
    with db.write() as s:
        v = Vehicle(plate=plate, plate_normalized=plate.replace("-", ""))
        s.add(v)
        s.flush()
        return v.id


def _race(db_url: str, jobs: list[list[str]], env: dict[str, str] | None = None) -> list[str]:
    """Start one racer process per job, let them leave the start line together, return their outputs."""
    procs = [forked.popen(["-m", "tests.payments.racer", db_url, f"racer{i}", *job],
                          cwd=REPO, stdin=forked.PIPE, stdout=forked.PIPE, stderr=forked.PIPE,
                          text=True, env={**os.environ, **(env or {})})
             for i, job in enumerate(jobs)]
    for p in procs:  # each says "ready" once connected: a signal, not a guess
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_two_terminals_selling_the_same_car_at_the_same_instant_charge_once(demo_db, db_url, tmp_path) -> None:  # noqa: ANN001
    car = _new_car(demo_db, "RACE-001")
    a = _order_for_car(demo_db, "C100001", car)
    b = _order_for_car(demo_db, "C100002", car)
    outs = _race(db_url, [["sell", str(a)], ["sell", str(b)]])
    states = sorted(o.split("|")[0] for o in outs)
    assert states == ["completed", "refused"], outs
    refusal = next(o for o in outs if o.startswith("refused"))
    assert "RACE-001" in refusal and "Nothing was charged" in refusal
    with demo_db.read() as s:
        charges = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")).all()
        winner = next(o for o in (s.get(SalesOrder, a), s.get(SalesOrder, b)) if o.state == "completed")
        assert [c.id for c in charges] == [winner.gateway_payment_id]
        assert s.get(VehicleClaim, car).order_id == winner.id


def test_replayers_racing_on_pending_orders_send_each_step_once(demo_db, db_url, tmp_path) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    gw.online = False  # every order stops at its first step: pending sync
    orders = []
    for i in range(12):
        order_id = _order_for_car(demo_db, f"C1000{i + 10:02d}", _new_car(demo_db, f"RPL-{i:03d}"))
        assert billing.start_sale(order_id).pending_sync
        orders.append(order_id)
    steps = 0
    with demo_db.read() as s:
        steps = len(s.exec(select(Outbox).where(Outbox.status == "pending")).all())
    # Three replayers at once (a terminal's start-up, its timer, `payments replay`), each gateway call slowed
    # so that a step sent twice would be in flight twice.
    _race(db_url, [["replay"]] * 3, env={"CLARITY_SIM_GATEWAY_LATENCY": "0.02"})
    with demo_db.read() as s:
        assert {s.get(SalesOrder, o).state for o in orders} == {"completed"}
        assert not s.exec(select(Outbox).where(Outbox.status != "done")).all()
        charges = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")).all()
        assert len(charges) == len(orders)
        # Every step reached the gateway once: one idempotency record per step, none refused as in flight.
        from db.models import SimGatewayRequest

        keys = [r.idempotency_key for r in s.exec(select(SimGatewayRequest)).all()]
    assert steps >= len(orders) * 3 and len(set(keys)) == len(keys)


def test_a_cached_5xx_is_looked_up_then_sent_under_a_fresh_key(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    order_id = _order_for_car(demo_db, "C100003", _new_car(demo_db, "CCH-500"))
    gw.inject_fault("payment_intent.create", status=500)
    assert billing.start_sale(order_id).pending_sync
    # The same key only ever gets the cached 500 back: replaying it as is would never finish.
    assert billing.processor.replay_pending()[0].status == "synced"
    with demo_db.read() as s:
        row = s.exec(select(Outbox).where(Outbox.order_id == order_id, Outbox.operation == "payment.charge")).one()
        assert row.status == "done" and len(row.payload["prior_keys"]) == 1
        assert row.idempotency_key != row.payload["prior_keys"][0]
    assert gw.counts("payment_intent") == 1


def test_a_5xx_after_the_charge_took_effect_is_found_not_repeated(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    order_id = _order_for_car(demo_db, "C100004", _new_car(demo_db, "CCH-501"))
    gw.inject_fault("payment_intent.create", status=500, after_effect=True)
    assert billing.start_sale(order_id).pending_sync
    assert gw.counts("payment_intent") == 1
    assert billing.processor.replay_pending()[0].status == "synced"
    assert gw.counts("payment_intent") == 1  # found by the order key, never charged again
    with demo_db.read() as s:
        assert s.get(SalesOrder, order_id).state == "completed"


def test_a_step_failing_for_good_after_the_charge_refunds_it_automatically(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    car = _new_car(demo_db, "STR-001")
    order_id = _order_for_car(demo_db, "C100005", car)

    def customer_deleted_at_the_gateway(point: str, entry) -> None:  # noqa: ANN001
        if point == "after_done" and entry.operation == "payment.charge":
            with demo_db.write() as s:
                cus = s.get(Customer, s.get(SalesOrder, order_id).customer_id).gateway_customer_id
                s.delete(s.get(SimGatewayObject, cus))

    billing.processor.observers.append(customer_deleted_at_the_gateway)
    outcome = billing.start_sale(order_id)
    assert outcome.state == "cancelled" and "refunded automatically" in outcome.message
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
        pi = s.get(SimGatewayObject, order.gateway_payment_id).data
        assert pi["refunded"] == pi["amount"] == order.refunded_cents > 0
        assert s.get(Membership, order.membership_id).status == "cancelled"
        assert s.get(VehicleClaim, car) is None  # the car may be sold again
        assert s.exec(select(AuditLog).where(AuditLog.action == "order.refund_automatic")).all()


@pytest.mark.parametrize("took_effect", [True, False])
def test_cancel_after_a_lost_answer_asks_the_gateway_before_saying_nothing_was_charged(demo_db, took_effect) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    car = _new_car(demo_db, "LST-001")
    order_id = _order_for_car(demo_db, "C100006", car)
    if took_effect:
        gw.inject_fault("payment_intent.create", drop=True)  # charged, but the answer never came back
    else:
        gw.inject_fault("payment_intent.create", status=503)  # refused before anything happened
    assert billing.start_sale(order_id).pending_sync
    outcome = billing.cancel_order(order_id)
    assert outcome.state == "cancelled"
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
        charges = [o.data for o in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))]
        assert s.get(VehicleClaim, car) is None
    if took_effect:
        assert "refunded automatically" in outcome.message
        assert [c["refunded"] for c in charges] == [charges[0]["amount"]] and order.refunded_cents > 0
    else:
        assert outcome.message is None and charges == []  # truly nothing: the screen may say so
    # A later replay sends nothing more.
    billing.processor.replay_pending()
    assert gw.counts("payment_intent") == len(charges)


def test_the_member_badge_belongs_to_the_covered_car_not_the_customer(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.services.board_view import Badge, read_bubbles
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent
    from clarity_tui.services.actor import Actor

    billing = BillingService(demo_db, SimulatedGateway(demo_db))
    covered, other = _new_car(demo_db, "COV-001"), _new_car(demo_db, "OTH-001")
    order_id = _order_for_car(demo_db, "C100007", covered)
    assert billing.start_sale(order_id).completed
    with demo_db.write() as s:
        from db.models import MembershipVehicle

        order = s.get(SalesOrder, order_id)
        s.add(MembershipVehicle(membership_id=order.membership_id, vehicle_id=covered))
        for vid in (covered, other):
            s.get(Vehicle, vid).customer_id = order.customer_id
    sessions = SessionService(demo_db)
    actor = Actor.system("camera")
    for plate in ("COV-001", "OTH-001"):
        sessions.record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), actor)
    with demo_db.engine.connect() as conn:
        bubbles = {b.plate: b for b in read_bubbles(conn.connection.dbapi_connection, demo_db.is_sqlite)}
    assert bubbles["COV-001"].badge == Badge.MEMBER
    assert bubbles["OTH-001"].badge != Badge.MEMBER


async def test_the_pending_sync_badge_clears_by_itself_when_the_network_is_back(demo_db, settings) -> None:  # noqa: ANN001
    """No restart: the running app's timer replays due outbox rows (issue 12, item 2)."""
    from db.models import MembershipVehicle
    from hardware.plate_reader import PlateEvent
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from clarity_tui.widgets.bubble import SessionBubble
    from tests.helpers.ui import make_app, wait_until

    gw = SimulatedGateway(demo_db)
    car = _new_car(demo_db, "SYN-001")
    order_id = _order_for_car(demo_db, "C100008", car)
    gw.inject_fault("*", status=503, times=10_000)  # the network is down, for as long as the test says
    assert BillingService(demo_db, gw).start_sale(order_id).pending_sync
    with demo_db.write() as s:
        order = s.get(SalesOrder, order_id)
        s.add(MembershipVehicle(membership_id=order.membership_id, vehicle_id=car))
        s.get(Vehicle, car).customer_id = order.customer_id
    session_id = SessionService(demo_db).record_plate_read(PlateEvent(plate="SYN-001", lane="Lane 1"),
                                                           Actor.system("camera"))
    fast = settings.model_copy(update={"payments": settings.payments.model_copy(update={"replay_every_seconds": 0.2})})
    app = make_app(fast, demo_db)

    def badge() -> str:
        bubbles = app.screen.query(f"#session-{session_id}")
        return str(bubbles.first(SessionBubble).border_title) if bubbles else ""

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: "SYNC" in badge(), "the bubble to show pending sync")
        gw.clear_faults()  # the network is back
        await wait_until(pilot, lambda: badge().startswith("MEMBER") and "SYNC" not in badge(),
                         "the pending sync badge to clear")
    with demo_db.read() as s:
        assert s.get(SalesOrder, order_id).state == "completed"
    assert gw.counts("payment_intent") == 1


def test_stripe_past_due_recovery_pays_the_open_invoice_with_the_new_card() -> None:
    """`invoices.pay` with `payment_method` (Stripe's amount, no separate PaymentIntent), exact requests."""
    from clarity_tui.payments.stripe_gateway import StripeGateway
    from tests.helpers.stripe_replay import ReplayHTTPClient, Step

    sub = {"id": "sub_1", "object": "subscription", "status": "past_due", "latest_invoice": "in_1",
           "items": {"object": "list", "data": []}}
    http = ReplayHTTPClient([
        Step("GET", "/v1/subscriptions/sub_1", {}, sub),
        Step("GET", "/v1/invoices/in_1", {}, {"id": "in_1", "object": "invoice", "status": "open", "amount_due": 2345}),
        Step("POST", "/v1/invoices/in_1/pay", {"payment_method": "pm_new"},
             {"id": "in_1", "object": "invoice", "status": "paid", "amount_paid": 2345, "payment_intent": "pi_9",
              "charge": "ch_9"}),
    ])
    paid = StripeGateway("sk_test_replay", http_client=http).pay_open_invoice("sub_1", "pm_new",
                                                                              idempotency_key="membership-1:invoice")
    assert (paid.payment_id, paid.amount_cents) == ("pi_9", 2345)
    assert http.recorded[-1].headers.get("Idempotency-Key") == "membership-1:invoice"
    assert not [r for r in http.recorded if r.path == "/v1/payment_intents"]  # no separate charge


def test_one_stuck_order_never_blocks_the_others(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    gw.online = False
    stuck, fine = (_order_for_car(demo_db, f"C10002{i}", _new_car(demo_db, f"STK-00{i}")) for i in (1, 2))
    assert billing.start_sale(stuck).pending_sync and billing.start_sale(fine).pending_sync
    gw.online = True
    # The first order replayed (the lower id) gets a 500 at the gateway; the order after it must still go.
    with demo_db.read() as s:
        stuck_customer = s.get(SalesOrder, stuck).customer_id
    gw.inject_fault("customer.create", status=500, times=1)
    results = {r.order_id: r.status for r in billing.processor.replay_pending()}
    assert results == {stuck: "pending_sync", fine: "synced"}
    with demo_db.read() as s:
        assert s.get(SalesOrder, fine).state == "completed" and s.get(SalesOrder, stuck).state == "pending_sync"
        assert s.get(Customer, stuck_customer).gateway_customer_id is None
