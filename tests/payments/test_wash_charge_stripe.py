"""A single wash paid on a Stripe Terminal reader: the exact requests (issue 18 item 2).

localstripe has no card_present PaymentIntents, no Terminal and no search, so the stripe SDK talks to the
replaying HTTP client the other card-present tests use (tests/helpers/stripe_replay.py): every request,
its parameters and its idempotency key are asserted, in order, and Stripe-shaped answers are replayed.
"""

from __future__ import annotations

from typing import Any

from clarity_tui.payments import CardDeclined
from clarity_tui.payments.stripe_gateway import StripeGateway
from clarity_tui.services.billing import BillingService
from clarity_tui.services.card_present import reader_attended
from clarity_tui.services.outbox import make_key
from clarity_tui.services.wash_payment import WASH_CHARGE, WashCharge, enqueue_wash_charge
from db.engine import Database
from db.models import Outbox, OutboxStatus, SalesOrder
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from tests.helpers.stripe_replay import READER, ReplayHTTPClient, Step, payment_action, reader
from tests.helpers.wash_payment import order_of, rows_of, wash_order, washes_of

R = f"/v1/terminal/readers/{READER}"


def wash_pi(status: str, *, pi: str = "pi_w", customer: str | None = None, decline: str | None = None,
            order_key: str = "", refunded: int = 0) -> dict[str, Any]:
    """A one-off card_present PaymentIntent as Stripe answers it: no setup_future_usage, no generated card."""
    body: dict[str, Any] = {
        "id": pi, "object": "payment_intent", "amount": 1500, "currency": "usd", "status": status,
        "customer": customer, "payment_method_types": ["card_present"], "setup_future_usage": None,
        "capture_method": "automatic", "livemode": False, "payment_method": None, "latest_charge": None,
        "last_payment_error": None, "metadata": {"order_key": order_key} if order_key else {},
    }
    if decline:
        body["last_payment_error"] = {"type": "card_error", "code": "card_declined", "decline_code": decline}
    if status == "succeeded":
        body["payment_method"] = "pm_cp_w"
        body["latest_charge"] = {
            "id": "ch_w", "object": "charge", "amount": 1500, "status": "succeeded", "amount_refunded": refunded,
            "payment_method": "pm_cp_w", "payment_method_details": {"type": "card_present", "card_present": {
                "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "generated_card": None,
                "read_method": "contactless_emv"}}}
    return body


def create_step(order_id: int, order_key: str, customer: str | None = None) -> Step:
    """The documented one-off create: card_present, automatic capture, no setup_future_usage."""
    params = {"amount": "1500", "currency": "usd", "payment_method_types[0]": "card_present",
              "capture_method": "automatic", "metadata[clarity_order]": str(order_id),
              "metadata[order_key]": order_key}
    if customer:
        params["customer"] = customer
    return Step("POST", "/v1/payment_intents", params, wash_pi("requires_payment_method", customer=customer))


def process_steps(final: str, failure: str | None = None) -> list[Step]:
    """The reader takes the payment: no process_config (no allow_redisplay: the card is not saved)."""
    return [Step("POST", f"{R}/process_payment_intent", {"payment_intent": "pi_w"},
                 reader(payment_action("in_progress", pi="pi_w"))),
            Step("GET", R, {}, reader(payment_action(final, pi="pi_w", failure=failure)))]


def stripe_pair(steps: list[Step]) -> tuple[StripeGateway, StripeTerminalReader, ReplayHTTPClient]:
    http = ReplayHTTPClient(steps)
    gw = StripeGateway("sk_test_replay", http_client=http)
    return gw, StripeTerminalReader(client=gw.client, reader_id=READER, poll_interval=0), http


def enqueued(db: Database, order_id: int) -> Outbox:
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        assert order is not None
        return enqueue_wash_charge(s, order)


def test_a_wash_for_nobody_is_a_one_off_card_present_payment(db) -> None:
    order_id = wash_order(db)
    key = order_of(db, order_id).idempotency_key
    row = enqueued(db, order_id)
    assert row.idempotency_key == make_key(key, "wash", "attempt-1")
    gw, device, http = stripe_pair([
        create_step(order_id, key),
        *process_steps("succeeded"),
        Step("GET", "/v1/payment_intents/pi_w", {"expand[0]": "latest_charge"}, wash_pi("succeeded")),
    ])
    with reader_attended(device):
        result = BillingService(db, gw).processor.run_order(order_id)
    assert result.error is None and result.done == [WASH_CHARGE] and http.done
    assert http.recorded[0].headers.get("Idempotency-Key") == row.idempotency_key
    order = order_of(db, order_id)
    assert (order.state, order.gateway_payment_id) == ("completed", "pi_w")
    assert len(washes_of(db, order_id)) == 1
    (done,) = rows_of(db, order_id)
    assert done.result == {"payment_id": "pi_w", "charge_id": "ch_w", "amount_cents": 1500, "brand": "visa",
                           "last4": "4242", "gateway": "stripe"}


