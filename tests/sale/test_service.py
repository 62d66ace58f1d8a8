"""The sale state machine without a screen, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import select

from clarity_tui.payments.errors import InvalidCard, PromotionInvalid
from clarity_tui.services.billing import add_months
from clarity_tui.services.customers import ContactForm, ValidationFailed
from clarity_tui.services.orders import OrderBusy, OrderTaken, SaleError
from db.models import (
    AuditLog,
    Membership,
    MembershipVehicle,
    OrderProgress,
    Plan,
    SalesOrder,
    Signature,
    SimGatewayObject,
    Vehicle,
    VehicleSession,
)
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Lanes
from tests.helpers.sale import sale_service, sign

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

def charges(db) -> list[dict]:  # noqa: ANN001
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))
                if r.data.get("status") == "succeeded"]


def test_returning_customer_buys_a_plan_end_to_end(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.ivana)
    assert view.customer_name == "Ivana Zoom" and view.card is not None
    assert view.card.label == "Visa •••• 4242, exp 04/29"
    view = service.choose_plan(view.id, "DELUXE")
    assert (view.kind, view.due_today_cents) == ("sale", 2999)
    view = service.apply_promotion(view.id, "save20")
    assert (view.discount_cents, view.due_today_cents) == (600, 2399)
    sign(service, view.id, "read_to_end")
    result = service.pay(view.id)
    assert result.ok and result.state == "completed"
    assert [c["amount"] for c in charges(db)] == [2399]
    with db.read() as s:
        order = s.get(SalesOrder, view.id)
        m = s.get(Membership, order.membership_id)
        assert (m.status, m.pending_sync, m.customer_id) == ("active", False, lanes.ivana_customer_id)
        assert m.next_billing_on == add_months(TODAY) == order.next_billing_on
        assert {mv.vehicle_id for mv in s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == m.id))} \
            == set(order.vehicle_ids)
        sig = s.exec(select(Signature).where(Signature.order_id == order.id)).one()
        assert len(sig.terms_sha256) == 64 and sig.lane_id == order.lane_id and sig.device.startswith("simulated")
        assert s.get(OrderProgress, order.id).terms_accepted_how == "read_to_end"
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity == "sales_order",
                                                                   AuditLog.entity_id == str(order.id)))]
    for step in ("order.opened", "order.plan", "order.promotion", "order.reviewed", "order.checkout",
                 "order.terms_accepted", "order.signed", "order.sale.billing_started", "order.completed",
                 "order.activated"):
        assert step in actions, step
    # Paying again (a double tap, a retry) changes nothing and charges nothing.
    assert service.pay(view.id).ok
    assert len(charges(db)) == 1


def test_unknown_vehicle_new_customer_joins_the_garage(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.unknown)
    assert view.customer_id is None
    service.choose_plan(view.id, "BASIC")
    with pytest.raises(ValidationFailed) as bad:
        service.set_new_customer(view.id, ContactForm("Dana", "Reyes", "555", "dana@"))
    assert set(bad.value.errors) == {"phone", "email"}
    view = service.set_new_customer(view.id, ContactForm("Dana", "Reyes", "(512) 555-2368", "Dana@Example.com"))
    assert view.customer_name == "Dana Reyes" and view.email == "Dana@example.com" and view.phone == "+15125552368"
    assert view.cards == () and view.payment_method_id is None
    with pytest.raises(InvalidCard):
        service.key_card(view.id, "4242 4242 4242 4241", "12/30", "123")
    view = service.key_card(view.id, "4242 4242 4242 4242", "12/30", "123")
    assert view.card.label == "Visa •••• 4242, exp 12/30"
    sign(service, view.id)
    assert service.pay(view.id).ok
    with db.read() as s:
        car = s.exec(select(Vehicle).where(Vehicle.plate_normalized == "NEW4821")).one()
        assert car.customer_id == view.customer_id and (car.make, car.model, car.colour) == ("Honda", "Civic", "Blue")
        vs = s.get(VehicleSession, lanes.unknown)
        assert (vs.customer_id, vs.vehicle_id) == (view.customer_id, car.id)
        # Only the token, brand, last 4 and expiry were stored.
        from db.models import PaymentMethod

        pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == view.customer_id)).one()
        assert pm.gateway_token.startswith("pm_sim_") and "4242424242424242" not in str(pm.model_dump())


def test_family_plan_covers_several_vehicles(lanes: Lanes) -> None:
    service = sale_service(lanes.db)
    view = service.open_for_session(lanes.ivana)
    with pytest.raises(SaleError, match="choose the Family plan"):
        service.choose_plan(view.id, "BASIC")
        service.add_vehicle(view.id, "FAM-0002")
    view = service.choose_plan(view.id, "FAMILY")
    for plate in ("FAM-0002", "FAM-0003", "FAM-0004"):
        view = service.add_vehicle(view.id, plate, make="Kia", model="Soul", colour="Red")
    assert len(view.vehicles) == 4
    assert view.subtotal_cents == 5999 + 1500  # three included, one extra
    with pytest.raises(SaleError, match="already on this membership"):
        service.add_vehicle(view.id, "fam 0003")
    view = service.remove_vehicle(view.id, view.vehicles[-1].id)
    assert view.subtotal_cents == 5999
    sign(service, view.id)
    assert service.pay(view.id).ok
    with lanes.db.read() as s:
        m = s.get(Membership, s.get(SalesOrder, view.id).membership_id)
        assert len(s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == m.id)).all()) == 3


def test_promotion_messages(lanes: Lanes) -> None:
    service = sale_service(lanes.db)
    view = service.open_for_session(lanes.ivana)
    service.choose_plan(view.id, "BASIC")
    expected = {"NOPE": "does not exist", "SUMMER25": "expired", "LAUNCH50": "used up",
                "ULTIMATE10": "not valid for the BASIC plan"}
    for code, text in expected.items():
        with pytest.raises(PromotionInvalid, match=text):
            service.preview_promotion(view.id, code)
    promo, discount, total = service.preview_promotion(view.id, "FIRSTMONTH")
    assert (promo.code, discount, total) == ("FIRSTMONTH", 1000, 999)


def test_member_upgrade_changes_the_plan_without_a_charge(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.member)
    plans = {p.code: p.relation for p in service.plans(view.customer_id)}
    with db.read() as s:
        current_code = s.get(Plan, lanes.member_plan_id).code
    assert plans[current_code] == "current" and set(plans.values()) >= {"current"}
    with pytest.raises(SaleError, match="already on"):
        service.choose_plan(view.id, current_code)
    other = next(code for code, rel in plans.items() if rel != "current")
    view = service.choose_plan(view.id, other)
    assert view.kind == "plan_change" and view.due_today_cents == 0 and view.plan.relation == plans[other]
    sign(service, view.id)
    assert service.pay(view.id).ok
    with db.read() as s:
        assert s.get(Membership, view.current_membership_id).plan_id == s.exec(select(Plan.id).where(Plan.code == other)).one()
    assert charges(db) == []


def test_declining_the_terms_cancels_without_charging(lanes: Lanes) -> None:
    service = sale_service(lanes.db)
    view = service.open_for_session(lanes.ivana)
    service.choose_plan(view.id, "ULTIMATE")
    service.review(view.id)
    service.checkout(view.id)
    assert service.decline_terms(view.id).state == "cancelled"
    with pytest.raises(OrderTaken):
        service.pay(view.id)
    assert charges(lanes.db) == []
    # The vehicle can be offered a membership again.
    assert service.open_for_session(lanes.ivana).id != view.id


def test_one_open_sale_per_vehicle_across_terminals(lanes: Lanes) -> None:
    a, b = sale_service(lanes.db, "lane-1-term"), sale_service(lanes.db, "lane-2-term")
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def open_on(name: str, service) -> None:  # noqa: ANN001
        barrier.wait()
        try:
            results[name] = service.open_for_session(lanes.ivana)
        except OrderBusy as exc:
            results[name] = exc

    threads = [threading.Thread(target=open_on, args=(n, svc)) for n, svc in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    busy = [r for r in results.values() if isinstance(r, OrderBusy)]
    assert len(busy) == 1, results
    assert "is already selling a membership to" in str(busy[0])
    with lanes.db.read() as s:
        assert len(s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).all()) == 1
    winner = a if not isinstance(results["a"], OrderBusy) else b
    loser = b if winner is a else a
    order_id = results["a" if winner is a else "b"].id  # type: ignore[union-attr]
    with pytest.raises(OrderTaken):
        loser.choose_plan(order_id, "BASIC")


def test_declined_card_then_another_card(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.unknown)
    service.choose_plan(view.id, "BASIC")
    view = service.set_new_customer(view.id, ContactForm("Ali", "Khan", "+1 512 555 2369", ""))
    service.key_card(view.id, "4000000000000002", "12/30", "123")
    sign(service, view.id)
    result = service.pay(view.id)
    assert not result.ok and "declined" in result.message.lower()
    with db.read() as s:
        order = s.get(SalesOrder, view.id)
        assert order.state == "payment_pending"
        assert s.get(Membership, order.membership_id).status == "cancelled"  # not shown as a member meanwhile
    # Another card from the reader, then Agree again: charged once, on the good card.
    from hardware.card_reader.base import CardToken

    service.attach_reader_card(view.id, CardToken("pm_sim_ok_1234abcd", "mastercard", "4444", 8, 2030))
    assert service.pay(view.id).ok
    assert [(c["amount"], c["pm"]) for c in charges(db)] == [(1999, "pm_sim_ok_1234abcd")]
    with db.read() as s:
        assert s.get(Membership, order.membership_id).status == "active"


def test_network_down_activates_as_pending_sync_then_syncs(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.ivana)
    service.choose_plan(view.id, "BASIC")
    sign(service, view.id)
    service.gateway.online = False
    result = service.pay(view.id)
    assert result.ok and result.pending_sync and "network" in (result.message or "")
    view = service.order(view.id)
    assert view.activated and view.pending_sync
    with db.read() as s:
        m = s.get(Membership, view.membership_id)
        assert (m.status, m.pending_sync) == ("active", True)
    service.gateway.online = True
    assert service.recover() == []  # already activated; the replay syncs it
    with db.read() as s:
        assert s.get(SalesOrder, view.id).state == "completed"
        assert s.get(Membership, view.membership_id).pending_sync is False
    assert [c["amount"] for c in charges(db)] == [1999]


def test_a_stale_draft_from_a_dead_terminal_is_taken_over(lanes: Lanes) -> None:
    import datetime as dt

    from db.models import utcnow

    dead = sale_service(lanes.db, "lane-3-term")
    first = dead.open_for_session(lanes.ivana)
    with lanes.db.write() as s:
        row = s.get(SalesOrder, first.id)
        row.updated_at = utcnow() - dt.timedelta(hours=1)
        s.add(row)
    mine = sale_service(lanes.db).open_for_session(lanes.ivana)
    assert mine.id != first.id
    with lanes.db.read() as s:
        assert s.get(SalesOrder, first.id).state == "cancelled"
        assert s.exec(select(AuditLog).where(AuditLog.action == "order.taken_over")).one()
    with pytest.raises(OrderTaken):
        dead.choose_plan(first.id, "BASIC")


def test_the_sale_service_is_headless() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json, sys, clarity_tui.services.orders\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n")
    # A fresh interpreter, not tests/helpers/forked.py: what a fresh process imports is the point.
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


def test_an_open_order_resumes_only_for_the_operator_who_opened_it(lanes: Lanes) -> None:
    """After an idle sign-out, the next operator at the same terminal must not pick up the first one's sale."""
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.orders import SaleService
    from db.models import Operator

    db = lanes.db
    with db.read() as s:
        alex, morgan = (s.exec(select(Operator).where(Operator.name == name)).one() for name in ("Alex Attendant", "Morgan Manager"))

    def as_operator(op: Operator) -> SaleService:
        return SaleService(db, SimulatedGateway(db), Actor(name=op.name, terminal="lane-1-term", operator_id=op.id),
                           terminal="lane-1-term", today=lambda: TODAY)

    first = as_operator(alex).open_for_session(lanes.ivana)
    with pytest.raises(OrderBusy, match="Alex Attendant is already selling a membership to .* on this terminal"):
        as_operator(morgan).open_for_session(lanes.ivana)
    # Alex, back from the sign-out, gets the same order.
    assert as_operator(alex).open_for_session(lanes.ivana).id == first.id
