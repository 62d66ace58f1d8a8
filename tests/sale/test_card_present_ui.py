"""The payment step in Stripe mode with a Stripe Terminal reader (issue 12): the card is taken on the
reader when paying, and keyed entry is a Stripe-hosted page sent by text (no raw card data here)."""

from __future__ import annotations

import datetime as dt
import socket

from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments.stripe_gateway import StripeGateway
from db.models import Customer, PaymentMethod, SalesOrder
from db.models.billing import BillingSync
from tests.helpers.stripe_replay import READER, ReplayHTTPClient, Step
from tests.helpers.stripe_bodies import session_body
from tests.helpers.lanes import Lanes
from hardware.base import DeviceState
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, text_of, wait_until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stripe_settings(settings: Settings) -> Settings:
    """Stripe with a Terminal reader; nothing may reach the internet (a closed local port). The app's outbox
    replay timer shares the test's gateway: it waits an hour, out of the scripted exchange."""
    base = f"http://127.0.0.1:{closed_port()}"
    return settings.model_copy(update={
        "payments": settings.payments.model_copy(update={"gateway": "stripe", "replay_every_seconds": 3600.0,
                                                         "stripe": settings.payments.stripe.model_copy(
            update={"api_key": "sk_test_replay", "api_base": base, "terminal_reader_id": READER,
                    "hosted_page_success_url": "https://wash.example/card-saved"})}),
        "hardware": settings.hardware.model_copy(update={"card_reader": settings.hardware.card_reader.model_copy(
            update={"driver": "stripe_terminal"})}),
        "messaging": settings.messaging.model_copy(update={"poll_interval_seconds": 0.05}),
    })


def option_labels(app) -> list[str]:  # noqa: ANN001
    options = app.screen.query_one("#pay-options")
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


def order_of(db, session_id: int) -> SalesOrder:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id)).one()


async def to_payment(pilot, keys: Keys, lanes: Lanes) -> None:  # noqa: ANN001
    app = pilot.app
    # The app's start-up outbox replay shares the scripted gateway: it ends before the sale writes a row.
    await wait_until(pilot, lambda: not any(w.group == "outbox" for w in app.workers), "the start-up outbox replay")
    # The Terminal reader cannot open (no Stripe here); the pad and camera must.
    await wait_until(pilot, lambda: all(d.status.state is not DeviceState.DISCONNECTED for kind, d in app.devices.items()
                                        if kind != "card_reader"), "pad and camera open")
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    await keys.press("2")
    await at(pilot, "payment")


def another_terminal_leads_the_billing_sync(db) -> None:  # noqa: ANN001
    """The app's billing pass shares the test's gateway: with another machine's terminal leading the sync,
    it makes no request, and the scripted exchange is the lane's alone."""
    with db.write() as s:
        s.merge(BillingSync(name="events", leader="office-pc:1:lease", leader_until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))


async def test_the_card_is_taken_on_the_reader_when_paying(settings, lanes: Lanes) -> None:  # noqa: ANN001
    # No request expected.
    app = sale_app(stripe_settings(settings), lanes.db,
                   gateway=StripeGateway("sk_test_replay", http_client=ReplayHTTPClient([])))
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_payment(pilot, keys, lanes)
        labels = option_labels(app)
        assert "Card on the reader when paying · R" in labels
        assert "Text the customer a secure card link · K" in labels  # no MOTO, no raw card data
        await keys.press("r")
        await wait_until(pilot, lambda: order_of(lanes.db, lanes.ivana).card_present, "the order flagged card present")
        order = order_of(lanes.db, lanes.ivana)
        assert order.payment_method_id is None  # nothing saved first: the reader takes it after Agree


async def test_keyed_entry_texts_a_stripe_hosted_page_and_waits_for_it(settings, lanes: Lanes) -> None:  # noqa: ANN001
    with lanes.db.write() as s:
        ivana = s.get(Customer, lanes.ivana_customer_id)
        ivana.gateway_customer_id = "cus_9"
        s.add(ivana)
        phone = ivana.phone_e164
    http = ReplayHTTPClient([
        Step("POST", "/v1/checkout/sessions", None, session_body("open")),
        # The lane polls until the customer has finished on their phone.
        *[Step("GET", "/v1/checkout/sessions/cs_test_h1", None, session_body("complete", pm="pm_hosted_1"))] * 6,
    ])
    sms = SimulatedSms(responder=None)
    another_terminal_leads_the_billing_sync(lanes.db)
    app = sale_app(stripe_settings(settings), lanes.db, gateway=StripeGateway("sk_test_replay", http_client=http),
                   sms=sms)
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_payment(pilot, keys, lanes)
        await keys.press("k")
        await at(pilot, "hosted-card")
        await keys.press("f5")  # blank: the number on file
        await wait_until(pilot, lambda: bool(sms.sent), "the text message")
        assert sms.sent[0].to == phone and "https://checkout.stripe.com/c/pay/cs_test_h1" in sms.sent[0].body
        await wait_until(pilot, lambda: app.screen.id != "hosted-card", "the page completed")
        assert len(http.recorded) == 2  # one check at a time: the page was complete at the first
        order = order_of(lanes.db, lanes.ivana)
        with lanes.db.read() as s:
            pm = s.get(PaymentMethod, order.payment_method_id)
        assert (pm.gateway_token, pm.last4) == ("pm_hosted_1", "8431")
    assert http.recorded[0].params["mode"] == "setup" and http.recorded[0].params["customer"] == "cus_9"


