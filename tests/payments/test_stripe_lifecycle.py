"""StripeGateway's lifecycle calls (issue 13) over real HTTP against the loopback Stripe, official SDK.

The loopback server (stripe_events_server.py) serves the recorded events and objects in
fixtures/stripe_events, the way Stripe's API reference documents them for the pinned version.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlmodel import col

from clarity_tui.payments.errors import GatewayAuthError, GatewayRejected, GatewayServerError
from clarity_tui.payments.lifecycle import (
    CHARGE_EVENTS,
    HANDLED_EVENT_TYPES,
    INVOICE_EVENTS,
    CardState,
    ChargeState,
    CursorExpired,
    DisputeState,
    InvoiceState,
    RefundState,
    SubscriptionState,
    TaxRateSpec,
    UnknownObject,
    event_from_json,
)
from clarity_tui.payments.stripe_gateway import STRIPE_API_VERSION, StripeGateway
from clarity_tui.payments.stripe_lifecycle import _tax_key
from tests.helpers.localstripe import API_KEY
from tests.payments.stripe_events_server import FIXTURES, StripeEventsServer, load_events, load_objects

CUS = "cus_RcLarity7wQx2M"
SUB_MAIN = "sub_1QcLarityMain0001"
PRICE = "clarity-basic-2999-month"


def utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)


@pytest.fixture
def stripe_events() -> Iterator[StripeEventsServer]:
    server = StripeEventsServer().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(stripe_events: StripeEventsServer) -> StripeGateway:
    return StripeGateway(API_KEY, api_base=stripe_events.url, timeout=10)


# --- the recordings -----------------------------------------------------------------------------------------------

def test_recordings_cover_every_handled_type_with_their_objects() -> None:
    events = load_events()
    objects = load_objects()
    assert {e["type"] for e in events} == set(HANDLED_EVENT_TYPES)
    for event_type in HANDLED_EVENT_TYPES:
        assert (FIXTURES / f"{event_type}.json").is_file(), event_type
    for body in events:
        assert body["object"] == "event" and body["api_version"] == STRIPE_API_VERSION
        event = event_from_json(body)
        assert event.object_id in objects, f"{event.type}: no objects/{event.object_id}.json"
        assert objects[event.object_id]["object"] == event.object_kind
    # One customer throughout; every id an object names that is recorded resolves to the right kind.
    customers = {o["customer"] for o in objects.values() if isinstance(o.get("customer"), str)}
    assert customers == {CUS}
    for inv in (o for o in objects.values() if o["object"] == "invoice"):
        assert objects[inv["subscription"]]["object"] == "subscription"
        assert objects[inv["payment_intent"]]["object"] == "payment_intent"
    for sub in (o for o in objects.values() if o["object"] == "subscription"):
        assert sub["latest_invoice"] is None or objects[sub["latest_invoice"]]["subscription"] == sub["id"]
    # The kinds the brief asks for are all there.
    shapes = {
        "paid renewal": any(o["object"] == "invoice" and o["status"] == "paid" and o["billing_reason"] == "subscription_cycle"
                            for o in objects.values()),
        "failed renewal": any(o["object"] == "invoice" and o["status"] == "open" and o["attempt_count"] > 1
                              and o["next_payment_attempt"] for o in objects.values()),
        "pause_collection": any(o["object"] == "subscription" and (o.get("pause_collection") or {}).get("resumes_at")
                                for o in objects.values()),
        "cancel_at_period_end": any(o["object"] == "subscription" and o["cancel_at_period_end"] for o in objects.values()),
        "deleted": any(e["type"] == "customer.subscription.deleted" for e in events),
        "refunded charge": any(o["object"] == "charge" and o["refunded"] for o in objects.values()),
        "dispute": any(o["object"] == "dispute" for o in objects.values()),
        "updated card": any(e["type"] == "payment_method.automatically_updated" for e in events),
        "detached card": any(e["type"] == "payment_method.detached"
                             and e["data"]["previous_attributes"]["customer"] == CUS for e in events),
    }
    assert all(shapes.values()), shapes


# --- the pinned API version -----------------------------------------------------------------------------------------

def test_every_request_names_the_pinned_api_version(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    assert STRIPE_API_VERSION == "2025-02-24.acacia"
    gateway.latest_event_id()
    gateway.list_events(after=None, types=HANDLED_EVENT_TYPES, limit=3)
    gateway.retrieve_subscription(SUB_MAIN)
    gateway.retrieve_invoice("in_1QcLarityFailed01")
    gateway.retrieve_charge("ch_3QcLarityRenew001")
    gateway.retrieve_dispute("dp_1QcLarityDispute1")
    gateway.retrieve_card("pm_1QcLarityVisa4242")
    gateway.open_invoices("sub_1QcLarityPastDue01")
    gateway.create_card_update_link(CUS, return_url="https://wash.example/account", idempotency_key="dun:1")
    gateway.sync_tax_rate(TaxRateSpec("Sales Tax", Decimal("8.25"), False))
    with pytest.raises(UnknownObject):
        gateway.retrieve_invoice("in_missing")
    assert len(stripe_events.requests) >= 11
    assert {r.header("Stripe-Version") for r in stripe_events.requests} == {STRIPE_API_VERSION}


# --- events -------------------------------------------------------------------------------------------------------------

def test_list_events_pages_oldest_first_with_a_types_filter(gateway: StripeGateway,
                                                             stripe_events: StripeEventsServer) -> None:
    wanted = INVOICE_EVENTS + CHARGE_EVENTS
    expected = [e["id"] for e in load_events() if e["type"] in wanted]  # oldest first
    assert len(expected) == 6
    first = gateway.list_events(after=None, types=wanted, limit=2)
    assert [e.event_id for e in first.events] == expected[:2] and first.has_more
    seen, page, pages = [e.event_id for e in first.events], first, 1
    while page.has_more:
        page = gateway.list_events(after=seen[-1], types=wanted, limit=2)
        seen += [e.event_id for e in page.events]
        pages += 1
    assert seen == expected and pages == 3
    # Walking forward from a cursor is `ending_before` (Stripe lists newest first), with types[].
    cursor_calls = [r for r in stripe_events.calls("GET", "/v1/events") if "ending_before" in r.params]
    assert [r.params["ending_before"] for r in cursor_calls] == [expected[1], expected[3]]
    for r in cursor_calls:
        assert sorted(r.values("types")) == sorted(wanted) and r.params["limit"] == "2"
        assert "starting_after" not in r.params
    # The events carry what the handler needs: type, object, its kind and related ids.
    dispute = next(e for e in gateway.list_events(after=None, types=["charge.dispute.created"], limit=10).events)
    assert (dispute.type, dispute.object_id, dispute.object_kind) == ("charge.dispute.created", "dp_1QcLarityDispute1",
                                                                      "dispute")
    assert dispute.related["charge"] == "ch_3QcLarityPrior001"
    assert dispute.created == utc("2026-11-08 17:45:01")


def test_all_recorded_events_in_order_and_new_ones_after_the_cursor(gateway: StripeGateway,
                                                                   stripe_events: StripeEventsServer) -> None:
    everything = [e["id"] for e in load_events()]
    seen: list[str] = []
    page = gateway.list_events(after=None, types=HANDLED_EVENT_TYPES, limit=5)
    seen += [e.event_id for e in page.events]
    while page.has_more:
        page = gateway.list_events(after=seen[-1], types=HANDLED_EVENT_TYPES, limit=5)
        seen += [e.event_id for e in page.events]
    assert seen == everything
    assert gateway.latest_event_id() == everything[-1]
    # Nothing newer yet; then a new event arrives (and one of a type not asked for).
    assert gateway.list_events(after=seen[-1], types=HANDLED_EVENT_TYPES).events == []
    obj = load_objects()["in_1QcLarityFailed01"]
    stripe_events.add_event("invoice.finalized", obj, created=1794700000)
    new = stripe_events.add_event("invoice.payment_failed", obj, created=1794700100)
    page = gateway.list_events(after=seen[-1], types=HANDLED_EVENT_TYPES)
    assert [e.event_id for e in page.events] == [new["id"]] and not page.has_more
    # latest_event_id is the newest event of a handled type.
    assert gateway.latest_event_id() == new["id"]


def test_no_events_at_all() -> None:
    server = StripeEventsServer(events=[]).start()
    try:
        gw = StripeGateway(API_KEY, api_base=server.url, timeout=10)
        assert gw.latest_event_id() is None
        page = gw.list_events(after=None, types=HANDLED_EVENT_TYPES)
        assert page.events == [] and not page.has_more
    finally:
        server.stop()


@pytest.mark.parametrize("status", [404, 400])
def test_an_expired_cursor_is_cursor_expired(gateway: StripeGateway, stripe_events: StripeEventsServer,
                                             status: int) -> None:
    stripe_events.cursor_error_status = status
    oldest = load_events()[0]["id"]
    stripe_events.forget_event(oldest)  # aged out: Stripe keeps events 30 days
    with pytest.raises(CursorExpired):
        gateway.list_events(after=oldest, types=HANDLED_EVENT_TYPES)
    (call,) = stripe_events.calls("GET", "/v1/events")
    assert call.params["ending_before"] == oldest and call.status == status


def test_other_event_errors_are_not_cursor_expired(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    cursor = load_events()[0]["id"]
    stripe_events.fail_next("/v1/events", 500)
    with pytest.raises(GatewayServerError):
        gateway.list_events(after=cursor, types=HANDLED_EVENT_TYPES)
    stripe_events.fail_next("/v1/events", 401, "invalid_request_error", "Invalid API Key provided: sk_test_****")
    with pytest.raises(GatewayAuthError):
        gateway.list_events(after=cursor, types=HANDLED_EVENT_TYPES)
    stripe_events.fail_next("/v1/events", 400, "invalid_request_error", "Invalid array", code="parameter_invalid_empty")
    with pytest.raises(GatewayRejected):
        gateway.list_events(after=cursor, types=HANDLED_EVENT_TYPES)


# --- fresh objects ---------------------------------------------------------------------------------------------------------

def test_retrieve_subscription_cancel_at_period_end(gateway: StripeGateway) -> None:
    assert gateway.retrieve_subscription(SUB_MAIN) == SubscriptionState(
        subscription_id=SUB_MAIN, customer_id=CUS, status="active",
        current_period_start=utc("2026-11-01 12:00:00"), current_period_end=utc("2026-12-01 12:00:00"),
        cancel_at_period_end=True, cancel_at=utc("2026-12-01 12:00:00"), canceled_at=utc("2026-11-14 16:20:00"),
        ended_at=None, paused=False, pause_resumes_at=None, latest_invoice_id="in_1QcLarityRenew001",
        price_id=PRICE, metadata={"clarity_order": "41", "order_key": "order-41"},
    )


def test_retrieve_subscription_with_paused_collection(gateway: StripeGateway) -> None:
    sub = gateway.retrieve_subscription("sub_1QcLarityPauseCol1")
    assert sub == SubscriptionState(
        subscription_id="sub_1QcLarityPauseCol1", customer_id=CUS, status="active",
        current_period_start=utc("2026-11-01 12:00:00"), current_period_end=utc("2026-12-01 12:00:00"),
        cancel_at_period_end=False, cancel_at=None, canceled_at=None, ended_at=None,
        paused=True, pause_resumes_at=utc("2027-01-01 00:00:00"), latest_invoice_id="in_1QcLarityPauseCo01",
        price_id=PRICE, metadata={"clarity_order": "43", "order_key": "order-43"},
    )


def test_retrieve_deleted_paused_and_resumed_subscriptions(gateway: StripeGateway) -> None:
    deleted = gateway.retrieve_subscription("sub_1QcLarityDeleted01")
    assert (deleted.status, deleted.canceled_at, deleted.ended_at, deleted.cancel_at_period_end, deleted.paused) == (
        "canceled", utc("2026-11-12 09:00:01"), utc("2026-11-12 09:00:01"), False, False)
    assert deleted.latest_invoice_id == "in_1QcLarityUncoll01"
    assert (deleted.current_period_start, deleted.current_period_end) == (utc("2026-10-12 08:00:00"),
                                                                          utc("2026-11-12 08:00:00"))
    trial = gateway.retrieve_subscription("sub_1QcLarityTrialPz01")
    # status=paused (a trial that ended without a card) is not pause_collection.
    assert (trial.status, trial.paused, trial.pause_resumes_at, trial.latest_invoice_id) == ("paused", False, None, None)
    resumed = gateway.retrieve_subscription("sub_1QcLarityResumed01")
    assert (resumed.status, resumed.paused, resumed.current_period_end) == ("active", False, utc("2026-12-09 10:00:00"))


def test_retrieve_subscription_reads_the_period_from_its_item(gateway: StripeGateway) -> None:
    # Basil (2025-03-31) and later render the period on the subscription items only.
    raw = load_objects()["sub_1QcLarityBasilItm1"]
    assert "current_period_end" not in raw and raw["items"]["data"][0]["current_period_end"]
    sub = gateway.retrieve_subscription("sub_1QcLarityBasilItm1")
    assert (sub.current_period_start, sub.current_period_end) == (utc("2026-11-01 12:00:00"), utc("2026-12-01 12:00:00"))


def test_retrieve_paid_renewal_invoice(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    assert gateway.retrieve_invoice("in_1QcLarityRenew001") == InvoiceState(
        invoice_id="in_1QcLarityRenew001", customer_id=CUS, subscription_id=SUB_MAIN, status="paid",
        amount_due=3246, amount_paid=3246, amount_remaining=0, tax_cents=247, currency="usd",
        billing_reason="subscription_cycle", attempt_count=1, next_payment_attempt=None,
        # The subscription line's period (the invoice's own period_start/end is the previous period).
        period_start=utc("2026-11-01 12:00:00"), period_end=utc("2026-12-01 12:00:00"),
        payment_id="pi_3QcLarityRenew001", charge_id="ch_3QcLarityRenew001", failure_reason=None, failure_code=None,
        created=utc("2026-11-01 13:00:00"), paid_at=utc("2026-11-01 14:00:00"),
        hosted_invoice_url="https://invoice.stripe.com/i/acct_1QcLarityAcct001/test_1QcLarityRenew001?s=ap",
    )
    (call,) = stripe_events.calls("GET", "/v1/invoices/")
    assert call.values("expand") == ["payment_intent", "charge"]


def test_retrieve_failed_renewal_invoice(gateway: StripeGateway) -> None:
    assert gateway.retrieve_invoice("in_1QcLarityFailed01") == InvoiceState(
        invoice_id="in_1QcLarityFailed01", customer_id=CUS, subscription_id="sub_1QcLarityPastDue01", status="open",
        amount_due=3246, amount_paid=0, amount_remaining=3246, tax_cents=247, currency="usd",
        billing_reason="subscription_cycle", attempt_count=2, next_payment_attempt=utc("2026-11-06 09:00:00"),
        period_start=utc("2026-11-03 08:00:00"), period_end=utc("2026-12-03 08:00:00"),
        payment_id="pi_3QcLarityFailed01", charge_id="ch_3QcLarityFailed01",
        failure_reason="Your card has insufficient funds.", failure_code="insufficient_funds",
        created=utc("2026-11-03 08:00:00"), paid_at=None,
        hosted_invoice_url="https://invoice.stripe.com/i/acct_1QcLarityAcct001/test_1QcLarityFailed01?s=ap",
    )


def test_retrieve_action_required_and_uncollectible_invoices(gateway: StripeGateway) -> None:
    action = gateway.retrieve_invoice("in_1QcLarityAction01")
    assert (action.status, action.attempt_count, action.payment_id, action.charge_id) == (
        "open", 1, "pi_3QcLarityAction01", None)
    assert action.failure_code == "authentication_required"
    assert action.failure_reason == "Your card was declined. This transaction requires authentication."
    lost = gateway.retrieve_invoice("in_1QcLarityUncoll01")
    assert (lost.status, lost.attempt_count, lost.next_payment_attempt, lost.amount_remaining) == (
        "uncollectible", 4, None, 3246)
    assert (lost.subscription_id, lost.failure_reason, lost.failure_code) == (
        "sub_1QcLarityDeleted01", "Your card was declined.", "generic_decline")


def test_open_invoices(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    (inv,) = gateway.open_invoices("sub_1QcLarityPastDue01")
    assert (inv.invoice_id, inv.status, inv.failure_code) == ("in_1QcLarityFailed01", "open", "insufficient_funds")
    assert gateway.open_invoices(SUB_MAIN) == []
    call = stripe_events.calls("GET", "/v1/invoices")[0]
    assert call.params["subscription"] == "sub_1QcLarityPastDue01" and call.params["status"] == "open"
    assert call.values("expand") == ["data.payment_intent", "data.charge"]


def test_invoices_since_filters_by_created_and_pages_oldest_first(gateway: StripeGateway,
                                                                  stripe_events: StripeEventsServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What a sync whose events may be gone reads: the subscription's invoices created since a time."""
    prior, renew = "in_1QcLarityPrior001", "in_1QcLarityRenew001"
    assert [i.invoice_id for i in gateway.invoices_since(SUB_MAIN, utc("2026-10-01 00:00:00"))] == [prior, renew]
    assert [i.invoice_id for i in gateway.invoices_since(SUB_MAIN, utc("2026-11-01 00:00:00"))] == [renew]
    call = stripe_events.calls("GET", "/v1/invoices")[-1]
    assert call.params["subscription"] == SUB_MAIN
    assert call.params["created[gte]"] == str(int(utc("2026-11-01 00:00:00").timestamp()))
    # One invoice a page: the second page starts after the first page's last (newest first) invoice.
    monkeypatch.setattr("clarity_tui.payments.stripe_lifecycle.MAX_PAGE", 1)
    before = len(stripe_events.calls("GET", "/v1/invoices"))
    assert [i.invoice_id for i in gateway.invoices_since(SUB_MAIN, utc("2026-10-01 00:00:00"))] == [prior, renew]
    pages = stripe_events.calls("GET", "/v1/invoices")[before:]
    assert [p.params.get("starting_after") for p in pages] == [None, renew]


