"""Stripe Terminal, server-driven (BBPOS WisePOS E, Stripe Reader S700).

Save a card: SetupIntent (card_present) -> process_setup_intent -> poll the reader
action -> the SetupIntent's latest attempt gives `generated_card`, a reusable
`card` PaymentMethod (brand/last 4/expiry come from it).
Charge: PaymentIntent (card_present) -> process_payment_intent -> poll -> the
PaymentIntent's latest charge gives the card details.
Abort: cancel_action on the reader, then cancel the intent.
Collect a gateway's SetupIntent (`process_setup_intent`): a card saved at the lane is a card_present
SetupIntent the payments outbox creates for the customer (`card_present.save`); the reader only
processes it and waits, and the caller reads the generated card from the SetupIntent.
`collect_card_to_save` (its own SetupIntent) stays for the hardware test screen and CLI.
Collect a gateway's PaymentIntent (`process_payment_intent`): the first payment of a sale is a
card_present PaymentIntent the payments outbox creates (with setup_future_usage, so Stripe keeps a
reusable `generated_card`); the reader only processes it and waits, and the caller reads the result
from the PaymentIntent. With `moto` the attendant keys the card on the reader (an account feature).

The SDK is blocking, so each flow runs in a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hardware.base import DeviceState
from hardware.card_reader.base import (
    CardReader,
    CardReaderError,
    CardToken,
    PaymentResult,
    ReaderPayment,
    ReaderSetup,
)

if TYPE_CHECKING:
    from stripe._base_address import BaseAddresses  # the client's own type for base_addresses
    import stripe

# Reader API errors (StripeError.code) -> our codes and messages.
API_ERRORS: dict[str, tuple[str, str]] = {
    "terminal_reader_offline": ("offline", "Reader offline: check its power and network, then Retry."),
    "terminal_reader_busy": ("busy", "Reader busy with another action: wait a moment or cancel it on the reader, then Retry."),
    "terminal_reader_timeout": ("timeout", "The reader did not answer in time: check its network connection, then Retry."),
}

# Failed reader actions (action.failure_code, or a decline code) -> our codes.
ACTION_FAILURES: dict[str, str] = {
    "card_declined": "declined",
    "generic_decline": "declined",
    "do_not_honor": "declined",
    "insufficient_funds": "insufficient_funds",
    "expired_card": "expired_card",
    "card_removed": "card_removed",
    "customer_canceled": "cancelled",
    "canceled": "cancelled",
    "terminal_reader_timeout": "timeout",
    "terminal_reader_offline": "offline",
    # The issuer wants the cardholder verified: on a reader that means the PIN.
    "authentication_required": "authentication_required",
    "offline_pin_required": "authentication_required",
    "online_or_offline_pin_required": "authentication_required",
}


@dataclass
class StripeTerminalReader(CardReader):
    client: Any = None  # stripe.StripeClient
    reader_id: str = ""
    poll_interval: float = 1.0
    # Give up (cancel_action, then "timeout") when the reader action is still running after this.
    action_timeout: float = 120.0
    # The account has MOTO (keyed entry on the reader) enabled by Stripe: payments.stripe.moto_enabled.
    moto_enabled: bool = False
    driver_name: str = field(init=False, default="stripe_terminal")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> StripeTerminalReader:
        reader_id = port or context.get("terminal_reader_id") or ""
        if not reader_id:
            raise CardReaderError("error", "No Stripe Terminal reader id: set hardware.card_reader.port "
                                  "or payments.stripe.terminal_reader_id (tmr_...).")
        client = context.get("stripe_client")
        if client is None:
            raise CardReaderError("error", "The Stripe Terminal reader needs payments.stripe.api_key in the settings.")
        return cls(
            client=client,
            reader_id=reader_id,
            poll_interval=float(options.get("poll_interval", 1.0)),
            action_timeout=float(options.get("action_timeout", 120.0)),
            moto_enabled=bool(options.get("moto", context.get("moto_enabled", False))),
        )

    @property
    def port_description(self) -> str:
        return f"Stripe Terminal {self.reader_id}"

    # --- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._check_online)

    def _check_online(self) -> None:
        reader = self._call(lambda: self.client.v1.terminal.readers.retrieve(self.reader_id))
        if getattr(reader, "status", None) != "online":
            error = CardReaderError("offline")
            self._set_status(DeviceState.ERROR, str(error))
            raise error
        self._set_status(DeviceState.CONNECTED)

    async def close(self) -> None:
        self._set_status(DeviceState.DISCONNECTED)

    async def cancel(self) -> None:
        self._cancel.set()

    # --- flows ------------------------------------------------------------------------

    async def collect_card_to_save(self, *, customer_id: str | None = None, idempotency_key: str | None = None) -> CardToken:
        return await asyncio.to_thread(self._save_card, customer_id, idempotency_key)

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
        return await asyncio.to_thread(self._charge, amount_cents, currency.lower(), customer_id, description, idempotency_key)

    def _save_card(self, customer_id: str | None, idempotency_key: str | None) -> CardToken:
        with self._action():
            params: dict[str, Any] = {"payment_method_types": ["card_present"], "usage": "off_session"}
            if customer_id:
                params["customer"] = customer_id
            options = {"idempotency_key": f"{idempotency_key}-seti"} if idempotency_key else None
            intent = self._call(lambda: self.client.v1.setup_intents.create(params, options))
            self._call(lambda: self.client.v1.terminal.readers.process_setup_intent(
                self.reader_id, {"setup_intent": intent.id, "allow_redisplay": "always"}))
            action = self._wait_for_action(lambda: self._call(lambda: self.client.v1.setup_intents.cancel(intent.id)))
            intent = self._call(lambda: self.client.v1.setup_intents.retrieve(intent.id, {"expand": ["latest_attempt"]}))
            generated = _generated_card(intent) or _get(action, "process_setup_intent", "generated_card")
            if not generated:
                raise CardReaderError("error", "This card cannot be saved for later payments: ask for another card.")
            pm = self._call(lambda: self.client.v1.payment_methods.retrieve(generated))
            card = pm.card
            return CardToken(pm.id, card.brand, card.last4, int(card.exp_month), int(card.exp_year))

    def _charge(self, amount: int, currency: str, customer_id: str | None, description: str | None,
                idempotency_key: str | None) -> PaymentResult:
        with self._action():
            params: dict[str, Any] = {
                "amount": amount,
                "currency": currency,
                "payment_method_types": ["card_present"],
                "capture_method": "automatic",
            }
            if customer_id:
                params["customer"] = customer_id
            if description:
                params["description"] = description
            options = {"idempotency_key": f"{idempotency_key}-pi"} if idempotency_key else None
            intent = self._call(lambda: self.client.v1.payment_intents.create(params, options))
            self._call(lambda: self.client.v1.terminal.readers.process_payment_intent(
                self.reader_id, {"payment_intent": intent.id}))
            self._wait_for_action(lambda: self._call(lambda: self.client.v1.payment_intents.cancel(intent.id)))
            intent = self._call(lambda: self.client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]}))
            details = _get(intent, "latest_charge", "payment_method_details", "card_present")
            if details is None:
                raise CardReaderError("error", f"Stripe returned payment {intent.id} without card details: check it in the Dashboard.")
            token = CardToken(
                str(_get(intent, "payment_method") or _get(intent, "latest_charge", "payment_method")),
                details.brand, details.last4, int(details.exp_month), int(details.exp_year),
            )
            return PaymentResult(intent.id, int(intent.amount), intent.currency, token, status=intent.status)

    # --- a gateway's PaymentIntent --------------------------------------------------------------

    @property
    def supports_payment_intents(self) -> bool:
        return True

    @property
    def supports_moto(self) -> bool:
        return self.moto_enabled

    async def process_payment_intent(self, payment_intent_id: str, *, moto: bool = False,
                                     save_card: bool = True) -> ReaderPayment:
        if moto and not self.moto_enabled:
            raise CardReaderError("unsupported", "Keyed entry on the reader (MOTO) is not enabled for this Stripe "
                                                 "account: text the customer a secure link instead.")
        return await asyncio.to_thread(self._process_payment_intent, payment_intent_id, moto, save_card)

    def _process_payment_intent(self, payment_intent_id: str, moto: bool, save_card: bool) -> ReaderPayment:
        with self._action():
            config: dict[str, Any] = {}
            if save_card:
                # "For PaymentIntents that specify setup_future_usage, then allow_redisplay must also be
                # passed before collecting card details." (Stripe changelog 2024-09-30.acacia)
                config["allow_redisplay"] = "always"
            if moto:
                # "use process_payment_intent to process the payment, setting process_config[moto] to
                # true. ... the reader prompts you for the cardholder's card number, CVC, expiration
                # date, and postal code." (docs.stripe.com/terminal/features/mail-telephone-orders/payments)
                config["moto"] = True
            params: dict[str, Any] = {"payment_intent": payment_intent_id}
            if config:
                params["process_config"] = config
            self._call(lambda: self.client.v1.terminal.readers.process_payment_intent(self.reader_id, params))
            # The PaymentIntent is the caller's (the payments outbox cancels it): on abort only the
            # reader's action is cancelled here.
            self._wait_for_action(lambda: None)
            return ReaderPayment(payment_intent_id, None, moto)

    # --- a gateway's SetupIntent (a card saved on the reader through the payments outbox) ---------------

    @property
    def supports_setup_intents(self) -> bool:
        return True

    async def process_setup_intent(self, setup_intent_id: str) -> ReaderSetup:
        return await asyncio.to_thread(self._process_setup_intent, setup_intent_id)

    def _process_setup_intent(self, setup_intent_id: str) -> ReaderSetup:
        with self._action():
            # process_setup_intent: "allow_redisplay enum Required. This field indicates whether this payment
            # method can be shown again to its customer in a checkout flow." (API reference)
            self._call(lambda: self.client.v1.terminal.readers.process_setup_intent(
                self.reader_id, {"setup_intent": setup_intent_id, "allow_redisplay": "always"}))
            # The SetupIntent is the caller's (the payments outbox cancels it): on abort only the reader's
            # action is cancelled here.
            self._wait_for_action(lambda: None)
            return ReaderSetup(setup_intent_id, None)

    # --- helpers ----------------------------------------------------------------------------

    class _ActionScope:
        def __init__(self, reader: StripeTerminalReader) -> None:
            self.reader = reader

        def __enter__(self) -> None:
            if not self.reader._lock.acquire(blocking=False):
                raise CardReaderError("busy", "This terminal is already using the reader: finish or cancel that first.")
            self.reader._cancel.clear()
            self.reader._set_status(DeviceState.BUSY, "waiting for a card")

        def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
            self.reader._lock.release()
            if isinstance(exc, CardReaderError) and exc.code == "offline":
                self.reader._set_status(DeviceState.ERROR, str(exc))
            elif self.reader.status.state is DeviceState.BUSY:
                self.reader._set_status(DeviceState.CONNECTED)

    def _action(self) -> _ActionScope:
        return self._ActionScope(self)

    def _call(self, fn: Any) -> Any:
        import stripe

        try:
            return fn()
        except stripe.APIConnectionError as exc:
            raise CardReaderError("offline", "Cannot reach Stripe: check the site's internet connection, then Retry.") from exc
        except stripe.AuthenticationError as exc:
            raise CardReaderError("error", "Stripe rejected the API key: a technician must check payments.stripe.api_key.") from exc
        except stripe.CardError as exc:
            code = ACTION_FAILURES.get(exc.code or "", "declined")
            code = ACTION_FAILURES.get(getattr(exc.error, "decline_code", None) or "", code) if exc.error else code
            raise CardReaderError(code) from exc
        except stripe.StripeError as exc:
            known = API_ERRORS.get(exc.code or "")
            if known:
                raise CardReaderError(known[0], known[1]) from exc
            raise CardReaderError("error", detail=exc.user_message or str(exc)) from exc

    def _wait_for_action(self, cancel_intent: Any) -> Any:
        """Poll the reader until its action ends. On cancel or our deadline: cancel_action, then cancel the intent."""
        deadline = time.monotonic() + self.action_timeout
        while True:
            if self._cancel.wait(self.poll_interval):
                self._abort(cancel_intent)
                raise CardReaderError("cancelled")
            reader = self._call(lambda: self.client.v1.terminal.readers.retrieve(self.reader_id))
            action = getattr(reader, "action", None)
            status = getattr(action, "status", None)
            if status == "succeeded":
                return action
            if status == "failed":
                failure = getattr(action, "failure_code", None) or ""
                code = ACTION_FAILURES.get(failure, "declined" if "decline" in failure else "error")
                message = getattr(action, "failure_message", None)
                raise CardReaderError(code, detail=message if code == "error" else None)
            if action is None:
                # The action vanished (cancelled on the reader or by another terminal).
                raise CardReaderError("cancelled", "The reader dropped the action (cancelled on the reader?): Retry.")
            if time.monotonic() >= deadline:
                self._abort(cancel_intent)
                raise CardReaderError("timeout")

    def _abort(self, cancel_intent: Any) -> None:
        try:
            self._call(lambda: self.client.v1.terminal.readers.cancel_action(self.reader_id))
        finally:
            try:
                cancel_intent()
            except CardReaderError:
                pass  # the intent stays unconfirmed and harmless; Stripe expires it


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = getattr(obj, name, None) if not isinstance(obj, dict) else obj.get(name)
    return obj


def _generated_card(intent: Any) -> str | None:
    generated = _get(intent, "latest_attempt", "payment_method_details", "card_present", "generated_card")
    if generated is not None and not isinstance(generated, str):
        generated = getattr(generated, "id", None)
    return generated


def make_stripe_client(api_key: str, api_base: str | None = None, *, timeout: float = 20.0) -> stripe.StripeClient:
    """The StripeClient the drivers and `doctor` use: no automatic retries (we retry with the attendant)."""
    import stripe

    http_client = stripe.RequestsClient(timeout=timeout)
    base: BaseAddresses = {"api": api_base} if api_base else {}
    return stripe.StripeClient(api_key, base_addresses=base, http_client=http_client, max_network_retries=0)