# --- the whole sale at the lane, card present, through the keys ------------------------------------------

R = f"/v1/terminal/readers/{READER}"
PLAN_PRICE = "clarity-deluxe-2999-month"


def card_present_app(settings, lanes: Lanes, steps: list[Step]):  # noqa: ANN001, ANN201
    """The lane in Stripe mode: the gateway and the Terminal reader share one replaying client, so the
    interleaved requests of both are asserted in order. Ivana is a Stripe customer already (cus_9)."""
    with lanes.db.write() as s:
        ivana = s.get(Customer, lanes.ivana_customer_id)
        ivana.gateway_customer_id = "cus_9"
        s.add(ivana)
    http = ReplayHTTPClient(steps)
    gateway = StripeGateway("sk_test_replay", http_client=http)
    another_terminal_leads_the_billing_sync(lanes.db)
    app = sale_app(stripe_settings(settings), lanes.db, gateway=gateway)
    reader_device = app.devices.card_reader
    assert reader_device.driver_name == "stripe_terminal"
    reader_device.client = gateway.client  # the built driver's transport: the replay, not the network
    reader_device.poll_interval = 0  # the replay answers each poll at once
    return app, http


async def to_reader(pilot, keys: Keys, lanes: Lanes) -> None:  # noqa: ANN001
    """Board -> session -> F2 -> Deluxe -> R (card on the reader when paying) -> summary -> terms ->
    signature -> Agree: the reader screen asks the customer for the card."""
    app = pilot.app
    await wait_until(pilot, lambda: app.devices.card_reader.status.state is DeviceState.CONNECTED, "the reader online")
    await to_payment(pilot, keys, lanes)
    await keys.press("r")
    await at(pilot, "checkout-summary", "the summary after choosing the reader at pay time")
    assert order_of(lanes.db, lanes.ivana).card_present
    await keys.press("enter")  # Checkout
    await at(pilot, "terms")
    await keys.press("f2")  # the attendant presented the terms
    await at(pilot, "signature")
    await signer_done(pilot)
    await keys.press("f5")  # Agree
    await at(pilot, "device-action", "the reader screen")


def reader_step(action_state: str, **kw) -> Step:  # noqa: ANN003
    from tests.helpers.stripe_replay import payment_action, reader

    return Step("GET", R, {}, reader(payment_action(action_state, pi="pi_cp")), **kw)


def charge_key(order: SalesOrder) -> str:
    from clarity_tui.services.outbox import make_key

    return make_key(order.idempotency_key, "card_present", "attempt-1")


def assert_no_saved_card_nor_off_session_charge(http: ReplayHTTPClient) -> None:
    assert not [r for r in http.recorded if r.path.startswith("/v1/setup_intents")]
    assert not [r for r in http.recorded if r.path == "/v1/payment_intents" and r.params.get("off_session") == "true"]