def test_retrieve_refunded_charge(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    assert gateway.retrieve_charge("ch_3QcLarityRenew001") == ChargeState(
        charge_id="ch_3QcLarityRenew001", payment_id="pi_3QcLarityRenew001", customer_id=CUS,
        invoice_id="in_1QcLarityRenew001", amount=3246, amount_refunded=3246, disputed=False,
        refunds=[RefundState(refund_id="re_3QcLarityRenew001", amount=3246, status="succeeded",
                             created=utc("2026-11-10 11:30:00"))],
    )
    # Refunds are not in a charge unless expanded (changelog 2022-11-15).
    (call,) = stripe_events.calls("GET", "/v1/charges/")
    assert call.values("expand") == ["refunds"]
    disputed = gateway.retrieve_charge("ch_3QcLarityPrior001")
    assert (disputed.disputed, disputed.refunds, disputed.amount_refunded) == (True, [], 0)


def test_retrieve_dispute(gateway: StripeGateway) -> None:
    assert gateway.retrieve_dispute("dp_1QcLarityDispute1") == DisputeState(
        dispute_id="dp_1QcLarityDispute1", charge_id="ch_3QcLarityPrior001", payment_id="pi_3QcLarityPrior001",
        amount=3246, reason="fraudulent", status="needs_response", created=utc("2026-11-08 17:45:00"),
    )


def test_retrieve_updated_and_detached_cards(gateway: StripeGateway) -> None:
    assert gateway.retrieve_card("pm_1QcLarityVisa4242") == CardState(
        payment_method_id="pm_1QcLarityVisa4242", customer_id=CUS, brand="visa", last4="4242",
        exp_month=12, exp_year=2029)
    assert gateway.retrieve_card("pm_1QcLarityMc4444Old") == CardState(
        payment_method_id="pm_1QcLarityMc4444Old", customer_id=None, brand="mastercard", last4="4444",
        exp_month=3, exp_year=2027)


@pytest.mark.parametrize("call, oid", [
    ("retrieve_subscription", "sub_gone"), ("retrieve_invoice", "in_gone"), ("retrieve_charge", "ch_gone"),
    ("retrieve_dispute", "dp_gone"), ("retrieve_card", "pm_gone"),
])
def test_unknown_objects(gateway: StripeGateway, stripe_events: StripeEventsServer, call: str, oid: str) -> None:
    with pytest.raises(UnknownObject):
        getattr(gateway, call)(oid)
    assert [r.status for r in stripe_events.requests] == [404]


def test_other_retrieve_errors_keep_their_meaning(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    stripe_events.fail_next("/v1/invoices/", 503)
    with pytest.raises(GatewayServerError) as info:
        gateway.retrieve_invoice("in_1QcLarityRenew001")
    assert info.value.transient
    stripe_events.fail_next("/v1/subscriptions/", 400, "invalid_request_error", "This property cannot be expanded")
    with pytest.raises(GatewayRejected):
        gateway.retrieve_subscription(SUB_MAIN)
    stripe_events.fail_next("/v1/charges/", 404, "invalid_request_error", "Unrecognized request URL")
    with pytest.raises(UnknownObject):  # a 404 without code is still "no such object"
        gateway.retrieve_charge("ch_3QcLarityRenew001")


# --- the card-update link ----------------------------------------------------------------------------------------------

def test_card_update_link_is_a_portal_payment_method_update_flow(gateway: StripeGateway,
                                                                  stripe_events: StripeEventsServer) -> None:
    url = gateway.create_card_update_link(CUS, return_url="https://wash.example/account", idempotency_key="dun:7:1")
    assert url.startswith("https://billing.stripe.com/p/session/")
    (call,) = stripe_events.calls("POST", "/v1/billing_portal/sessions")
    assert call.params == {"customer": CUS, "return_url": "https://wash.example/account",
                           "flow_data[type]": "payment_method_update"}
    assert call.header("Idempotency-Key") == "dun:7:1"
    # The same key again (an outbox replay) is Stripe's stored answer: the same link.
    again = gateway.create_card_update_link(CUS, return_url="https://wash.example/account", idempotency_key="dun:7:1")
    assert again == url
    assert stripe_events.calls("POST", "/v1/checkout/sessions") == []


def test_card_update_link_falls_back_to_checkout_without_a_portal(gateway: StripeGateway,
                                                                  stripe_events: StripeEventsServer) -> None:
    stripe_events.portal_configured = False
    url = gateway.create_card_update_link(CUS, return_url="https://wash.example/account", idempotency_key="dun:8:1")
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    portal, checkout = stripe_events.requests
    assert (portal.path, portal.status, portal.header("Idempotency-Key")) == ("/v1/billing_portal/sessions", 400,
                                                                               "dun:8:1")
    assert checkout.path == "/v1/checkout/sessions" and checkout.status == 200
    assert checkout.header("Idempotency-Key") == "dun:8:1:checkout"
    assert checkout.params["mode"] == "setup" and checkout.params["customer"] == CUS
    assert checkout.params["success_url"] == "https://wash.example/account"
    assert checkout.params["currency"] == "usd" and checkout.values("payment_method_types") == ["card"]


def test_card_update_link_other_portal_errors_are_not_hidden(gateway: StripeGateway,
                                                             stripe_events: StripeEventsServer) -> None:
    stripe_events.fail_next("/v1/billing_portal/sessions", 404, "invalid_request_error", "No such customer: 'cus_x'",
                            code="resource_missing")
    with pytest.raises(GatewayRejected):
        gateway.create_card_update_link("cus_x", return_url="https://wash.example/a", idempotency_key="dun:9:1")
    assert stripe_events.calls("POST", "/v1/checkout/sessions") == []


# --- tax rates ---------------------------------------------------------------------------------------------------------

def test_sync_tax_rate_finds_the_matching_rate(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    assert gateway.sync_tax_rate(TaxRateSpec("Sales Tax", Decimal("8.250"), False)) == "txr_1QcLaritySalesTx"
    assert stripe_events.calls("POST", "/v1/tax_rates") == []
    (call,) = stripe_events.calls("GET", "/v1/tax_rates")
    assert call.params["active"] == "true"


def test_sync_tax_rate_creates_one_once(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    inclusive = TaxRateSpec("Sales Tax", Decimal("8.25"), True)  # same name and rate, but inclusive: another rate
    made = gateway.sync_tax_rate(inclusive)
    assert made.startswith("txr_") and made != "txr_1QcLaritySalesTx"
    (post,) = stripe_events.calls("POST", "/v1/tax_rates")
    assert post.params["display_name"] == "Sales Tax" and post.params["inclusive"] == "true"
    assert Decimal(post.params["percentage"]) == Decimal("8.25")
    assert post.header("Idempotency-Key") == _tax_key(inclusive)
    # Found next time; the key is the spec's own (the same spec, the same key; another spec, another key).
    assert gateway.sync_tax_rate(TaxRateSpec("Sales Tax", Decimal("8.250"), True)) == made
    assert len(stripe_events.calls("POST", "/v1/tax_rates")) == 1
    assert _tax_key(TaxRateSpec("Sales Tax", Decimal("8.250"), True)) == _tax_key(inclusive)
    assert len({_tax_key(inclusive), _tax_key(TaxRateSpec("Sales Tax", Decimal("8.25"), False)),
                _tax_key(TaxRateSpec("Sales Tax", Decimal("8.5"), True)),
                _tax_key(TaxRateSpec("City Tax", Decimal("8.25"), True))}) == 4


def test_sync_tax_rate_looks_through_every_page(gateway: StripeGateway, stripe_events: StripeEventsServer) -> None:
    for n in range(150):  # newer rates that do not match push ours to the second page
        stripe_events.objects[f"txr_other{n:03d}"] = {
            "id": f"txr_other{n:03d}", "object": "tax_rate", "active": True, "created": 1794000000 + n,
            "display_name": f"Other {n}", "percentage": 1.0, "inclusive": False}
    assert gateway.sync_tax_rate(TaxRateSpec("Sales Tax", Decimal("8.25"), False)) == "txr_1QcLaritySalesTx"
    first, second = stripe_events.calls("GET", "/v1/tax_rates")
    assert "starting_after" not in first.params and second.params["starting_after"] == "txr_other050"
    assert stripe_events.calls("POST", "/v1/tax_rates") == []


def test_subscription_snapshot_is_what_the_event_carried() -> None:
    # The recorded event bodies are whole objects in the pinned version's shape (the handler trusts ids only).
    body = json.loads((FIXTURES / "customer.subscription.updated@pause_collection.json").read_text())
    assert body["data"]["object"]["pause_collection"] == {"behavior": "void", "resumes_at": 1798761600}
    assert body["data"]["previous_attributes"] == {"pause_collection": None}


# --- end to end: every recorded event through the billing sync -----------------------------------------------------------

# What each recorded event changes in the database, from the objects as Stripe serves them now:
# memberships by subscription: (status, gateway status, paid_through, resumes_on, cancel_at_period_end, expires_on);
# payment rows by (kind, object): (amount, status, reason, the membership's subscription);
# cards by payment method: (last4, expiry month, expiry year, detached).
D = dt.date
RECORDED_EFFECTS: dict[str, dict[str, dict]] = {
    # A paid renewal: the period runs to Dec 1 (cancel at period end: it expires then); a renewal row.
    "invoice.paid@in_1QcLarityRenew001": {
        "members": {SUB_MAIN: ("active", "active", D(2026, 12, 1), None, True, D(2026, 12, 1))},
        "payments": {("renewal", "in_1QcLarityRenew001"): (3246, "paid", None, SUB_MAIN)}},
    # Two failed attempts: past due from the unpaid period's start, one failed row per attempt, with the reason.
    "invoice.payment_failed@in_1QcLarityFailed01": {
        "members": {"sub_1QcLarityPastDue01": ("past_due", "past_due", D(2026, 11, 3), None, False, None)},
        "payments": {("renewal_failed", f"in_1QcLarityFailed01#{n}"):
                     (3246, "failed", "Your card has insufficient funds.", "sub_1QcLarityPastDue01") for n in (1, 2)}},
    # Collection paused until Jan 1 2027 (Stripe's status stays active): PAUSED locally, with the resume date.
    "customer.subscription.updated@sub_1QcLarityPauseCol1": {
        "members": {"sub_1QcLarityPauseCol1": ("paused", "active", D(2026, 12, 1), D(2027, 1, 1), False, None)}},
    # 3-D Secure needed: past due, the attempt a failed row with the authentication reason.
    "invoice.payment_action_required@in_1QcLarityAction01": {
        "members": {"sub_1QcLarity3dsAuth01": ("past_due", "past_due", D(2026, 11, 5), None, False, None)},
        "payments": {("renewal_failed", "in_1QcLarityAction01#1"):
                     (3246, "failed", "Your card was declined. This transaction requires authentication.",
                      "sub_1QcLarity3dsAuth01")}},
    # A trial ended with no card: Stripe paused the subscription.
    "customer.subscription.paused@sub_1QcLarityTrialPz01": {
        "members": {"sub_1QcLarityTrialPz01": ("paused", "paused", None, None, False, None)}},
    # The card network renewed the card: the new expiry.
    "payment_method.automatically_updated@pm_1QcLarityVisa4242": {
        "cards": {"pm_1QcLarityVisa4242": ("4242", 12, 2029, False)}},
    # A dispute of the earlier renewal's charge: a dispute row on the membership that paid it.
    "charge.dispute.created@dp_1QcLarityDispute1": {
        "payments": {("dispute", "dp_1QcLarityDispute1"): (3246, "needs_response", "fraudulent", SUB_MAIN)}},
    # Resumed: active, paid through the period's end.
    "customer.subscription.resumed@sub_1QcLarityResumed01": {
        "members": {"sub_1QcLarityResumed01": ("active", "active", D(2026, 12, 9), None, False, None)}},
    # The renewal refunded in full: a refund row.
    "charge.refunded@ch_3QcLarityRenew001": {
        "payments": {("refund", "re_3QcLarityRenew001"): (3246, "succeeded", None, SUB_MAIN)}},
    # The last retry failed: four failed rows; the subscription retrieved with it is already canceled.
    "invoice.marked_uncollectible@in_1QcLarityUncoll01": {
        "members": {"sub_1QcLarityDeleted01": ("cancelled", "canceled", D(2026, 11, 12), None, False,
                                               D(2026, 11, 12))},
        "payments": {("renewal_failed", f"in_1QcLarityUncoll01#{n}"):
                     (3246, "failed", "Your card was declined.", "sub_1QcLarityDeleted01") for n in (1, 2, 3, 4)}},
    # Already applied from the fresh subscription the invoice event retrieved: nothing left to change.
    "customer.subscription.deleted@sub_1QcLarityDeleted01": {},
    # The old card taken off the customer: detached (and no longer the default).
    "payment_method.detached@pm_1QcLarityMc4444Old": {
        "cards": {"pm_1QcLarityMc4444Old": ("4444", 3, 2027, True)}},
    # The same subscription invoice.paid retrieved fresh already: nothing left to change.
    "customer.subscription.updated@sub_1QcLarityMain0001": {},
}


def test_every_recorded_event_through_the_billing_sync(sim_file_db, gateway: StripeGateway,  # noqa: ANN001
                                                       stripe_events: StripeEventsServer) -> None:
    """Each recorded event, as the Events API lists it, goes through StripeGateway (fresh objects from the
    loopback Stripe) and BillingSync.handle_event on a migrated SQLite file, one at a time, and changes what
    RECORDED_EFFECTS says and nothing else; a second delivery is a duplicate and changes nothing."""
    from sqlmodel import select

    from clarity_tui.config import Settings
    from clarity_tui.services.billing_sync import BillingSync
    from clarity_tui.seeding.demo import seed_demo
    from db.models import Membership, PaymentMethod
    from db.models_billing import MembershipPayment

    seed_demo(sim_file_db, customers=30, legacy=0)
    subs = sorted(oid for oid, o in load_objects().items() if o["object"] == "subscription")
    with sim_file_db.write() as s:
        members = s.exec(select(Membership).order_by(Membership.id)).all()
        assert len(members) >= len(subs)
        for m, sub_id in zip(members, subs, strict=False):
            m.gateway_subscription_id = sub_id
            s.add(m)
        owner = members[0].customer_id
        s.add(PaymentMethod(customer_id=owner, gateway="stripe", gateway_token="pm_1QcLarityVisa4242", brand="visa",
                            last4="4242", exp_month=12, exp_year=2026, is_default=True))
        s.add(PaymentMethod(customer_id=owner, gateway="stripe", gateway_token="pm_1QcLarityMc4444Old",
                            brand="mastercard", last4="4444", exp_month=3, exp_year=2027))

    def state() -> dict[str, dict]:
        with sim_file_db.read() as s:
            ms = s.exec(select(Membership).where(col(Membership.gateway_subscription_id).in_(subs))).all()
            sub_of = {m.id: m.gateway_subscription_id for m in ms}
            return {
                "members": {m.gateway_subscription_id: (m.status, m.gateway_status, m.paid_through, m.resumes_on,
                                                        m.cancel_at_period_end, m.expires_on) for m in ms},
                "payments": {(p.kind, p.gateway_object_id): (p.amount_cents, p.status, p.reason,
                                                             sub_of.get(p.membership_id))
                             for p in s.exec(select(MembershipPayment))},
                "cards": {p.gateway_token: (p.last4, p.exp_month, p.exp_year, p.detached_at is not None)
                          for p in s.exec(select(PaymentMethod).where(PaymentMethod.gateway == "stripe"))},
            }

    def changes(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict]:
        found = {}
        for part in ("members", "payments", "cards"):
            changed = {k: v for k, v in after[part].items() if before[part].get(k) != v}
            assert set(before[part]) <= set(after[part])  # nothing is ever deleted
            if changed:
                found[part] = changed
        return found

    sync = BillingSync(sim_file_db, gateway, Settings(site={"timezone": "UTC"}), terminal="lane-1-term")
    events, page = [], gateway.list_events(after=None, types=HANDLED_EVENT_TYPES, limit=100)
    events += page.events
    assert not page.has_more and len(events) == len(load_events())
    assert [f"{e.type}@{e.object_id}" for e in events] == list(RECORDED_EFFECTS)  # oldest first
    before = state()
    for e in events:
        key = f"{e.type}@{e.object_id}"
        assert sync.handle_event(e, source="sync") == "processed", key
        after = state()
        assert changes(before, after) == RECORDED_EFFECTS[key], key
        before = after
    with sim_file_db.read() as s:
        default = s.exec(select(PaymentMethod).where(PaymentMethod.gateway_token == "pm_1QcLarityMc4444Old")).one()
        assert default.is_default is False and default.detached_at is not None
    assert [sync.handle_event(e, source="webhook") for e in events] == ["duplicate"] * len(events)
    assert state() == before
    # The gateway was asked only for fresh objects, at the pinned version.
    assert {r.header("Stripe-Version") for r in stripe_events.requests} == {STRIPE_API_VERSION}
    assert {r.method for r in stripe_events.requests} == {"GET"}