def test_a_customer_at_stripe_is_on_the_payment(db) -> None:
    order_id = wash_order(db, customer=True, gateway_customer="cus_9")
    key = order_of(db, order_id).idempotency_key
    enqueued(db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, key, customer="cus_9"),
        *process_steps("succeeded"),
        Step("GET", "/v1/payment_intents/pi_w", None, wash_pi("succeeded", customer="cus_9")),
    ])  # and no customer update afterwards: the card is not made anybody's default
    with reader_attended(device):
        assert BillingService(db, gw).processor.run_order(order_id).error is None
    assert http.done and order_of(db, order_id).state == "completed"


def test_a_decline_cancels_the_payment_under_its_own_key_and_the_wash_stays_payable(db) -> None:
    order_id = wash_order(db)
    key = order_of(db, order_id).idempotency_key
    row = enqueued(db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, key),
        *process_steps("failed", failure="card_declined"),
        Step("GET", "/v1/payment_intents/pi_w", None, wash_pi("requires_payment_method", decline="do_not_honor")),
        Step("POST", "/v1/payment_intents/pi_w/cancel", {}, wash_pi("canceled")),
    ])
    with reader_attended(device):
        result = BillingService(db, gw).processor.run_order(order_id)
    assert http.done and http.recorded[-1].headers.get("Idempotency-Key") == f"{row.idempotency_key}:cancel"
    assert isinstance(result.error, CardDeclined)
    order = order_of(db, order_id)
    assert order.state == "payment_pending" and order.last_error == str(result.error)
    assert rows_of(db, order_id)[-1].status == OutboxStatus.FAILED
    assert enqueued(db, order_id).idempotency_key == make_key(key, "wash", "attempt-2")


def test_a_one_off_payment_is_found_by_its_order_key_listed_then_searched(db) -> None:
    """Recent payments by the list (read-after-write), older ones by search (not immediately consistent)."""
    order_id = wash_order(db)
    key = order_of(db, order_id).idempotency_key
    listing = {"object": "list", "url": "/v1/payment_intents", "has_more": False,
               "data": [wash_pi("succeeded", pi="pi_other", order_key="another-order"),
                        wash_pi("canceled", order_key=key)]}
    found = {"object": "search_result", "url": "/v1/payment_intents/search", "has_more": False,
             "data": [wash_pi("succeeded", order_key=key)]}
    gw, _, http = stripe_pair([
        Step("GET", "/v1/payment_intents", {"limit": "100", "expand[0]": "data.latest_charge"}, listing),
        Step("GET", "/v1/payment_intents/search", {
            "limit": "10", "expand[0]": "data.latest_charge",
            "query": f"metadata['order_key']:'{key}' AND status:'succeeded'"}, found),
    ])
    paid = gw.find_card_present_payment(None, key, save_card=False)
    assert http.done and paid is not None and (paid.payment_id, paid.amount_cents, paid.last4) == ("pi_w", 1500, "4242")


def test_a_replay_a_day_late_records_the_payment_found_in_the_recent_list(db) -> None:
    order_id = wash_order(db)
    key = order_of(db, order_id).idempotency_key
    row = enqueued(db, order_id)
    listing = {"object": "list", "url": "/v1/payment_intents", "has_more": False,
               "data": [wash_pi("succeeded", order_key=key)]}
    gw, _, http = stripe_pair([
        Step("GET", "/v1/payment_intents", {"limit": "100", "expand[0]": "data.latest_charge"}, listing),
    ])
    result = WashCharge().recover(db, gw, row)
    assert http.done and result is not None and result["payment_id"] == "pi_w"
    # A fully refunded one is undone: not found (the wash is then payable again).
    refunded = {**listing, "data": [wash_pi("succeeded", order_key=key, refunded=1500)]}
    gw, _, http = stripe_pair([
        Step("GET", "/v1/payment_intents", None, refunded),
        Step("GET", "/v1/payment_intents/search", None, {"object": "search_result", "data": [], "has_more": False,
                                                         "url": "/v1/payment_intents/search"}),
    ])
    assert WashCharge().recover(db, gw, row) is None and http.done
