"""Stripe Terminal (server-driven) driver against the real stripe SDK with a replaying HTTP client."""

from __future__ import annotations

import pytest

from hardware.base import DeviceState
from hardware.card_reader.base import CardReaderError
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from tests.helpers.stripe_replay import READER, Step, api_error, card_payment_method, client_for, payment_action, payment_intent, reader, setup_action, setup_intent

R = f"/v1/terminal/readers/{READER}"


def make(steps: list[Step], **kw) -> tuple[StripeTerminalReader, object]:
    client, http = client_for(steps)
    return StripeTerminalReader(client=client, reader_id=READER, poll_interval=0, **kw), http


SAVE_START = [
    Step("POST", "/v1/setup_intents", {"payment_method_types[0]": "card_present", "usage": "off_session"}, setup_intent()),
    Step("POST", f"{R}/process_setup_intent", {"setup_intent": "seti_123", "allow_redisplay": "always"},
         reader(setup_action("in_progress"))),
]


async def test_save_card_runs_the_documented_sequence_and_returns_the_generated_card() -> None:
    device, http = make([
        *SAVE_START,
        Step("GET", R, {}, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("succeeded", generated="pm_gen_1"))),
        Step("GET", "/v1/setup_intents/seti_123", {"expand[0]": "latest_attempt"},
             setup_intent("succeeded", generated="pm_gen_1")),
        Step("GET", "/v1/payment_methods/pm_gen_1", {}, card_payment_method("pm_gen_1")),
    ])
    token = await device.collect_card_to_save()
    assert http.done
    assert (token.payment_method_id, token.brand, token.last4, token.exp_month, token.exp_year) == (
        "pm_gen_1", "visa", "4242", 12, 2030)
    assert device.status.state is DeviceState.CONNECTED


async def test_save_card_for_a_customer_with_an_idempotency_key() -> None:
    steps = [
        Step("POST", "/v1/setup_intents",
             {"payment_method_types[0]": "card_present", "usage": "off_session", "customer": "cus_9"}, setup_intent()),
        SAVE_START[1],
        Step("GET", R, {}, reader(setup_action("succeeded"))),
        Step("GET", "/v1/setup_intents/seti_123", None, setup_intent("succeeded", generated="pm_gen_2")),
        Step("GET", "/v1/payment_methods/pm_gen_2", {}, card_payment_method("pm_gen_2")),
    ]
    device, http = make(steps)
    token = await device.collect_card_to_save(customer_id="cus_9", idempotency_key="sale-41")
    assert token.payment_method_id == "pm_gen_2"
    assert http.recorded[0].headers.get("Idempotency-Key") == "sale-41-seti"


async def test_charge_runs_the_documented_sequence() -> None:
    device, http = make([
        Step("POST", "/v1/payment_intents", {"amount": "2999", "currency": "usd", "payment_method_types[0]": "card_present",
                                             "capture_method": "automatic", "description": "Deluxe wash"}, payment_intent()),
        Step("POST", f"{R}/process_payment_intent", {"payment_intent": "pi_123"}, reader(payment_action("in_progress"))),
        Step("GET", R, {}, reader(payment_action("in_progress"))),
        Step("GET", R, {}, reader(payment_action("succeeded"))),
        Step("GET", "/v1/payment_intents/pi_123", {"expand[0]": "latest_charge"}, payment_intent("succeeded", charged=True)),
    ])
    result = await device.collect_payment(2999, "USD", description="Deluxe wash", idempotency_key="order-7")
    assert http.done
    assert (result.payment_id, result.amount_cents, result.currency, result.status) == ("pi_123", 2999, "usd", "succeeded")
    assert (result.card.payment_method_id, result.card.brand, result.card.last4) == ("pm_cp_9", "mastercard", "4444")
    assert http.recorded[0].headers.get("Idempotency-Key") == "order-7-pi"


