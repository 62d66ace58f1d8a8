"""Processing a gateway's SetupIntent on the reader (a card saved through the payments outbox): the Stripe
Terminal driver against the real stripe SDK with a replaying HTTP client, and the simulated reader."""

from __future__ import annotations

import pytest

from hardware.base import DeviceState
from hardware.card_reader.base import CardReaderError, ReaderSetup
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from hardware.unavailable import UnavailableCardReader
from tests.helpers.stripe_replay import READER, Step, client_for, reader, setup_action

R = f"/v1/terminal/readers/{READER}"


def make(steps: list[Step], **kw) -> tuple[StripeTerminalReader, object]:
    client, http = client_for(steps)
    return StripeTerminalReader(client=client, reader_id=READER, poll_interval=0, **kw), http


async def test_process_setup_intent_hands_the_gateways_intent_to_the_reader_and_waits() -> None:
    device, http = make([
        # process_setup_intent: "allow_redisplay ... Required" (API reference).
        Step("POST", f"{R}/process_setup_intent", {"setup_intent": "seti_cp_1", "allow_redisplay": "always"},
             reader(setup_action("in_progress", seti="seti_cp_1"))),
        Step("GET", R, {}, reader(setup_action("in_progress", seti="seti_cp_1"))),
        Step("GET", R, {}, reader(setup_action("succeeded", seti="seti_cp_1", generated="pm_gen_1"))),
    ])
    assert device.supports_setup_intents
    result = await device.process_setup_intent("seti_cp_1")
    assert http.done  # no SetupIntent is created, read or cancelled here: the gateway owns it
    assert result == ReaderSetup("seti_cp_1", None)
    assert device.status.state is DeviceState.CONNECTED


async def test_cancel_cancels_the_readers_action_only() -> None:
    device: StripeTerminalReader
    steps = [
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("in_progress")), on_request=lambda: device._cancel.set()),
        Step("POST", f"{R}/cancel_action", {}, reader(None)),
        # No /v1/setup_intents/.../cancel: the payments outbox cancels its own SetupIntent, with its key.
    ]
    device, http = make(steps)
    with pytest.raises(CardReaderError) as caught:
        await device.process_setup_intent("seti_123")
    assert caught.value.code == "cancelled"
    assert http.done
    assert device.status.state is DeviceState.CONNECTED


async def test_a_reader_that_never_finishes_times_out_and_leaves_the_intent_to_the_caller() -> None:
    device, http = make([
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("in_progress"))),
        Step("POST", f"{R}/cancel_action", {}, reader(None)),
    ], action_timeout=0)
    with pytest.raises(CardReaderError) as caught:
        await device.process_setup_intent("seti_123")
    assert caught.value.code == "timeout"
    assert http.done


@pytest.mark.parametrize(("failure", "ours"), [("card_declined", "declined"), ("expired_card", "expired_card"),
                                               ("online_or_offline_pin_required", "authentication_required")])
async def test_a_failed_reader_action_says_why(failure: str, ours: str) -> None:
    device, http = make([
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("failed", failure=failure))),
    ])
    with pytest.raises(CardReaderError) as caught:
        await device.process_setup_intent("seti_123")
    assert caught.value.code == ours
    assert http.done


async def test_a_busy_reader_is_refused_before_any_request() -> None:
    device, http = make([])
    device._lock.acquire()  # another action of this terminal is running on the reader
    try:
        with pytest.raises(CardReaderError) as caught:
            await device.process_setup_intent("seti_123")
    finally:
        device._lock.release()
    assert caught.value.code == "busy" and http.recorded == []


async def test_the_simulated_reader_returns_the_card_it_read() -> None:
    sim = SimulatedCardReader(delay=0)
    await sim.open()
    assert sim.supports_setup_intents
    result = await sim.process_setup_intent("seti_sim_1")
    assert result.setup_intent_id == "seti_sim_1" and result.card is not None
    assert (result.card.brand, result.card.last4) == ("visa", "4242")
    sim.set_outcome(Outcome.DECLINE)
    with pytest.raises(CardReaderError) as caught:
        await sim.process_setup_intent("seti_sim_2")
    assert caught.value.code == "declined"


async def test_a_reader_without_the_capability_says_so() -> None:
    stand_in = UnavailableCardReader(reason="bad driver", wanted_driver="stripe_terminal")
    assert not stand_in.supports_setup_intents
    with pytest.raises(CardReaderError) as caught:
        await stand_in.process_setup_intent("seti_1")
    assert caught.value.code == "unsupported"
