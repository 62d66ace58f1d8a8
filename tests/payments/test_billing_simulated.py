"""BillingService + outbox over the simulated gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.payments.simulated import sim_token
from clarity_tui.services.billing import add_months
from clarity_tui.services.membership_actions import ActionRefused, MembershipActions
from clarity_tui.services.permissions import PermissionDenied
from tests.helpers.actors import ATTENDANT, MANAGER
from db.models import Customer, Membership, Outbox, PaymentMethod, Promotion, SalesOrder, SimGatewayObject
from tests.helpers.orders import new_order

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

FUTURE = dt.date.today().year + 2


def reader_card(outcome: str = "ok"):  # noqa: ANN201
    from clarity_tui.payments import CardToken

    return CardToken(sim_token(outcome), "visa", "4242", 12, FUTURE)


def load(db, cls, id_):  # noqa: ANN001, ANN201
    with db.read() as s:
        return s.get(cls, id_)


def test_sale_completes_exactly_once(demo_db, sim_billing) -> None:
    gw = sim_billing.gateway
    order_id = new_order(demo_db, "DELUXE")
    sim_billing.attach_card_token(order_id, reader_card())
    out = sim_billing.start_sale(order_id)
    assert out.completed, out
    order = load(demo_db, SalesOrder, order_id)
    assert order.due_today_cents == 2999 and order.gateway_payment_id and order.gateway_subscription_id
    m = load(demo_db, Membership, order.membership_id)
    assert not m.pending_sync and m.gateway_subscription_id == order.gateway_subscription_id
    assert m.next_billing_on == add_months(dt.date.today())
    assert load(demo_db, Customer, order.customer_id).gateway_customer_id.startswith("cus_sim_")
    # Starting again (a double tap, a restart) changes nothing at the gateway.
    assert sim_billing.start_sale(order_id).completed
    assert sim_billing.processor.replay_pending() == []
    assert (gw.counts("customer"), gw.counts("subscription"), gw.counts("payment_intent")) == (1, 1, 1)
    with demo_db.read() as s:
        steps = [(r.operation, r.status) for r in s.exec(select(Outbox).where(Outbox.order_id == order_id)
                                                         .order_by(Outbox.id))]
    assert steps == [("customer.ensure", "done"), ("card.save", "done"), ("payment.charge", "done"),
                     ("subscription.create", "done")]


def test_sale_with_promotion_discounts_today(demo_db, sim_billing) -> None:
    order_id = new_order(demo_db, "BASIC", promo="SAVE20")
    sim_billing.attach_card_token(order_id, reader_card())
    assert sim_billing.start_sale(order_id).completed
    order = load(demo_db, SalesOrder, order_id)
    assert (order.subtotal_cents, order.discount_cents, order.due_today_cents) == (1999, 400, 1599)
    with demo_db.read() as s:
        assert s.exec(select(Promotion).where(Promotion.code == "SAVE20")).one().times_redeemed == 1
        (charge,) = s.exec(select(Outbox).where(Outbox.order_id == order_id,
                                                Outbox.operation == "payment.charge")).all()
    assert charge.payload["amount_cents"] == 1599


def test_migration_keeps_billing_date_and_charges_nothing(demo_db, sim_billing) -> None:
    gw = sim_billing.gateway
    anchor = dt.date.today() + dt.timedelta(days=11)
    order_id = new_order(demo_db, "ULTIMATE", promo="ULTIMATE10", kind="migration")
    sim_billing.attach_card_token(order_id, reader_card())
    assert sim_billing.start_migration(order_id, anchor).completed
    order = load(demo_db, SalesOrder, order_id)
    assert order.due_today_cents == 0 and order.gateway_payment_id is None
    m = load(demo_db, Membership, order.membership_id)
    assert (m.source, m.next_billing_on, m.pending_sync) == ("migration", anchor, False)
    assert gw.counts("payment_intent") == 0
    from db.models import SimGatewayObject

    with demo_db.read() as s:
        sub = s.get(SimGatewayObject, order.gateway_subscription_id).data
    assert sub["coupon"] == "clarity-ultimate10"
    assert dt.datetime.fromtimestamp(sub["trial_end"], dt.UTC).date() == anchor


def test_declined_card_then_another_card(demo_db, sim_billing) -> None:
    gw = sim_billing.gateway
    order_id = new_order(demo_db, "BASIC")
    sim_billing.attach_card_token(order_id, reader_card("insufficient_funds"))
    out = sim_billing.start_sale(order_id)
    assert out.state == "payment_pending" and "insufficient funds" in out.message
    assert load(demo_db, SalesOrder, order_id).gateway_subscription_id is None  # no subscription left behind
    sim_billing.attach_card_token(order_id, reader_card("charge_decline"))
    out = sim_billing.start_sale(order_id)
    assert out.state == "payment_pending" and "declined" in out.message.lower()
    sim_billing.attach_card_token(order_id, reader_card())
    assert sim_billing.start_sale(order_id).completed
    with demo_db.read() as s:
        from db.models import SimGatewayObject

        pis = [o.data for o in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))]
    assert sorted(p["status"] for p in pis) == ["requires_payment_method", "succeeded"]
    assert gw.counts("subscription") == 1


def test_network_down_completes_locally_then_syncs(demo_db, sim_billing) -> None:
    gw = sim_billing.gateway
    order_id = new_order(demo_db, "BASIC")
    sim_billing.attach_card_token(order_id, reader_card())
    gw.online = False
    out = sim_billing.start_sale(order_id)
    assert out.pending_sync and "network" in out.message
    order = load(demo_db, SalesOrder, order_id)
    assert load(demo_db, Membership, order.membership_id).pending_sync
    assert sim_billing.processor.replay_pending()[0].status == "pending_sync"  # still down
    gw.online = True
    assert [r.status for r in sim_billing.processor.replay_pending()] == ["synced"]
    order = load(demo_db, SalesOrder, order_id)
    assert order.state == "completed" and not load(demo_db, Membership, order.membership_id).pending_sync
    assert (gw.counts("customer"), gw.counts("subscription"), gw.counts("payment_intent")) == (1, 1, 1)


def test_same_key_same_result_and_conflict(demo_db) -> None:
    from clarity_tui.payments import CustomerInfo, IdempotencyConflict
    from clarity_tui.payments.simulated import SimulatedGateway

    gw = SimulatedGateway(demo_db)
    a = gw.ensure_customer(CustomerInfo("C1", "A"), idempotency_key="k1")
    assert gw.ensure_customer(CustomerInfo("C1", "A"), idempotency_key="k1") == a
    with pytest.raises(IdempotencyConflict):
        gw.ensure_customer(CustomerInfo("C2", "B"), idempotency_key="k1")
    assert gw.counts("customer") == 1


def test_membership_changes_and_refund(demo_db, sim_billing) -> None:
    from db.models import Plan, SimGatewayObject

    order_id = new_order(demo_db, "BASIC")
    sim_billing.attach_card_token(order_id, reader_card())
    assert sim_billing.start_sale(order_id).completed
    order = load(demo_db, SalesOrder, order_id)
    mid = order.membership_id
    actions = MembershipActions(sim_billing)

    def version() -> int:
        return load(demo_db, Membership, mid).version

    assert actions.change(MANAGER, mid, version(), "subscription.pause", {"active"}, "paused").status == "done"
    assert load(demo_db, Membership, mid).status == "paused"
    assert actions.change(MANAGER, mid, version(), "subscription.resume", {"paused"}, "resumed").status == "done"
    assert load(demo_db, Membership, mid).status == "active"
    with demo_db.read() as s:
        ultimate = s.exec(select(Plan).where(Plan.code == "ULTIMATE")).one()
    actions.change(MANAGER, mid, version(), "subscription.change_plan", {"active"}, "changed", plan_id=ultimate.id)
    actions.change(MANAGER, mid, version(), "subscription.cancel", {"active"}, "cancelled")
    m = load(demo_db, Membership, mid)
    assert (m.plan_id, m.cancel_at_period_end) == (ultimate.id, True)
    with demo_db.read() as s:
        sub = s.get(SimGatewayObject, m.gateway_subscription_id).data
    assert sub["plan"] == "clarity-ultimate-3999-month" and sub["cancel_at_period_end"]
    assert actions.refund(MANAGER, order_id, 500).status == "done"
    with pytest.raises(ActionRefused, match="more than was paid"):
        actions.refund(MANAGER, order_id, order.due_today_cents)
    with pytest.raises(PermissionDenied):
        actions.refund(ATTENDANT, order_id, 100)
    with demo_db.read() as s:
        assert s.get(SimGatewayObject, order.gateway_payment_id).data["refunded"] == 500
    assert load(demo_db, SalesOrder, order_id).refunded_cents == 500
    assert actions.refund(MANAGER, order_id).status == "done"  # the rest
    assert load(demo_db, SalesOrder, order_id).refunded_cents == order.due_today_cents
    with pytest.raises(ActionRefused, match="already been refunded in full"):
        actions.refund(MANAGER, order_id, 100)


def test_manual_card_saved_as_token_only(demo_db, sim_billing) -> None:
    order_id = new_order(demo_db, "BASIC")
    pm = sim_billing.add_manual_card(order_id, "4242 4242 4242 4242", f"12/{FUTURE % 100}", "123")
    assert (pm.brand, pm.last4, pm.exp_year) == ("visa", "4242", FUTURE)
    assert pm.gateway_token.startswith("pm_sim_")
    assert sim_billing.start_sale(order_id).completed
    with demo_db.read() as s:
        assert s.get(PaymentMethod, pm.id).is_default


def test_manual_test_card_declines(demo_db, sim_billing) -> None:
    order_id = new_order(demo_db, "BASIC")
    sim_billing.add_manual_card(order_id, "4000000000000069", f"12/{FUTURE % 100}", "123")
    out = sim_billing.start_sale(order_id)
    assert out.state == "payment_pending" and "expired" in out.message
    assert sim_billing.cancel_order(order_id).state == "cancelled"
    order = load(demo_db, SalesOrder, order_id)
    assert load(demo_db, Membership, order.membership_id).status == "cancelled"


def test_a_cancelled_sale_gives_its_promotion_use_back(demo_db, sim_billing) -> None:
    def uses() -> int:
        with demo_db.read() as s:
            return s.exec(select(Promotion).where(Promotion.code == "SAVE20")).one().times_redeemed

    before = uses()
    order_id = new_order(demo_db, "BASIC", promo="SAVE20")
    sim_billing.attach_card_token(order_id, reader_card("charge_decline"))
    assert sim_billing.start_sale(order_id).state == "payment_pending"
    assert uses() == before + 1  # counted when the membership was made
    sim_billing.attach_card_token(order_id, reader_card("charge_decline"))
    assert sim_billing.start_sale(order_id).state == "payment_pending"
    assert uses() == before + 1  # a retry is the same use
    assert sim_billing.cancel_order(order_id).state == "cancelled"
    assert uses() == before
    assert sim_billing.cancel_order(order_id).state == "cancelled"  # cancelling twice gives back nothing more
    assert uses() == before


class Crash(Exception):
    """The terminal dies: the gateway acted, our database never heard of it."""


@pytest.mark.parametrize("operation, kind", [("payment.charge", "payment_intent"),
                                             ("subscription.create", "subscription")])
def test_a_replay_a_day_late_finds_the_first_attempt_instead_of_acting_again(demo_db, sim_billing, operation,
                                                                            kind) -> None:  # noqa: ANN001
    from db.models import SimGatewayRequest

    gw = sim_billing.gateway
    order_id = new_order(demo_db, "DELUXE")
    sim_billing.attach_card_token(order_id, reader_card())

    def die_after_the_call(point: str, entry) -> None:  # noqa: ANN001
        if point == "after_call" and entry.operation == operation:
            raise Crash

    sim_billing.processor.observers.append(die_after_the_call)
    with pytest.raises(Crash):
        sim_billing.start_sale(order_id)
    sim_billing.processor.observers.clear()
    assert gw.counts(kind) == 1
    with demo_db.read() as s:
        first_id = s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == kind)).one()

    # A day and an hour pass with the site offline: the gateway forgets its idempotency keys.
    with demo_db.write() as s:
        for row in s.exec(select(Outbox).where(Outbox.order_id == order_id)).all():
            row.created_at -= dt.timedelta(hours=25)
            s.add(row)
        for req in s.exec(select(SimGatewayRequest)).all():
            req.created_at -= dt.timedelta(hours=25)
            s.add(req)
    # The same key would now act again (what Stripe does), so the replay must not just resend it ...
    probe = gw.charge(*_customer_and_card(demo_db, order_id), 100, idempotency_key="probe:expired")
    with demo_db.write() as s:
        req = s.get(SimGatewayRequest, "probe:expired")
        req.created_at -= dt.timedelta(hours=25)
        s.add(req)
    assert gw.charge(*_customer_and_card(demo_db, order_id), 100, idempotency_key="probe:expired").payment_id \
        != probe.payment_id
    # ... and it does not: it finds the first attempt by the order key and records it.
    results = sim_billing.processor.replay_pending()
    assert [r.status for r in results] == ["synced"]
    assert gw.counts(kind) == (3 if kind == "payment_intent" else 1)  # the two probes, nothing more
    order = load(demo_db, SalesOrder, order_id)
    assert order.state == "completed"
    recorded = order.gateway_payment_id if kind == "payment_intent" else order.gateway_subscription_id
    assert recorded == first_id


def _customer_and_card(db, order_id: int) -> tuple[str, str]:  # noqa: ANN001
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                                PaymentMethod.is_default == True)).one()  # noqa: E712
        return s.get(Customer, order.customer_id).gateway_customer_id, pm.gateway_token


def test_a_partial_refund_replayed_a_day_late_is_not_paid_twice(demo_db, sim_billing) -> None:
    from db.models import SimGatewayRequest

    order_id = new_order(demo_db, "BASIC")
    sim_billing.attach_card_token(order_id, reader_card())
    assert sim_billing.start_sale(order_id).completed
    payment_id = load(demo_db, SalesOrder, order_id).gateway_payment_id

    def die_after_the_refund(point: str, entry) -> None:  # noqa: ANN001
        if point == "after_call" and entry.operation == "payment.refund":
            raise Crash

    sim_billing.processor.observers.append(die_after_the_refund)
    with pytest.raises(Crash):
        MembershipActions(sim_billing).refund(MANAGER, order_id, 500)
    sim_billing.processor.observers.clear()
    with demo_db.write() as s:  # a day and an hour offline: the gateway forgot the key
        for row in s.exec(select(Outbox).where(Outbox.operation == "payment.refund")).all():
            row.created_at -= dt.timedelta(hours=25)
            s.add(row)
        for req in s.exec(select(SimGatewayRequest)).all():
            req.created_at -= dt.timedelta(hours=25)
            s.add(req)
    assert [r.status for r in sim_billing.processor.replay_pending()] == ["synced"]
    assert sim_billing.gateway.counts("refund") == 1
    with demo_db.read() as s:
        assert s.get(SimGatewayObject, payment_id).data["refunded"] == 500
        (row,) = s.exec(select(Outbox).where(Outbox.operation == "payment.refund")).all()
        assert row.status == "done" and row.result["amount_cents"] == 500