async def test_the_first_payment_is_taken_on_the_reader_after_agree(settings, lanes: Lanes) -> None:  # noqa: ANN001
    import threading

    from tests.helpers.stripe_replay import payment_action, reader
    from tests.helpers.stripe_bodies import customer_body, pi_body

    tapped = threading.Event()  # the customer taps once the attendant's screen asked for the card

    def customer_taps() -> None:
        assert tapped.wait(30), "the reader screen never asked for the card"

    app, http = card_present_app(settings, lanes, [
        Step("GET", R, {}, reader(None)),  # the reader opens: online
        Step("POST", "/v1/payment_intents", None, pi_body("requires_payment_method")),
        Step("POST", f"{R}/process_payment_intent",
             {"payment_intent": "pi_cp", "process_config[allow_redisplay]": "always"},
             reader(payment_action("in_progress", pi="pi_cp"))),
        reader_step("in_progress", on_request=customer_taps),
        reader_step("succeeded"),
        Step("GET", "/v1/payment_intents/pi_cp", {"expand[0]": "latest_charge"}, pi_body("succeeded")),
        Step("POST", "/v1/customers/cus_9", {"invoice_settings[default_payment_method]": "pm_gen_7"},
             customer_body()),
        # subscription.create: the plan exists at Stripe already, then the subscription.
        Step("GET", "/v1/products/clarity-deluxe", None, {"id": "clarity-deluxe", "object": "product"}),
        Step("GET", f"/v1/plans/{PLAN_PRICE}", None, {"id": PLAN_PRICE, "object": "plan"}),
        Step("POST", "/v1/subscriptions", None, {
            "id": "sub_cp", "object": "subscription", "status": "trialing", "cancel_at_period_end": False,
            "pause_collection": None, "trial_end": None,
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                                                  "plan": {"id": PLAN_PRICE, "object": "plan"}}]}}),
    ])
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_reader(pilot, keys, lanes)
        message = text_of(app, "#device-action-message")
        assert "Ask the customer to tap, insert or swipe their card on the reader to pay $29.99" in message
        assert "(Esc cancels)" in message
        tapped.set()
        await at(pilot, "confirmation", "the confirmation after the reader approved")
        text = text_of(app, "#confirm-table")
        assert "Deluxe Wash Club" in text and "$29.99" in text
    assert http.done, [(r.method, r.path) for r in http.recorded]
    order = order_of(lanes.db, lanes.ivana)
    create, process = http.recorded[1], http.recorded[2]
    assert create.params == {
        "amount": "2999", "currency": "usd", "customer": "cus_9", "payment_method_types[0]": "card_present",
        "capture_method": "automatic", "setup_future_usage": "off_session",
        "metadata[clarity_order]": str(order.id), "metadata[order_key]": order.idempotency_key}
    assert create.headers.get("Idempotency-Key") == charge_key(order)
    assert process.params["payment_intent"] == "pi_cp"
    subscription = http.recorded[-1]
    assert (subscription.params["customer"], subscription.params["items[0][plan]"],
            subscription.params["metadata[order_key]"]) == ("cus_9", PLAN_PRICE, order.idempotency_key)
    assert_no_saved_card_nor_off_session_charge(http)
    assert order.state == "completed" and order.gateway_payment_id == "pi_cp"
    assert order.gateway_subscription_id == "sub_cp"
    with lanes.db.read() as s:
        pm = s.get(PaymentMethod, order.payment_method_id)
        defaults = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == lanes.ivana_customer_id,
                                                      PaymentMethod.is_default)).all()
    assert (pm.gateway_token, pm.brand, pm.last4, pm.exp_month, pm.exp_year, pm.is_default) == (
        "pm_gen_7", "mastercard", "4444", 8, 2029, True)
    assert [d.id for d in defaults] == [pm.id]  # the generated card replaced the old default


async def test_esc_on_the_reader_cancels_there_and_nothing_is_charged(settings, lanes: Lanes) -> None:  # noqa: ANN001
    import threading

    from tests.helpers.stripe_replay import payment_action, reader
    from tests.helpers.stripe_bodies import pi_body

    escaped = threading.Event()  # the customer never taps; the attendant presses Esc

    def waiting_for_a_card() -> None:
        assert escaped.wait(30), "Esc never reached the reader screen"

    app, http = card_present_app(settings, lanes, [
        Step("GET", R, {}, reader(None)),
        Step("POST", "/v1/payment_intents", None, pi_body("requires_payment_method")),
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress", pi="pi_cp"))),
        reader_step("in_progress", on_request=waiting_for_a_card),
        Step("POST", f"{R}/cancel_action", None, reader(None)),
        Step("POST", "/v1/payment_intents/pi_cp/cancel", None, pi_body("canceled")),
    ])
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_reader(pilot, keys, lanes)
        await keys.press("escape")
        await wait_until(pilot, lambda: "Cancelling" in text_of(app, "#device-action-message"), "Cancelling…")
        escaped.set()
        await at(pilot, "payment", "back on the payment step after the cancel")
        await wait_until(pilot, lambda: "nothing was charged" in text_of(app, "#pay-message"), "nothing was charged")
        assert "Cancelled on the reader" in text_of(app, "#pay-message")
    assert http.done, [(r.method, r.path) for r in http.recorded]
    order = order_of(lanes.db, lanes.ivana)
    assert http.recorded[-1].headers.get("Idempotency-Key") == f"{charge_key(order)}:cancel"
    assert not [r for r in http.recorded if r.path == "/v1/subscriptions"]
    assert_no_saved_card_nor_off_session_charge(http)
    assert order.state == "payment_pending" and order.gateway_payment_id is None
    assert order.gateway_subscription_id is None
