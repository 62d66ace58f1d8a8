"""Stripe's errors as our PaymentErrors, and card data kept out of the SDK's logs.

Split from stripe_gateway.py: the mapping is the one rule every Stripe call shares (the outbox reads
`transient` and `cached_under_key` from what it returns), and the log filter must be installed before
the first request.
"""

from __future__ import annotations

import logging
import re

import stripe

from clarity_tui.payments import errors as E

log = logging.getLogger("clarity_tui.payments.stripe_gateway")

_CARD_FIELD = re.compile(r"(card(?:\[|%5B)(?:number|cvc)(?:\]|%5D)=)[^&\s\"']*", re.IGNORECASE)


class _RedactCardData(logging.Filter):
    """The SDK logs request bodies at DEBUG ("Post details"): blank card fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "card" in msg.lower():
            redacted = _CARD_FIELD.sub(r"\1[REDACTED]", msg)
            if redacted != msg:
                record.msg, record.args = redacted, None
        return True


def install_log_redaction() -> None:
    """Card fields never reach a log: the "stripe" logger blanks them, and the SDK's own console
    logging is kept from printing request bodies.

    The SDK's README: "Set the environment variable STRIPE_LOG to the value debug or to info" and
    "debug will give more verbose information, and info will be more compact, but omit things like
    request/response bodies." With `debug` it `print`s "Post details" (the form body: a keyed card
    number and CVC) to stderr, bypassing logging filters. So `debug` is lowered to `info` here; the
    bodies still go to the "stripe" logger, through the redacting filter."""
    logger = logging.getLogger("stripe")
    if not any(isinstance(f, _RedactCardData) for f in logger.filters):
        logger.addFilter(_RedactCardData())
    from stripe import _util

    for holder, name in ((stripe, "log"), (_util, "STRIPE_LOG")):
        if str(getattr(holder, name, None) or "").lower() == "debug":
            setattr(holder, name, "info")
            log.warning("STRIPE_LOG=debug would print request bodies (card data) to the console: lowered to "
                        "info; set the 'stripe' logger to DEBUG for redacted bodies.")


def _stripe_error_code(exc: stripe.StripeError) -> str | None:
    """The `code` of Stripe's error body: the SDK sets `exc.code` only for some classes (not APIError)."""
    if exc.code:
        return exc.code
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None) if err is not None else None
    if code:
        return code
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error")
    inner = error if isinstance(error, dict) else {}
    return inner.get("code")


def _replayed(exc: stripe.StripeError) -> bool:
    """Stripe marks a stored answer with `Idempotent-Replayed: true`; the SDK keeps the raw headers only."""
    for name, value in (exc.headers or {}).items():
        if name.lower() == "idempotent-replayed":
            return str(value).lower() == "true"
    return False


def map_stripe_error(exc: Exception) -> E.PaymentError:
    """Turn an SDK exception into a PaymentError with an actionable message.

    Transient (the outbox keeps the step pending): network errors and timeouts, rate limits,
    409s (KeyInUse for `idempotency_key_in_use`, GatewayConflict for the others) and 5xx
    (GatewayServerError, `cached_under_key`: Stripe "saves the status code and body of the first
    request made with a given idempotency key after endpoint execution begins. Retries with the
    same key return the saved response, including 500 errors." -- docs.stripe.com/api/idempotent_requests).
    """
    if isinstance(exc, stripe.StripeError):
        status = getattr(exc, "http_status", None) or 0
        code = _stripe_error_code(exc)
        # The SDK raises a plain APIError for a 409, whatever the body's type: tell them apart by code.
        if code == "idempotency_key_in_use":
            return E.KeyInUse(
                "The payment gateway is still working on this step for another terminal; it will be "
                "checked again shortly."
            )
        if status == 409:
            return E.GatewayConflict(
                "The payment gateway is busy with this customer's records (conflict); the order will retry shortly.",
                code=code,
            )
    if isinstance(exc, stripe.CardError):
        err = exc.error
        decline = getattr(err, "decline_code", None) if err else None
        code = exc.code or (getattr(err, "code", None) if err else None)
        if code == "expired_card" or decline == "expired_card":
            return E.CardExpired()
        if code in ("incorrect_cvc", "invalid_cvc"):
            return E.declined("incorrect_cvc")
        if code in ("incorrect_number", "invalid_number"):
            return E.declined("incorrect_number")
        return E.declined(decline or "generic_decline")
    if isinstance(exc, stripe.APIConnectionError):  # refused, reset, timed out: the answer (if any) is lost
        return E.GatewayUnavailable(
            "Cannot reach the payment gateway (network down or timed out). The order is kept and will "
            "sync when the network is back."
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return E.GatewayAuthError(
            "The payment gateway refused our API key: ask a technician to check payments.stripe.api_key."
        )
    if isinstance(exc, stripe.RateLimitError):
        return E.GatewayUnavailable("The payment gateway is busy (rate limited): the order will retry shortly.")
    if isinstance(exc, stripe.IdempotencyError):
        return E.IdempotencyConflict(
            "The gateway saw this step before with other details; it was not repeated. Ask a technician."
        )
    if isinstance(exc, stripe.InvalidRequestError):
        return E.GatewayRejected(f"The payment gateway refused the request: {exc.user_message or exc}.")
    if isinstance(exc, stripe.APIError):
        status = getattr(exc, "http_status", None) or 0
        if status >= 500:
            return E.GatewayServerError(status=status, replayed=_replayed(exc))
        if status == 0:
            return E.GatewayUnavailable("The payment gateway had a problem; the order will retry shortly.")
        if status == 402:
            return E.declined(getattr(exc, "code", None))
        return E.GatewayRejected(f"The payment gateway refused the request: {exc.user_message or exc}.")
    if isinstance(exc, stripe.StripeError):
        return E.PaymentError(f"Payment gateway error: {exc.user_message or exc}.")
    raise exc
