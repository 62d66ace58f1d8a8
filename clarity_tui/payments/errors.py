"""Payment errors: each carries a message an attendant can act on.

`transient` errors (network down, gateway timeout, rate limit, gateway 5xx)
leave the order resumable: the outbox keeps the step pending and replays it
later with the same idempotency key. Everything else is final for that
attempt (a declined card needs another card, a wrong key needs a technician).
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base class. str(error) is the attendant-facing message."""

    transient = False
    code = "payment_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidCard(PaymentError):
    """Manually keyed card data that fails local checks (never sent anywhere)."""

    code = "invalid_card"


class CardDeclined(PaymentError):
    code = "card_declined"

    def __init__(self, message: str, *, decline_code: str = "generic_decline") -> None:
        super().__init__(message)
        self.decline_code = decline_code


class CardExpired(CardDeclined):
    code = "expired_card"

    def __init__(self, message: str = "The card has expired: ask for another card.") -> None:
        super().__init__(message, decline_code="expired_card")


class GatewayUnavailable(PaymentError):
    """The gateway could not be reached or did not answer: retry later."""

    transient = True
    code = "gateway_unavailable"


class GatewayAuthError(PaymentError):
    """Wrong or revoked API key: a technician must fix the settings."""

    code = "gateway_auth"


class IdempotencyConflict(PaymentError):
    """The same idempotency key was reused with different parameters (a bug)."""

    code = "idempotency_conflict"


class GatewayRejected(PaymentError):
    """The gateway refused the request (bad parameters, missing object)."""

    code = "gateway_rejected"


class PromotionInvalid(PaymentError):
    code = "promotion_invalid"


DECLINE_MESSAGES = {
    "insufficient_funds": "Card declined: insufficient funds. Ask for another card.",
    "expired_card": "The card has expired: ask for another card.",
    "incorrect_cvc": "Card declined: the security code (CVC) is wrong. Re-enter it or use another card.",
    "incorrect_number": "Card declined: the card number is wrong. Re-enter it or use another card.",
    "lost_card": "Card declined by the bank. Ask for another card (do not say why).",
    "stolen_card": "Card declined by the bank. Ask for another card (do not say why).",
    "fraudulent": "Card declined by the bank. Ask for another card (do not say why).",
    "do_not_honor": "Card declined by the bank (do not honor). Ask for another card.",
    "card_velocity_exceeded": "Card declined: the card's limit is reached. Ask for another card.",
    "processing_error": "The card could not be processed. Try again, or use another card.",
    "generic_decline": "Card declined by the bank. Ask for another card.",
    "card_declined": "Card declined by the bank. Ask for another card.",
}


def declined(decline_code: str | None) -> CardDeclined:
    code = decline_code or "generic_decline"
    if code == "expired_card":
        return CardExpired()
    return CardDeclined(DECLINE_MESSAGES.get(code, DECLINE_MESSAGES["generic_decline"]), decline_code=code)