@pytest.mark.parametrize(
    ("code", "ours", "words", "state"),
    [
        ("terminal_reader_offline", "offline", "Reader offline: check its power and network", DeviceState.ERROR),
        ("terminal_reader_busy", "busy", "Reader busy", DeviceState.CONNECTED),
        ("terminal_reader_timeout", "timeout", "did not answer in time", DeviceState.CONNECTED),
    ],
)
async def test_reader_api_errors_become_clear_messages(code: str, ours: str, words: str, state: DeviceState) -> None:
    device, http = make([
        SAVE_START[0],
        Step("POST", f"{R}/process_setup_intent", None, api_error(code, f"Reader {code}"), status=400),
    ])
    with pytest.raises(CardReaderError) as caught:
        await device.collect_card_to_save()
    assert caught.value.code == ours
    assert words in str(caught.value)
    assert http.done
    assert device.status.state is state


@pytest.mark.parametrize(("failure", "ours"), [("card_declined", "declined"), ("insufficient_funds", "insufficient_funds"),
                                               ("expired_card", "expired_card")])
async def test_failed_reader_action_maps_to_declines(failure: str, ours: str) -> None:
    device, http = make([
        Step("POST", "/v1/payment_intents", None, payment_intent()),
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress"))),
        Step("GET", R, {}, reader(payment_action("failed", failure=failure))),
    ])
    with pytest.raises(CardReaderError) as caught:
        await device.collect_payment(500)
    assert caught.value.code == ours
    assert "ask for another card" in str(caught.value)
    assert http.done


async def test_abort_calls_cancel_action_then_cancels_the_intent() -> None:
    device: StripeTerminalReader
    steps = [
        Step("POST", "/v1/payment_intents", None, payment_intent()),
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress"))),
        # The attendant presses Cancel while the reader waits for the card.
        Step("GET", R, {}, reader(payment_action("in_progress")), on_request=lambda: device._cancel.set()),
        Step("POST", f"{R}/cancel_action", {}, reader(None)),
        Step("POST", "/v1/payment_intents/pi_123/cancel", {}, payment_intent("canceled")),
    ]
    device, http = make(steps)
    with pytest.raises(CardReaderError) as caught:
        await device.collect_payment(1500)
    assert caught.value.code == "cancelled"
    assert "nothing was charged" in str(caught.value)
    assert http.done
    assert device.status.state is DeviceState.CONNECTED


async def test_cancel_from_the_ui_sets_the_abort_flag() -> None:
    device, _ = make([])
    await device.cancel()
    assert device._cancel.is_set()


async def test_reader_that_never_finishes_is_cancelled_and_reported_as_timeout() -> None:
    device, http = make([
        *SAVE_START,
        Step("GET", R, {}, reader(setup_action("in_progress"))),
        Step("POST", f"{R}/cancel_action", {}, reader(None)),
        Step("POST", "/v1/setup_intents/seti_123/cancel", {}, setup_intent("canceled")),
    ], action_timeout=0)
    with pytest.raises(CardReaderError) as caught:
        await device.collect_card_to_save()
    assert caught.value.code == "timeout"
    assert http.done


async def test_open_checks_the_reader_is_online() -> None:
    device, http = make([Step("GET", R, {}, reader(None, status="offline"))])
    with pytest.raises(CardReaderError) as caught:
        await device.open()
    assert caught.value.code == "offline"
    assert device.status.state is DeviceState.ERROR
    assert "check its power and network" in (device.last_error or "")

    online, _ = make([Step("GET", R, {}, reader(None))])
    await online.open()
    assert online.status.state is DeviceState.CONNECTED


async def test_unreachable_stripe_is_offline_with_a_network_message() -> None:
    from hardware.card_reader.stripe_terminal import make_stripe_client

    device = StripeTerminalReader(client=make_stripe_client("sk_test_x", "http://127.0.0.1:9", timeout=2),
                                  reader_id=READER, poll_interval=0)
    with pytest.raises(CardReaderError) as caught:
        await device.collect_card_to_save()
    assert caught.value.code == "offline"
    assert "internet connection" in str(caught.value)
    assert device.status.state is DeviceState.ERROR
