"""Collecting a gateway's PaymentIntent on the reader (card present, MOTO): the Stripe Terminal driver
against the real stripe SDK with a replaying HTTP client, and the simulated reader."""

from __future__ import annotations

import pytest

from hardware.base import DeviceState
from hardware.card_reader.base import CardReaderError, ReaderPayment
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from hardware.unavailable import UnavailableCardReader
from tests.helpers.stripe_replay import READER, Step, client_for, payment_action, reader

R = f"/v1/terminal/readers/{READER}"


def make(steps: list[Step], **kw) -> tuple[StripeTerminalReader, object]:
    client, http = client_for(steps)
    return StripeTerminalReader(client=client, reader_id=READER, poll_interval=0, **kw), http


async def test_process_payment_intent_hands_the_gateways_intent_to_the_reader_and_waits() -> None:
    device, http = make([
        # "For PaymentIntents that specify setup_future_usage, then allow_redisplay must also be passed."
        Step("POST", f"{R}/process_payment_intent",
             {"payment_intent": "pi_cp_1", "process_config[allow_redisplay]": "always"},
             reader(payment_action("in_progress", pi="pi_cp_1"))),
        Step("GET", R, {}, reader(payment_action("in_progress", pi="pi_cp_1"))),
        Step("GET", R, {}, reader(payment_action("succeeded", pi="pi_cp_1"))),
    ])
    assert device.supports_payment_intents and not device.supports_moto
    result = await device.process_payment_intent("pi_cp_1")
    assert http.done  # no PaymentIntent is created or read here: the gateway owns it
    assert result == ReaderPayment("pi_cp_1", None, False)
    assert device.status.state is DeviceState.CONNECTED


async def test_moto_keys_the_card_on_the_reader_when_the_account_has_it() -> None:
    device, http = make([
        Step("POST", f"{R}/process_payment_intent",
             {"payment_intent": "pi_m", "process_config[allow_redisplay]": "always", "process_config[moto]": "true"},
             reader(payment_action("in_progress", pi="pi_m"))),
        Step("GET", R, {}, reader(payment_action("succeeded", pi="pi_m"))),
    ], moto_enabled=True)
    assert device.supports_moto
    assert (await device.process_payment_intent("pi_m", moto=True)).moto
    assert http.done


async def test_moto_is_refused_without_a_request_when_the_account_lacks_it() -> None:
    device, http = make([])
    with pytest.raises(CardReaderError) as caught:
        await device.process_payment_intent("pi_m", moto=True)
    assert caught.value.code == "unsupported" and "secure link" in str(caught.value)
    assert http.recorded == []


@pytest.mark.parametrize("failure", ["online_or_offline_pin_required", "offline_pin_required", "authentication_required"])
async def test_a_card_that_needs_the_pin_gets_its_own_message(failure: str) -> None:
    device, http = make([
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress"))),
        Step("GET", R, {}, reader(payment_action("failed", failure=failure))),
    ])
    with pytest.raises(CardReaderError) as caught:
        await device.process_payment_intent("pi_123")
    assert caught.value.code == "authentication_required"
    assert "PIN" in str(caught.value) and caught.value.retryable
    assert http.done


async def test_cancel_cancels_the_readers_action_only() -> None:
    device: StripeTerminalReader
    steps = [
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress"))),
        Step("GET", R, {}, reader(payment_action("in_progress")), on_request=lambda: device._cancel.set()),
        Step("POST", f"{R}/cancel_action", {}, reader(None)),
        # No /v1/payment_intents/.../cancel: the payments outbox cancels its own PaymentIntent, with its key.
    ]
    device, http = make(steps)
    with pytest.raises(CardReaderError) as caught:
        await device.process_payment_intent("pi_123")
    assert caught.value.code == "cancelled"
    assert http.done


async def test_the_simulated_reader_returns_the_card_it_read() -> None:
    sim = SimulatedCardReader(delay=0)
    await sim.open()
    result = await sim.process_payment_intent("pi_sim_1")
    assert result.payment_intent_id == "pi_sim_1" and result.card is not None
    assert (result.card.brand, result.card.last4) == ("visa", "4242")
    sim.set_outcome(Outcome.INSUFFICIENT_FUNDS)
    with pytest.raises(CardReaderError) as caught:
        await sim.process_payment_intent("pi_sim_2")
    assert caught.value.code == "insufficient_funds"


async def test_a_reader_without_the_capability_says_so() -> None:
    stand_in = UnavailableCardReader(reason="bad driver", wanted_driver="acme")
    assert not stand_in.supports_payment_intents
    with pytest.raises(CardReaderError) as caught:
        await stand_in.process_payment_intent("pi_1")
    assert caught.value.code == "unsupported"
