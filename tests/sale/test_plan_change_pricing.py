"""Plan changes priced honestly (issue 12 item 8): an upgrade charges the prorated difference today, also
during a sale's paid first period and a migrated member's kept period (Stripe trials, where the gateway
prorates nothing); the amount is on the payment and checkout screens before Agree and is exactly what is
charged; a downgrade waits for the next billing date; the confirmation names the old and new plans.
Simulated gateway, SQLite; the lane through Pilot."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.payments import CardToken
from clarity_tui.payments.simulated import sim_token
from clarity_tui.services.customers import CustomerService
from clarity_tui.services.membership_actions import effective_plan_id
from clarity_tui.services.plan_pricing import add_months, current_period, prorated_difference
from db.models import Membership, Outbox, Plan, SalesOrder, SimGatewayObject
from tests.helpers.actors import ATTENDANT
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Lanes
from tests.helpers.sale import sale_service, sign
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of

D = dt.date


# --- the one proration rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(("today", "next_billing", "interval", "expected"), [
    (D(2026, 11, 22), D(2026, 12, 22), "month", 2000),  # the day the period was paid: all of it
    (D(2026, 12, 7), D(2026, 12, 22), "month", 1000),  # 15 of 30 days left
    (D(2026, 12, 21), D(2026, 12, 22), "month", 67),  # the last day: 1/30 of $20.00, rounded
    (D(2027, 2, 14), D(2027, 2, 28), "month", 903),  # Feb 28 (not a leap year): Jan 28 .. Feb 28, 14 of 31 left
    (D(2028, 2, 15), D(2028, 3, 1), "month", 1034),  # leap year: Feb 1 .. Mar 1 is 29 days, 15 left
    (D(2027, 3, 1), D(2027, 3, 31), "month", 1935),  # Feb 28 .. Mar 31 (31 days), 30 left
    (D(2027, 6, 1), D(2028, 6, 1), "year", 2000),  # a yearly plan on its first day
    (D(2027, 12, 1), D(2028, 6, 1), "year", 1000),  # 183 of the 366 days (with Feb 29, 2028)
    (D(2027, 1, 7), D(2026, 12, 22), "month", 968),  # a stale date rolls on: Dec 22 .. Jan 22, 15 of 31 left
    (D(2026, 11, 22), D(2027, 1, 6), "month", 2000),  # a kept date more than a period away: never above the difference
])
def test_prorated_difference(today: D, next_billing: D, interval: str, expected: int) -> None:
    assert prorated_difference(1999, 3999, today, next_billing, interval) == expected


def test_proration_rounds_half_up_and_cheaper_plans_cost_nothing_today() -> None:
    assert prorated_difference(0, 1, D(2026, 1, 31), D(2026, 2, 1), "month") == 0  # 1/31 of a cent
    assert prorated_difference(0, 31, D(2026, 1, 16), D(2026, 2, 1), "month") == 16  # 15.5 -> 16
    assert prorated_difference(3999, 1999, D(2026, 12, 7), D(2026, 12, 22), "month") == 0
    assert current_period(D(2027, 3, 31), D(2027, 3, 1), "month") == (D(2027, 2, 28), D(2027, 3, 31))


# --- at the lane ---------------------------------------------------------------------------------------------


def sell_basic(lanes: Lanes) -> int:
    """Ivana buys Basic today through the sale (charged $19.99, billed from Dec 22): her membership id."""
    service = sale_service(lanes.db)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "BASIC")
    sign(service, view.id)
    assert service.pay(view.id).ok
    return service.order(view.id).membership_id


def charges(db) -> list[int]:  # noqa: ANN001
    with db.read() as s:
        return [r.data["amount"] for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")
                                                 .order_by(SimGatewayObject.created_at))
                if r.data.get("status") == "succeeded"]


def plan_id(db, code: str) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Plan.id).where(Plan.code == code)).one()


def subscription(db, membership_id: int) -> dict:  # noqa: ANN001
    with db.read() as s:
        return dict(s.get(SimGatewayObject, s.get(Membership, membership_id).gateway_subscription_id).data)


def test_upgrade_in_the_paid_first_period_charges_the_difference_shown(lanes: Lanes) -> None:
    db = lanes.db
    mid = sell_basic(lanes)
    assert subscription(db, mid)["status"] == "trialing"  # the paid first month: Stripe prorates nothing
    service = sale_service(db)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "ULTIMATE")
    # On the payment screen, before Agree: the whole difference (the period was paid today).
    assert (view.kind, view.plan.relation, view.due_today_cents) == ("plan_change", "upgrade", 2000)
    assert view.current_plan.name == "Basic Wash Club"
    view = service.review(view.id)
    assert (view.due_today_cents, view.subtotal_cents, view.next_billing_on) == (2000, 3999, add_months(TODAY))
    sign(service, view.id)
    assert service.pay(view.id).ok
    assert charges(db) == [1999, 2000]
    with db.read() as s:
        m = s.get(Membership, mid)
        assert (m.plan_id, m.pending_sync, m.status) == (plan_id(db, "ULTIMATE"), False, "active")
        order = s.get(SalesOrder, view.id)
        steps = [(r.operation, r.status) for r in s.exec(select(Outbox).where(Outbox.order_id == view.id)
                                                         .order_by(Outbox.id))]
    assert steps == [("card.save", "done"), ("payment.charge", "done"), ("subscription.change_plan", "done")]
    assert (order.state, order.due_today_cents, order.from_plan_id) == ("completed", 2000, plan_id(db, "BASIC"))
    sub = subscription(db, mid)
    assert (sub["plan"], sub["proration_behavior"], sub["status"]) == ("clarity-ultimate-3999-month", "none",
                                                                       "trialing")
    # The confirmation names both plans correctly once the membership has moved on.
    done = service.order(view.id)
    assert (done.plan.name, done.current_plan.name, done.plan.relation) == ("Ultimate Wash Club", "Basic Wash Club",
                                                                            "upgrade")
    # Agree again (a double tap, a restart) charges nothing more.
    assert service.pay(view.id).ok and charges(db) == [1999, 2000]


def test_upgrade_mid_period_is_prorated(lanes: Lanes) -> None:
    db = lanes.db
    sell_basic(lanes)
    later = sale_service(db)
    later.today = lambda: TODAY + dt.timedelta(days=15)  # 15 of the 30 days left
    view = later.choose_plan(later.open_for_session(lanes.ivana).id, "DELUXE")
    assert view.due_today_cents == 500
    sign(later, view.id)
    assert later.pay(view.id).ok
    assert charges(db) == [1999, 500]


def test_a_declined_upgrade_leaves_the_membership_as_it_was(lanes: Lanes) -> None:
    db = lanes.db
    mid = sell_basic(lanes)
    service = sale_service(db)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "ULTIMATE")
    view = service.attach_reader_card(view.id, CardToken(sim_token("charge_decline"), "visa", "0341", 12, 2030))
    sign(service, view.id)
    result = service.pay(view.id)
    assert not result.ok and "declined" in (result.message or "").lower()
    with db.read() as s:
        m = s.get(Membership, mid)
        assert (m.plan_id, m.status, m.pending_sync) == (plan_id(db, "BASIC"), "active", False)
    assert subscription(db, mid)["plan"] == "clarity-basic-1999-month"
    # Another card (the one on file) pays the same amount shown.
    view = service.choose_card(view.id, next(c.id for c in service.order(view.id).cards if c.last4 != "0341"))
    assert service.pay(view.id).ok
    assert charges(db) == [1999, 2000]


def test_a_charge_whose_plan_change_is_refused_is_refunded(lanes: Lanes) -> None:
    db = lanes.db
    mid = sell_basic(lanes)
    with db.write() as s:  # the subscription was cancelled at the gateway meanwhile (in its dashboard)
        row = s.get(SimGatewayObject, s.get(Membership, mid).gateway_subscription_id)
        row.data = {**row.data, "status": "canceled"}
        s.add(row)
    service = sale_service(db)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "ULTIMATE")
    sign(service, view.id)
    result = service.pay(view.id)
    assert not result.ok and "refunded automatically" in (result.message or "")
    with db.read() as s:
        order = s.get(SalesOrder, view.id)
        assert (order.state, order.refunded_cents) == ("cancelled", 2000)
        m = s.get(Membership, mid)
        assert (m.plan_id, m.status, m.pending_sync) == (plan_id(db, "BASIC"), "active", False)


def test_downgrade_takes_effect_at_the_next_billing_date(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "ULTIMATE")
    sign(service, view.id)
    assert service.pay(view.id).ok
    mid = service.order(view.id).membership_id
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "BASIC")
    assert (view.plan.relation, view.due_today_cents, view.change_effective_on) == ("downgrade", 0, add_months(TODAY))
    sign(service, view.id)
    assert service.pay(view.id).ok
    assert charges(db) == [3999]
    with db.read() as s:
        m = s.get(Membership, mid)
        assert (m.plan_id, m.scheduled_plan_id, m.scheduled_plan_on) == (
            plan_id(db, "ULTIMATE"), plan_id(db, "BASIC"), add_months(TODAY))
        assert effective_plan_id(m, TODAY) == plan_id(db, "ULTIMATE")
        assert effective_plan_id(m, add_months(TODAY)) == plan_id(db, "BASIC")
    # The gateway bills Basic from the next invoice, with no proration now.
    sub = subscription(db, mid)
    assert (sub["plan"], sub["proration_behavior"]) == ("clarity-basic-1999-month", "none")
    done = service.order(view.id)
    assert (done.current_plan.name, done.plan.name) == ("Ultimate Wash Club", "Basic Wash Club")
    record = CustomerService(db, today=lambda: TODAY).record(lanes.ivana_customer_id)
    info = next(x for x in record.memberships if x.id == mid)
    assert (info.plan_name, info.scheduled_change) == ("Ultimate Wash Club",
                                                       f"changes to Basic Wash Club on {add_months(TODAY).isoformat()}")
    # The day before nothing moves; on the date the downgrade takes effect here too (the app's outbox pass).
    from clarity_tui.services.membership_actions import apply_due_plan_changes

    assert apply_due_plan_changes(db, add_months(TODAY) - dt.timedelta(days=1)) == []
    assert apply_due_plan_changes(db, add_months(TODAY)) == [mid]
    with db.read() as s:
        m = s.get(Membership, mid)
        assert (m.plan_id, m.scheduled_plan_id) == (plan_id(db, "BASIC"), None)


def test_upgrade_of_a_migrated_member_from_the_record(lanes: Lanes) -> None:
    """A migrated member's subscription is a trial until the kept legacy date: the record's upgrade charges the
    prorated difference of that period on the card on file."""
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.billing import BillingService
    from tests.helpers.orders import new_order
    from tests.helpers.cards import reader_card

    db = lanes.db
    sim_billing = BillingService(db, SimulatedGateway(db))
    order_id = new_order(db, "BASIC", customer_number="C100001", kind="migration")
    sim_billing.attach_card_token(order_id, reader_card())
    kept = TODAY + dt.timedelta(days=10)
    assert sim_billing.start_migration(order_id, kept, today=TODAY).completed
    with db.read() as s:
        m = s.get(Membership, s.get(SalesOrder, order_id).membership_id)
    svc = CustomerService(db, gateway=sim_billing.gateway, today=lambda: TODAY)
    assert svc.plan_change_preview(m.id, "ULTIMATE") == "upgrade, $6.67 today"  # 10 of the 30 days to the date
    assert svc.change_plan(ATTENDANT, m.id, m.version, "ULTIMATE") == "upgrade"
    assert charges(db) == [667]
    with db.read() as s:
        assert s.get(Membership, m.id).plan_id == plan_id(db, "ULTIMATE")
        order = s.exec(select(SalesOrder).where(SalesOrder.kind == "plan_change")).one()
        assert (order.state, order.due_today_cents, order.from_plan_id) == ("completed", 667, plan_id(db, "BASIC"))


# --- through the screens ------------------------------------------------------------------------------------


async def test_the_upgrade_amount_is_shown_before_agree_and_both_plans_named(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    sell_basic(lanes)
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        target = next(c for c in app.screen.query("PlanCard") if c.plan.code == "ULTIMATE")
        assert target.plan.relation == "upgrade"
        await pilot.press(str(target.number))
        await at(pilot, "payment")
        assert "Due today $20.00 (the upgrade, to Dec 22, 2026)" in text_of(app, "#pay-price")
        await pilot.press("f5")
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "(upgrade from Basic Wash Club)" in summary and "Due today $20.00" in summary
        assert charges(db) == [1999]  # nothing before Agree
        await pilot.press("enter")
        await at(pilot, "terms")
        await pilot.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        await pilot.press("f5")  # Agree
        await at(pilot, "confirmation")
        assert "is now on Ultimate Wash Club (was Basic Wash Club)" in text_of(app, "#confirm-title")
        assert "Charged today $20.00" in text_of(app, "#confirm-table")
    assert charges(db) == [1999, 2000]
