"""Payment errors: each carries a message an attendant can act on.

`transient` errors (network down, gateway timeout, rate limit, gateway 5xx,
a key still in flight) leave the order resumable: the outbox keeps the step
pending and replays it later. Everything else is final for that attempt (a
declined card needs another card, a wrong key needs a technician).

`cached_under_key` marks the one transient error that the same key cannot cure:
the gateway stored a 5xx as the key's result, so every retry with that key gets
the same 5xx back. Find out whether the step took effect (look the object up)
and, if it did not, act again under a new key.
"""

from __future__ import annotations

from clarity_tui.errors import UserFacingError


class PaymentError(UserFacingError):
    """Base class. str(error) is the attendant-facing message."""

    transient = False
    code = "payment_error"
    # True: the gateway stored this error as the idempotency key's result (retrying that key replays it).
    cached_under_key = False

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


class KeyInUse(GatewayUnavailable):
    """Another request with the same idempotency key is still executing (Stripe's 409 idempotency_key_in_use).

    Transient, and nothing was stored under the key: retry the same key later. Stripe's
    documentation: "If incoming parameters fail validation, or the request conflicts with another
    request that's executing concurrently, we don't save the idempotent result because no API
    endpoint initiates the execution. You can retry these requests." (docs.stripe.com/api/idempotent_requests)
    """

    code = "idempotency_key_in_use"


class GatewayConflict(GatewayUnavailable):
    """Any other 409 (the object is locked by another request, lock_timeout): retry later."""

    code = "gateway_conflict"


class GatewayServerError(GatewayUnavailable):
    """The gateway answered 5xx. Transient, but the answer is cached under the idempotency key.

    Stripe's documentation: "Stripe’s idempotency works by saving the resulting status code and body
    of the first request made for any given idempotency key, regardless of whether it succeeds or
    fails. Subsequent requests with the same key return the same result, including 500 errors."
    (docs.stripe.com/api/idempotent_requests). So retrying the same key returns this error again:
    look the object up (the step may or may not have taken effect), then act under a new key.
    `replayed` is True when the gateway said this answer is a replay (`Idempotent-Replayed: true`).
    """

    code = "gateway_server_error"
    cached_under_key = True

    def __init__(self, message: str = "The payment gateway had a problem; the order will retry shortly.", *,
                 status: int = 500, replayed: bool = False, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.replayed = replayed


class GatewayAuthError(PaymentError):
    """Wrong or revoked API key: a technician must fix the settings."""

    code = "gateway_auth"


class IdempotencyConflict(PaymentError):
    """The same idempotency key was reused with different parameters (a bug)."""

    code = "idempotency_conflict"


class GatewayRejected(PaymentError):
    """The gateway refused the request (bad parameters, missing object)."""

    code = "gateway_rejected"


class RowGone(GatewayRejected):
    """A row a payment step needs was deleted meanwhile (an order removed on another terminal): final."""

    code = "row_gone"


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
