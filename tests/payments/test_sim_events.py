"""The simulated gateway's events and fresh objects (issue 13): every mutation emits its Stripe event, in
Stripe's shapes; the Events API's order, paging, types filter, cursor and 30-day expiry; retrieve_*.
Real SQLite files and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from clarity_tui.payments.base import ChargeResult, CustomerInfo, PlanSpec
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.errors import GatewayUnavailable
from clarity_tui.payments.lifecycle import (
    HANDLED_EVENT_TYPES,
    CursorExpired,
    TaxRateSpec,
    UnknownObject,
    event_from_json,
)
from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from db.models import SimGatewayObject
from tests.helpers.sim_gateway import FUTURE, bodies, member, noon

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


@pytest.fixture
def gw(db) -> SimulatedGateway:  # noqa: ANN001
    return SimulatedGateway(db)


def after(gw: SimulatedGateway, mark: str | None) -> list[dict]:
    return bodies(gw, mark)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def card(outcome: str = "ok") -> CardToken:
    return CardToken(sim_token(outcome), "visa", "4242", 12, FUTURE)


# --- every mutation ----------------------------------------------------------------------------------------
def test_customers_cards_and_catalogue_emit_their_events(db, gw) -> None:  # noqa: ANN001
    cus = gw.ensure_customer(CustomerInfo("C1", "Ada"), idempotency_key="c")
    gw.ensure_customer(CustomerInfo("C1", "Ada"), idempotency_key="c")  # a replay emits nothing
    first = gw.save_card(cus, card(), idempotency_key="card1").payment_method_id
    second = gw.save_card(cus, card(), idempotency_key="card2", make_default=False).payment_method_id
    with pytest.raises(Exception, match="insufficient"):
        gw.save_card(cus, card("insufficient_funds"), idempotency_key="card3")
    mark = gw.latest_event_id()
    gw.set_default_card(cus, second, idempotency_key="default")
    gw.detach_card(first, idempotency_key="detach")
    gw.sync_plan(PlanSpec("FAMILY", "Family", 5999, extra_vehicle_price_cents=1500))
    gw.sync_plan(PlanSpec("FAMILY", "Family", 5999, extra_vehicle_price_cents=1500))  # already there
    txr = gw.sync_tax_rate(TaxRateSpec("Sales tax", Decimal("8.25"), inclusive=False))
    events = after(gw, mark)
    assert types(events) == ["customer.updated", "payment_method.detached", "product.created", "plan.created",
                             "plan.created", "tax_rate.created"]
    assert events[0]["data"]["previous_attributes"] == {"invoice_settings": {"default_payment_method": first}}
    detached = events[1]["data"]
    assert detached["object"] == {**detached["object"], "id": first, "object": "payment_method", "customer": None}
    assert detached["previous_attributes"] == {"customer": cus}
    assert event_from_json(events[1]).related == {"previous_customer": cus}
    assert events[-1]["data"]["object"] | {"created": None} == {
        "id": txr, "object": "tax_rate", "active": True, "display_name": "Sales tax", "percentage": 8.25,
        "inclusive": False, "created": None, "livemode": False}
    everything = after(gw, None)
    assert types(everything)[:6] == ["customer.created", "setup_intent.succeeded", "payment_method.attached",
                                     "customer.updated", "setup_intent.succeeded", "payment_method.attached"]
    assert types(everything)[6] == "setup_intent.setup_failed"
    for e in everything:
        assert e["object"] == "event" and e["id"].startswith("evt_") and e["livemode"] is False
        assert isinstance(e["created"], int) and e["data"]["object"]["id"]


def test_subscription_changes_are_updated_events_with_previous_attributes(db, gw) -> None:  # noqa: ANN001
    mark = gw.latest_event_id()
    cus, _, sub = member(gw, 10)
    created = after(gw, mark)
    assert types(created)[-1] == "customer.subscription.created"
    body = created[-1]["data"]["object"]
    assert (body["object"], body["status"], body["customer"], body["current_period_end"], body["trial_end"]) == (
        "subscription", "trialing", cus, noon(10), noon(10))
    assert body["items"]["data"][0]["price"]["id"] == "clarity-basic-1999-month" and body["plan"]["amount"] == 1999
    assert body["current_period_start"] <= int(dt.datetime.now(dt.UTC).timestamp()) + 1
    mark = gw.latest_event_id()
    resumes = dt.date.today() + dt.timedelta(days=20)
    gw.pause(sub, idempotency_key="pause", resumes_at=resumes)
    gw.resume(sub, idempotency_key="resume")
    gw.cancel_at_period_end(sub, idempotency_key="cancel")
    gw.cancel_at_period_end(sub, idempotency_key="cancel")  # replayed: one event
    gw.keep_subscription(sub, idempotency_key="keep")
    synced = gw.sync_plan(PlanSpec("FAMILY", "Family", 5999, extra_vehicle_price_cents=1500))
    gw.change_plan(sub, synced.price_id, extra_price_id=synced.extra_price_id, extra_vehicles=2, idempotency_key="up")
    events = [e for e in after(gw, mark) if e["type"].startswith("customer.subscription")]
    assert types(events) == ["customer.subscription.updated"] * 5
    previous = [e["data"]["previous_attributes"] for e in events]
    assert previous[0] == {"pause_collection": None}
    assert events[0]["data"]["object"]["pause_collection"] == {"behavior": "void", "resumes_at": noon(20)}
    assert previous[1] == {"pause_collection": {"behavior": "void", "resumes_at": noon(20)}}
    assert previous[2] == {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}
    assert events[2]["data"]["object"]["cancel_at"] == noon(10)
    assert previous[3]["cancel_at_period_end"] is True and set(previous[3]) == {"cancel_at_period_end", "cancel_at",
                                                                                "canceled_at"}
    assert {"plan", "items", "quantity"} <= set(previous[4])
    items = events[4]["data"]["object"]["items"]["data"]
    assert [(i["price"]["id"], i["quantity"]) for i in items] == [(synced.price_id, 1), (synced.extra_price_id, 2)]
    assert events[4]["data"]["object"]["plan"] is None  # Stripe: two items, no single plan
    for e in events:
        assert event_from_json(e).object_kind == "subscription" and event_from_json(e).related == {"customer": cus}
    state = gw.retrieve_subscription(sub)
    assert (state.status, state.cancel_at_period_end, state.paused, state.price_id) == (
        "trialing", False, False, synced.price_id)


def test_open_invoice_and_paying_it_emit_the_invoice_and_subscription_events(db, gw) -> None:  # noqa: ANN001
    cus, pm, sub = member(gw, 10)
    mark = gw.latest_event_id()
    inv = gw.open_invoice(sub, 2345)
    events = after(gw, mark)
    assert types(events) == ["invoice.created", "invoice.finalized", "invoice.payment_failed",
                             "customer.subscription.updated"]
    failed = events[2]["data"]["object"]
    assert (failed["id"], failed["status"], failed["amount_due"], failed["attempt_count"], failed["subscription"]) == (
        inv, "open", 2345, 1, sub)
    assert events[3]["data"]["previous_attributes"] == {"status": "trialing", "latest_invoice": None}
    state = gw.retrieve_invoice(inv)
    assert (state.status, state.amount_remaining, state.failure_code) == ("open", 2345, "insufficient_funds")
    with pytest.raises(Exception, match="declined"):
        gw.pay_open_invoice(sub, gw.save_card(cus, card("charge_decline"), idempotency_key="bad",
                                              make_default=False).payment_method_id, idempotency_key="pay-bad")
    assert gw.retrieve_invoice(inv).attempt_count == 2
    mark = gw.latest_event_id()
    paid = gw.pay_open_invoice(sub, pm, idempotency_key="pay")
    assert isinstance(paid, ChargeResult) and paid.amount_cents == 2345
    assert gw.pay_open_invoice(sub, pm, idempotency_key="pay") == paid  # replayed: no second payment or event
    events = after(gw, mark)
    assert types(events) == ["payment_intent.succeeded", "invoice.payment_succeeded", "invoice.paid",
                             "customer.subscription.updated"]
    assert events[2]["data"]["object"]["status"] == "paid" and events[2]["data"]["object"]["amount_paid"] == 2345
    assert events[3]["data"]["previous_attributes"] == {"status": "past_due"}
    assert gw.retrieve_subscription(sub).status == "active" and gw.open_invoices(sub) == []
    assert gw.pay_open_invoice(sub, pm, idempotency_key="pay-again") is None  # nothing open


def test_charges_refunds_disputes_and_card_updates(db, gw) -> None:  # noqa: ANN001
    cus, pm, _ = member(gw, 10)
    charge = gw.charge(cus, pm, 2999, idempotency_key="sale")
    mark = gw.latest_event_id()
    gw.refund(charge.payment_id, amount_cents=1000, idempotency_key="refund")
    dispute = gw.open_dispute(charge.charge_id, "fraudulent")
    gw.card_automatically_updated(pm, 3, FUTURE + 2, last4="1881")
    link = gw.create_card_update_link(cus, return_url="https://example.invalid/done", idempotency_key="link")
    assert gw.create_card_update_link(cus, return_url="https://example.invalid/done", idempotency_key="link") == link
    assert link.startswith("https://billing.sim.invalid/p/session/bps_")
    events = after(gw, mark)
    assert types(events) == ["charge.refunded", "charge.dispute.created", "payment_method.automatically_updated",
                             "billing_portal.session.created"]
    refunded = events[0]["data"]
    assert (refunded["object"]["id"], refunded["object"]["amount_refunded"], refunded["object"]["refunded"]) == (
        charge.charge_id, 1000, False)
    assert refunded["previous_attributes"]["amount_refunded"] == 0
    assert [r["amount"] for r in refunded["object"]["refunds"]["data"]] == [1000]
    disputed = event_from_json(events[1])
    assert (disputed.object_id, disputed.object_kind, disputed.related) == (
        dispute, "dispute", {"charge": charge.charge_id})
    assert events[1]["data"]["object"]["reason"] == "fraudulent" and events[1]["data"]["object"]["amount"] == 1999
    updated = events[2]["data"]
    assert updated["object"]["card"]["last4"] == "1881" and updated["object"]["card"]["exp_year"] == FUTURE + 2
    assert updated["previous_attributes"]["card"]["last4"] == "4242"
    assert gw.counts("billing_portal.session") == 1
    state = gw.retrieve_charge(charge.charge_id)
    assert (state.payment_id, state.amount, state.amount_refunded, state.disputed, state.customer_id) == (
        charge.payment_id, 2999, 1000, True, cus)
    assert [r.amount for r in state.refunds] == [1000]
    d = gw.retrieve_dispute(dispute)
    assert (d.charge_id, d.payment_id, d.amount, d.reason, d.status) == (
        charge.charge_id, charge.payment_id, 1999, "fraudulent", "needs_response")
    c = gw.retrieve_card(pm)
    assert (c.customer_id, c.last4, c.exp_month, c.exp_year) == (cus, "1881", 3, FUTURE + 2)


def test_a_trial_ending_with_no_card_pauses_and_resume_bills_a_new_period(db, gw) -> None:  # noqa: ANN001
    cus = gw.ensure_customer(CustomerInfo("C-nocard"), idempotency_key="n:cus")
    price = gw.sync_plan(PlanSpec("BASIC", "Basic", 1999)).price_id
    sub = gw.create_subscription(cus, price, first_billing=dt.date.today() + dt.timedelta(days=2),
                                 idempotency_key="n:sub").subscription_id
    with db.write() as s:  # trial_settings.end_behavior.missing_payment_method = pause (the demo's)
        row = s.get(SimGatewayObject, sub)
        row.data = {**row.data, "missing_payment_method": "pause"}
    mark = gw.latest_event_id()
    gw.advance_clock(3, failure_rate=0.0)
    events = after(gw, mark)
    assert types(events) == ["customer.subscription.updated", "customer.subscription.paused"]
    assert events[0]["data"]["previous_attributes"] == {"status": "trialing"}
    assert gw.retrieve_subscription(sub).status == "paused"
    assert gw.advance_clock(40, failure_rate=0.0).renewals == 0  # a paused subscription bills nothing
    with pytest.raises(Exception, match="declined"):
        gw.resume(sub, idempotency_key="resume-nocard")
    gw.save_card(cus, card(), idempotency_key="n:card")
    mark = gw.latest_event_id()
    gw.resume(sub, idempotency_key="resume")
    events = after(gw, mark)
    assert types(events)[-2:] == ["customer.subscription.updated", "customer.subscription.resumed"]
    assert "invoice.paid" in types(events)
    state = gw.retrieve_subscription(sub)
    assert state.status == "active" and gw.retrieve_invoice(state.latest_invoice_id).status == "paid"


# --- the Events API ----------------------------------------------------------------------------------------
def test_list_events_orders_pages_filters_and_expires(db, gw) -> None:  # noqa: ANN001
    assert gw.latest_event_id() is None
    assert gw.list_events(after=None, types=(), limit=10).events == []
    subs = [member(gw, 3, key=f"e{n}")[2] for n in range(3)]
    everything = gw.list_events(after=None, types=(), limit=100).events
    ids = [e.event_id for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and gw.latest_event_id() == ids[-1]
    # Paging: limit, has_more, and `after` the last one seen, with nothing lost or repeated.
    seen, cursor = [], None
    while True:
        page = gw.list_events(after=cursor, types=(), limit=4)
        seen += [e.event_id for e in page.events]
        assert len(page.events) <= 4
        if not page.has_more:
            break
        cursor = page.events[-1].event_id
    assert seen == ids
    # Types filter: only those types, still oldest first.
    only = gw.list_events(after=None, types=("customer.subscription.created",), limit=2)
    assert [e.object_id for e in only.events] == subs[:2] and only.has_more
    rest = gw.list_events(after=only.events[-1].event_id, types=("customer.subscription.created",), limit=2)
    assert [e.object_id for e in rest.events] == subs[2:] and not rest.has_more
    assert gw.list_events(after=ids[-1], types=(), limit=100).events == []
    with pytest.raises(CursorExpired):
        gw.list_events(after="evt_sim_999999999999_deadbeef", types=(), limit=10)
    # 29 days on the cursor still works; past 30 days of clock time it has expired, as at Stripe.
    gw.advance_clock(29, failure_rate=0.0)
    renewals = gw.list_events(after=ids[-1], types=("invoice.paid",), limit=100).events
    assert [e.type for e in renewals] == ["invoice.paid"] * 3 and all(e.created == dt.datetime.fromtimestamp(
        noon(3), dt.UTC) for e in renewals)
    gw.advance_clock(2, failure_rate=0.0)
    with pytest.raises(CursorExpired):
        gw.list_events(after=ids[-1], types=(), limit=10)
    kept = gw.list_events(after=None, types=(), limit=100).events
    assert kept and kept[0].event_id > ids[-1]  # from the oldest kept


def test_every_handled_event_type_is_emitted(db, gw) -> None:  # noqa: ANN001
    cus, pm, sub = member(gw, 1)
    _, _, declining = member(gw, 1, outcome="charge_decline", key="bad")
    nocard = gw.create_subscription(gw.ensure_customer(CustomerInfo("C-n"), idempotency_key="n"), gw.sync_plan(
        PlanSpec("BASIC", "Basic", 1999)).price_id, first_billing=dt.date.today() + dt.timedelta(days=1),
        idempotency_key="n:sub").subscription_id
    with db.write() as s:
        row = s.get(SimGatewayObject, nocard)
        row.data = {**row.data, "missing_payment_method": "pause"}
    gw.pause(sub, idempotency_key="p", resumes_at=dt.date.today() + dt.timedelta(days=1))
    gw.resume(sub, idempotency_key="r")
    gw.advance_clock(17, failure_rate=0.0)  # sub renews, declining is cancelled, nocard pauses
    gw.save_card(gw.retrieve_subscription(nocard).customer_id, card(), idempotency_key="n:card")
    gw.resume(nocard, idempotency_key="n:resume")
    paid = gw.retrieve_invoice(gw.retrieve_subscription(sub).latest_invoice_id)
    gw.refund(paid.payment_id, amount_cents=500, idempotency_key="refund")
    gw.open_dispute(paid.charge_id, "fraudulent")
    gw.card_automatically_updated(pm, 1, FUTURE + 1)
    gw.detach_card(pm, idempotency_key="detach")
    seen = {e.type for e in gw.list_events(after=None, types=HANDLED_EVENT_TYPES, limit=100).events}
    # Simulated cards never ask for authentication (3-D Secure): payment_action_required is never sent.
    assert seen == set(HANDLED_EVENT_TYPES) - {"invoice.payment_action_required"}


# --- fresh objects and the network ----------------------------------------------------------------------
def test_retrieve_unknown_objects_and_the_network_down(db, gw) -> None:  # noqa: ANN001
    cus, pm, sub = member(gw, 5)
    for call in (gw.retrieve_subscription, gw.retrieve_invoice, gw.retrieve_charge, gw.retrieve_dispute,
                 gw.retrieve_card, gw.open_invoices):
        with pytest.raises(UnknownObject):
            call("nope_123")
    with pytest.raises(UnknownObject):
        gw.retrieve_subscription(pm)  # wrong kind
    gw.online = False
    calls = [lambda: gw.latest_event_id(), lambda: gw.list_events(after=None, types=(), limit=1),
             lambda: gw.retrieve_subscription(sub), lambda: gw.retrieve_card(pm), lambda: gw.open_invoices(sub),
             lambda: gw.create_card_update_link(cus, return_url="https://x.invalid", idempotency_key="l"),
             lambda: gw.sync_tax_rate(TaxRateSpec("Tax", Decimal("5"), inclusive=False)),
             lambda: gw.advance_clock(1, failure_rate=0.0)]
    for call in calls:
        with pytest.raises(GatewayUnavailable):
            call()
    gw.online = True
    assert gw.retrieve_subscription(sub).status == "trialing"
