"""Card readers: save a card without charging, take a payment, cancel.

Only gateway tokens leave a reader (payment-method id, brand, last 4, expiry):
never a card number.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from hardware.base import Device, DeviceError


@dataclass(frozen=True)
class CardToken:
    """A card tokenised by the gateway: all that is ever kept of a card (readers, keyed entry, payments)."""

    payment_method_id: str
    brand: str = "unknown"
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0

    @property
    def display(self) -> str:
        """What may be shown: brand, last 4 and expiry."""
        return f"{self.brand.title()} •••• {self.last4} exp {self.exp_month:02d}/{self.exp_year % 100:02d}"


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    amount_cents: int
    currency: str
    card: CardToken
    status: str = "succeeded"


# Machine codes and what the attendant should do about each.
ERROR_MESSAGES: dict[str, str] = {
    "declined": "Card declined: ask for another card.",
    "insufficient_funds": "Card declined for insufficient funds: ask for another card.",
    "expired_card": "Card expired: ask for another card.",
    "timeout": "No card was presented in time: ask the customer to tap or insert the card, then Retry.",
    "card_removed": "Card removed too soon: ask the customer to insert it again and leave it in until the reader beeps, then Retry.",
    "offline": "Reader offline: check its power and network, then Retry.",
    "busy": "Reader busy with another action: wait a moment or cancel it on the reader, then Retry.",
    "cancelled": "Cancelled: nothing was charged.",
    "error": "Card reader problem: Retry, or take the payment another way.",
}

# A retry on the same card makes sense for these; the others need another card or a fix.
RETRYABLE = frozenset({"timeout", "card_removed", "offline", "busy", "error"})


class CardReaderError(DeviceError):
    def __init__(self, code: str, message: str | None = None, detail: str | None = None) -> None:
        text = message or ERROR_MESSAGES.get(code, ERROR_MESSAGES["error"])
        if detail and not message:
            text = f"{text} ({detail})"
        super().__init__(text, code=code)
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


@dataclass
class CardReader(Device, abc.ABC):
    kind: str = field(init=False, default="card_reader")

    @abc.abstractmethod
    async def collect_card_to_save(self, *, customer_id: str | None = None, idempotency_key: str | None = None) -> CardToken:
        """Read a card and return a reusable gateway token, without charging."""

    @abc.abstractmethod
    async def collect_payment(
        self,
        amount_cents: int,
        currency: str = "usd",
        *,
        customer_id: str | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> PaymentResult:
        """Charge the presented card."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Abort the action in progress (the awaiting call raises CardReaderError code "cancelled")."""
