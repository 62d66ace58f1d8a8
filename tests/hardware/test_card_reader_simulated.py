"""The simulated card reader: every outcome, injectable tokens, scenario-chosen outcome."""

from __future__ import annotations

import asyncio

import pytest

from clarity_tui.config import Settings
from clarity_tui.devices import build_devices
from clarity_tui.simulator.scenario import Scenario
from hardware.base import DeviceState
from hardware.card_reader.base import CardReaderError
from hardware.card_reader.simulated import Outcome, SimulatedCard, SimulatedCardReader

FAILURES = {
    Outcome.DECLINE: ("declined", "Card declined: ask for another card.", DeviceState.CONNECTED),
    Outcome.INSUFFICIENT_FUNDS: ("insufficient_funds", "insufficient funds: ask for another card", DeviceState.CONNECTED),
    Outcome.EXPIRED_CARD: ("expired_card", "Card expired: ask for another card.", DeviceState.CONNECTED),
    Outcome.TIMEOUT: ("timeout", "No card was presented in time", DeviceState.CONNECTED),
    Outcome.CARD_REMOVED: ("card_removed", "Card removed too soon", DeviceState.CONNECTED),
    Outcome.OFFLINE: ("offline", "Reader offline: check its power and network, then Retry.", DeviceState.ERROR),
    Outcome.BUSY: ("busy", "Reader busy", DeviceState.CONNECTED),
}


async def test_approve_returns_a_sim_token_and_a_payment() -> None:
    reader = SimulatedCardReader(delay=0.01)
    await reader.open()
    token = await reader.collect_card_to_save()
    assert token.payment_method_id.startswith("pm_sim_") and len(token.payment_method_id) > len("pm_sim_")
    assert token.display == "Visa •••• 4242 exp 12/30"
    payment = await reader.collect_payment(2500, "USD")
    assert payment.payment_id.startswith("pi_sim_") and (payment.amount_cents, payment.currency) == (2500, "usd")
    assert payment.card.payment_method_id != token.payment_method_id
    assert reader.status.state is DeviceState.CONNECTED


@pytest.mark.parametrize("outcome", list(FAILURES))
async def test_every_failure_outcome_has_a_code_and_an_actionable_message(outcome: Outcome) -> None:
    code, words, state = FAILURES[outcome]
    reader = SimulatedCardReader(outcome=outcome, delay=0.01, timeout_after=0.02)
    await reader.open()
    with pytest.raises(CardReaderError) as caught:
        await reader.collect_payment(1000)
    assert caught.value.code == code
    assert words in str(caught.value)
    assert reader.status.state is state
    reader.set_outcome("approve")
    assert (await reader.collect_card_to_save()).last4 == "4242"
    assert reader.status.state is DeviceState.CONNECTED  # recovers after the fault clears


async def test_tokenize_is_injectable() -> None:
    seen: list[SimulatedCard] = []

    def tokenize(card: SimulatedCard) -> str:
        seen.append(card)
        return "pm_1PgStripeTest"

    reader = SimulatedCardReader(delay=0.01, tokenize=tokenize)
    token = await reader.collect_card_to_save()
    assert token.payment_method_id == "pm_1PgStripeTest"
    assert seen[0].stripe_test_token == "tok_visa"


async def test_cancel_stops_a_waiting_read() -> None:
    reader = SimulatedCardReader(outcome=Outcome.TIMEOUT, timeout_after=30)
    task = asyncio.create_task(reader.collect_card_to_save())
    while reader.status.state is not DeviceState.BUSY:
        await asyncio.sleep(0.01)
    await reader.cancel()
    with pytest.raises(CardReaderError) as caught:
        await task
    assert caught.value.code == "cancelled"


def test_scenario_and_options_choose_the_outcome() -> None:
    settings = Settings()
    settings.hardware.card_reader.options = {"delay": 0.2, "brand": "amex"}
    reader = build_devices(settings, Scenario(card_reader_outcome="expired_card")).card_reader
    assert isinstance(reader, SimulatedCardReader)
    assert reader.outcome is Outcome.EXPIRED_CARD and reader.card.brand == "amex" and reader.delay == 0.2
    settings.hardware.card_reader.options = {"outcome": "sometimes"}
    broken = build_devices(settings).card_reader
    assert "Unknown card reader outcome 'sometimes'" in broken.status.reason


async def test_zero_amount_is_refused() -> None:
    with pytest.raises(CardReaderError, match="above zero"):
        await SimulatedCardReader(delay=0).collect_payment(0)
