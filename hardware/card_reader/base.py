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


@dataclass(frozen=True)
class ReaderPayment:
    """The reader finished its action on a PaymentIntent the gateway created (server-driven flow).

    `card` is what the reader read, for gateways that do not learn it from the reader themselves
    (the simulated one); a Stripe Terminal reader reports straight to Stripe and leaves it None."""

    payment_intent_id: str
    card: CardToken | None = None
    moto: bool = False


@dataclass(frozen=True)
class ReaderSetup:
    """The reader finished its action on a SetupIntent the gateway created (a card saved, no charge).

    `card` is what the reader read, for gateways that do not learn it from the reader themselves."""

    setup_intent_id: str
    card: CardToken | None = None


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
    "authentication_required": "The card needs the customer's PIN: ask them to insert the card and enter the PIN on "
                               "the reader, then Retry.",
    "unsupported": "This card reader cannot do that: take the card another way.",
    "error": "Card reader problem: Retry, or take the payment another way.",
}

# A retry on the same card makes sense for these; the others need another card or a fix.
RETRYABLE = frozenset({"timeout", "card_removed", "offline", "busy", "error", "authentication_required"})


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

    # --- server-driven payments (the gateway creates the PaymentIntent; the reader collects it) ---

    @property
    def supports_payment_intents(self) -> bool:
        """True when `process_payment_intent` works on this reader."""
        return False

    @property
    def supports_moto(self) -> bool:
        """True when the reader can take a card keyed on its own screen (mail/telephone order)."""
        return False

    async def process_payment_intent(self, payment_intent_id: str, *, moto: bool = False,
                                     save_card: bool = True) -> ReaderPayment:
        """Collect the payment of a PaymentIntent the gateway created: the customer taps, inserts or
        swipes (or, with `moto`, the attendant keys the card on the reader). Returns when the reader's
        action has succeeded; raises CardReaderError otherwise (the PaymentIntent is left to the caller).
        `save_card`: the intent saves the card for later payments (the customer agreed to it)."""
        raise CardReaderError("unsupported", f"The {self.driver_name} card reader cannot take a payment started "
                                             "by the gateway: take the card another way.")

    @property
    def supports_setup_intents(self) -> bool:
        """True when `process_setup_intent` works on this reader."""
        return False

    async def process_setup_intent(self, setup_intent_id: str) -> ReaderSetup:
        """Collect the card of a SetupIntent the gateway created, to save it without charging: the customer
        taps, inserts or swipes. Returns when the reader's action has succeeded; raises CardReaderError
        otherwise (the SetupIntent is left to the caller)."""
        raise CardReaderError("unsupported", f"The {self.driver_name} card reader cannot save a card started "
                                             "by the gateway: take the card another way.")
