"""The simulated card reader: every outcome a real reader has, chosen in advance.

The outcome comes from the hardware screen or the scenario file. Tokens come
from an injectable `tokenize` callable: `pm_sim_<random>` by default, and with
a Stripe gateway the payments code passes one that makes a real test PaymentMethod
(from `SimulatedCard.stripe_test_token`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hardware.base import DeviceState
from hardware.card_reader.base import (
    CardReader,
    CardReaderError,
    CardToken,
    PaymentResult,
    ReaderPayment,
    ReaderSetup,
)


class Outcome(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"
    TIMEOUT = "timeout"
    CARD_REMOVED = "card_removed"
    OFFLINE = "offline"
    BUSY = "busy"


OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.APPROVE: "Approve",
    Outcome.DECLINE: "Decline (generic)",
    Outcome.INSUFFICIENT_FUNDS: "Decline: insufficient funds",
    Outcome.EXPIRED_CARD: "Decline: expired card",
    Outcome.TIMEOUT: "Timeout (no card)",
    Outcome.CARD_REMOVED: "Card removed",
    Outcome.OFFLINE: "Reader offline",
    Outcome.BUSY: "Reader busy",
}

_ERROR_CODE = {
    Outcome.DECLINE: "declined",
    Outcome.INSUFFICIENT_FUNDS: "insufficient_funds",
    Outcome.EXPIRED_CARD: "expired_card",
    Outcome.TIMEOUT: "timeout",
    Outcome.CARD_REMOVED: "card_removed",
    Outcome.OFFLINE: "offline",
    Outcome.BUSY: "busy",
}


@dataclass(frozen=True)
class SimulatedCard:
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    # Stripe's test token for the same brand, for a tokenize callable that makes real test PaymentMethods.
    stripe_test_token: str


TEST_CARDS = (
    SimulatedCard("visa", "4242", 12, 2030, "tok_visa"),
    SimulatedCard("mastercard", "4444", 8, 2029, "tok_mastercard"),
    SimulatedCard("amex", "8431", 3, 2031, "tok_amex"),
)

Tokenize = Callable[[SimulatedCard], str]


def sim_token(_: SimulatedCard) -> str:
    return f"pm_sim_{secrets.token_hex(8)}"


def parse_outcome(value: str) -> Outcome:
    try:
        return Outcome(value.strip().lower())
    except ValueError:
        known = ", ".join(o.value for o in Outcome)
        raise CardReaderError("error", f"Unknown card reader outcome '{value}': use one of {known}.") from None


@dataclass
class SimulatedCardReader(CardReader):
    outcome: Outcome = Outcome.APPROVE
    tokenize: Tokenize | None = None
    # How long the customer takes to present a card, and how long "timeout" waits.
    delay: float = 0.6
    timeout_after: float = 2.0
    card: SimulatedCard = TEST_CARDS[0]
    driver_name: str = field(init=False, default="simulated")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.outcome = parse_outcome(str(self.outcome))
        self._cancelled = asyncio.Event()
        self.actions = 0

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> SimulatedCardReader:
        outcome = context.get("outcome") or options.get("outcome", "approve")
        card = next((c for c in TEST_CARDS if c.brand == str(options.get("brand", "visa")).lower()), TEST_CARDS[0])
        return cls(
            outcome=parse_outcome(str(outcome)),
            tokenize=context.get("tokenize"),
            delay=float(options.get("delay", 0.6)),
            timeout_after=float(options.get("timeout_after", 2.0)),
            card=card,
        )

    @property
    def port_description(self) -> str:
        return f"simulated, next: {self.outcome.value}"

    def set_outcome(self, outcome: Outcome | str) -> None:
        self.outcome = parse_outcome(str(outcome))

    async def open(self) -> None:
        self._set_status(DeviceState.CONNECTED)

    async def close(self) -> None:
        self._set_status(DeviceState.DISCONNECTED)

    async def cancel(self) -> None:
        self._cancelled.set()

    async def _wait(self, seconds: float) -> None:
        """Wait like a reader does; a cancel ends the wait."""
        try:
            await asyncio.wait_for(self._cancelled.wait(), timeout=seconds)
        except TimeoutError:
            return
        self._set_status(DeviceState.CONNECTED)
        raise CardReaderError("cancelled")

    async def _present_card(self) -> SimulatedCard:
        self.actions += 1
        self._cancelled = asyncio.Event()
        outcome = self.outcome
        if outcome is Outcome.OFFLINE:
            await asyncio.sleep(min(self.delay, 0.2))
            error = CardReaderError("offline")
            self._set_status(DeviceState.ERROR, str(error))
            raise error
        if outcome is Outcome.BUSY:
            error = CardReaderError("busy")
            self._set_status(DeviceState.BUSY, str(error))
            await asyncio.sleep(min(self.delay, 0.2))
            self._set_status(DeviceState.CONNECTED)
            raise error
        self._set_status(DeviceState.BUSY, "waiting for a card")
        if outcome is Outcome.TIMEOUT:
            await self._wait(self.timeout_after)
            self._set_status(DeviceState.CONNECTED)
            raise CardReaderError("timeout")
        await self._wait(self.delay)
        self._set_status(DeviceState.CONNECTED)
        if outcome is not Outcome.APPROVE:
            raise CardReaderError(_ERROR_CODE[outcome])
        return self.card

    def _token(self, card: SimulatedCard) -> CardToken:
        tokenize = self.tokenize or sim_token
        return CardToken(tokenize(card), card.brand, card.last4, card.exp_month, card.exp_year)

    async def collect_card_to_save(self, *, customer_id: str | None = None, idempotency_key: str | None = None) -> CardToken:
        card = await self._present_card()
        return await asyncio.to_thread(self._token, card)

    async def collect_payment(
        self,
        amount_cents: int,
        currency: str = "usd",
        *,
        customer_id: str | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentResult:
        if amount_cents <= 0:
            raise CardReaderError("error", f"Cannot charge {amount_cents} cents: the amount must be above zero.")
        card = await self._present_card()
        token = await asyncio.to_thread(self._token, card)
        return PaymentResult(f"pi_sim_{secrets.token_hex(8)}", amount_cents, currency.lower(), token)

    # --- a gateway's PaymentIntent (the simulated gateway learns the card from the returned token) ---

    @property
    def supports_payment_intents(self) -> bool:
        return True

    @property
    def supports_moto(self) -> bool:
        return True

    async def process_payment_intent(self, payment_intent_id: str, *, moto: bool = False,
                                     save_card: bool = True) -> ReaderPayment:
        card = await self._present_card()
        token = await asyncio.to_thread(self._token, card)
        return ReaderPayment(payment_intent_id, token, moto)

    @property
    def supports_setup_intents(self) -> bool:
        return True

    async def process_setup_intent(self, setup_intent_id: str) -> ReaderSetup:
        card = await self._present_card()
        token = await asyncio.to_thread(self._token, card)
        return ReaderSetup(setup_intent_id, token)
