"""Stripe in person: card-present PaymentIntents on a Terminal reader, and the Stripe-hosted card page.

A mixin of StripeGateway (split from stripe_gateway.py to keep each module to one job): it uses the
gateway's `_call`, `v1` and `currency`.
"""

from __future__ import annotations

from typing import Any

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import CardPresentPayment, CardPresentSetup, HostedCardPage
from clarity_tui.payments.cards import CardToken


def _val(obj: Any, name: str, default: Any = None) -> Any:
    try:
        value = obj[name]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


class StripeInPerson:
    """Card present on the reader, MOTO, and the texted card page (issue 12, item 9)."""

    raw_card_data_access: bool
    currency: str
    _call: Any
    v1: Any

    @property
    def keyed_entry_allowed(self) -> bool:
        return self.raw_card_data_access

    def create_card_present_payment(self, customer_id: str | None, amount_cents: int, *, currency: str = "usd",
                                    metadata: dict[str, str] | None = None, moto: bool = False,
                                    save_card: bool = True, idempotency_key: str) -> CardPresentPayment:
        # "Request a generated_card when you create a PaymentIntent by specifying a value for
        # setup_future_usage. ... If the PaymentIntent has an associated Customer, the generated_card
        # automatically attaches to that Customer." (docs.stripe.com/terminal/features/saving-cards/
        # save-after-payment). MOTO: "you must create a PaymentIntent with payment_method_types that
        # includes card" (docs.stripe.com/terminal/features/mail-telephone-orders/payments); that card
        # itself is saved on the customer by setup_future_usage.
        # A one-off payment (a single wash): "For Terminal payments, the payment_method_types parameter must
        # include card_present" (docs.stripe.com/terminal/payments/collect-card-payment), with no
        # setup_future_usage, so no generated_card is made and nothing is kept.
        params: dict[str, Any] = {"amount": amount_cents, "currency": currency or self.currency,
                                  "payment_method_types": ["card" if moto else "card_present"],
                                  "capture_method": "automatic", "metadata": metadata or {}}
        if customer_id:
            params["customer"] = customer_id
        if save_card:
            if not customer_id:
                raise E.GatewayRejected("A card kept for renewals needs the customer: sync the customer first.")
            params["setup_future_usage"] = "off_session"
        pi = self._call(self.v1.payment_intents.create, key=idempotency_key, **params)
        return self._card_present(pi)

    def card_present_payment(self, payment_id: str, *, presented: CardToken | None = None,
                             idempotency_key: str) -> CardPresentPayment:
        # The reader reported to Stripe itself (`presented` is for readers that do not): read it back.
        # "When you request a generated_card, always verify that the PaymentIntent.latest_charge
        # contains a generated_card." (save-after-payment)
        return self._card_present(self._retrieve_card_present(payment_id))

    def _retrieve_card_present(self, payment_id: str) -> Any:
        return self._call(self.v1.payment_intents.retrieve, payment_id, expand=["latest_charge"])

    def cancel_card_present_payment(self, payment_id: str, *, idempotency_key: str) -> CardPresentPayment:
        try:
            pi = self._call(self.v1.payment_intents.cancel, payment_id, key=idempotency_key)
        except E.GatewayRejected:
            # Not cancellable: paid meanwhile (the reader finished after all), or already cancelled.
            current = self._card_present(self._retrieve_card_present(payment_id))
            if current.succeeded or current.status == "canceled":
                return current
            raise
        return self._card_present(pi)

    def find_card_present_payment(self, customer_id: str | None, order_key: str, *, save_card: bool = True,
                                  include_refunded: bool = False) -> CardPresentPayment | None:
        if not save_card:
            return self._find_one_off(order_key, include_refunded)
        if not customer_id:
            return None  # a card-saving payment is always the customer's
        for charge in self._call(self.v1.charges.list, customer=customer_id, limit=100).data:
            pi_ref = _val(charge, "payment_intent")
            if not pi_ref or _val(charge, "status") != "succeeded":
                continue
            pi = self._retrieve_card_present(pi_ref if isinstance(pi_ref, str) else pi_ref.id)
            if (_val(_val(pi, "metadata", {}), "order_key") == order_key and pi.status == "succeeded"
                    and _val(pi, "setup_future_usage") == "off_session"):
                found = self._card_present(pi)
                if include_refunded or found.refunded_cents < found.amount_cents:  # a refunded one is undone
                    return found
        return None

    def _find_one_off(self, order_key: str, include_refunded: bool) -> CardPresentPayment | None:
        """A one-off payment may have no customer, so it is found by its metadata. "Don't use search for
        read-after-write flows ... data is searchable in under 1 minute. ... use the various list APIs"
        (docs.stripe.com/search): the latest payments are listed first, then older ones are searched."""
        recent = self._call(self.v1.payment_intents.list, limit=100, expand=["data.latest_charge"]).data
        found = self._paid_one_off(recent, order_key, include_refunded)
        if found is not None:
            return found
        quoted = order_key.replace("\\", "\\\\").replace("'", "\\'")
        hits = self._call(self.v1.payment_intents.search, limit=10, expand=["data.latest_charge"],
                          query=f"metadata['order_key']:'{quoted}' AND status:'succeeded'").data
        return self._paid_one_off(hits, order_key, include_refunded)

    def _paid_one_off(self, intents: Any, order_key: str, include_refunded: bool) -> CardPresentPayment | None:
        for pi in intents:
            if (_val(_val(pi, "metadata", {}), "order_key") == order_key and _val(pi, "status") == "succeeded"
                    and not _val(pi, "setup_future_usage")):
                found = self._card_present(pi)
                if include_refunded or found.refunded_cents < found.amount_cents:
                    return found
        return None

    @staticmethod
    def _card_present(pi: Any) -> CardPresentPayment:
        from clarity_tui.payments.base import CardPresentPayment

        latest = _val(pi, "latest_charge")
        charge = None if latest is None or isinstance(latest, str) else latest
        charge_id = latest if isinstance(latest, str) else _val(charge, "id")
        details = _val(charge, "payment_method_details")
        card = _val(details, "card_present") or _val(details, "card")
        if "card" in (_val(pi, "payment_method_types") or []):  # MOTO: the keyed card is itself reusable
            reusable = _val(pi, "payment_method") or _val(charge, "payment_method")
        else:
            # "generated_card: ID of a card PaymentMethod generated from the card_present PaymentMethod
            # that may be attached to a Customer for future transactions." (API reference)
            reusable = _val(card, "generated_card")
        if reusable is not None and not isinstance(reusable, str):
            reusable = _val(reusable, "id")
        err = _val(pi, "last_payment_error")
        return CardPresentPayment(
            payment_id=pi.id, amount_cents=int(_val(pi, "amount", 0)), status=_val(pi, "status", "unknown"),
            charge_id=charge_id, payment_method_id=reusable, brand=_val(card, "brand", "unknown"),
            last4=_val(card, "last4", ""), exp_month=int(_val(card, "exp_month", 0)),
            exp_year=int(_val(card, "exp_year", 0)), decline_code=_val(err, "decline_code") or _val(err, "code"),
            refunded_cents=int(_val(charge, "amount_refunded", 0)),
        )

    # --- save a card on the reader (a card_present SetupIntent) -------------------------------------------

    def create_card_present_setup(self, customer_id: str, *, metadata: dict[str, str] | None = None,
                                  idempotency_key: str) -> CardPresentSetup:
        # "When you include a customer in your SetupIntent before confirming, Stripe automatically
        # attaches the generated card payment method to the Customer object you provide." ... "You must
        # create the SetupIntent on your server and include card_present on the payment_method_types
        # parameter." (docs.stripe.com/terminal/features/saving-cards/save-cards-directly)
        seti = self._call(self.v1.setup_intents.create, key=idempotency_key, customer=customer_id,
                          payment_method_types=["card_present"], usage="off_session", metadata=metadata or {})
        return self._card_present_setup(seti, None)

    def card_present_setup(self, setup_id: str, *, presented: CardToken | None = None,
                           idempotency_key: str) -> CardPresentSetup:
        # The reader reported to Stripe itself: read the SetupIntent back. Its latest attempt holds the
        # "generated_card: The ID of the Card PaymentMethod which was generated by this SetupAttempt."
        # (API reference, SetupAttempt.payment_method_details.card_present); brand and last 4 are on it.
        seti = self._call(self.v1.setup_intents.retrieve, setup_id, expand=["latest_attempt"])
        generated = _generated_card(seti) if _val(seti, "status") == "succeeded" else None
        pm = self._call(self.v1.payment_methods.retrieve, generated) if generated else None
        return self._card_present_setup(seti, pm)

    def cancel_card_present_setup(self, setup_id: str, *, idempotency_key: str) -> CardPresentSetup:
        try:
            seti = self._call(self.v1.setup_intents.cancel, setup_id, key=idempotency_key)
        except E.GatewayRejected:
            # Not cancellable: succeeded meanwhile (the reader finished after all), or cancelled already.
            current = self.card_present_setup(setup_id, idempotency_key=f"{idempotency_key}:read")
            if current.succeeded or current.status == "canceled":
                return current
            raise
        return self._card_present_setup(seti, None)

    def find_card_present_setup(self, customer_id: str, save_key: str) -> CardPresentSetup | None:
        for seti in self._call(self.v1.setup_intents.list, customer=customer_id, limit=100).data:
            if (_val(seti, "status") == "succeeded" and "card_present" in (_val(seti, "payment_method_types") or [])
                    and _val(_val(seti, "metadata", {}), "save_key") == save_key):
                return self.card_present_setup(seti.id, idempotency_key=f"{save_key}:find")
        return None

    @staticmethod
    def _card_present_setup(seti: Any, pm: Any) -> CardPresentSetup:
        from clarity_tui.payments.base import CardPresentSetup

        card = _val(pm, "card")
        err = _val(seti, "last_setup_error")
        return CardPresentSetup(
            setup_id=seti.id, status=_val(seti, "status", "unknown"), payment_method_id=_val(pm, "id"),
            brand=_val(card, "brand", "unknown"), last4=_val(card, "last4", ""),
            exp_month=int(_val(card, "exp_month", 0)), exp_year=int(_val(card, "exp_year", 0)),
            decline_code=_val(err, "decline_code") or _val(err, "code"),
        )

    def create_hosted_card_page(self, customer_id: str, *, currency: str = "usd", success_url: str,
                                metadata: dict[str, str] | None = None,
                                idempotency_key: str) -> HostedCardPage:
        # "To create a setup mode Session, use the mode parameter with a value of setup when creating the
        # Session. You can optionally specify the customer parameter to automatically attach the created
        # payment method to an existing customer. Checkout uses Dynamic payment methods by default, which
        # requires you to pass the currency parameter when using setup mode."
        # (docs.stripe.com/payments/checkout/save-and-reuse)
        session = self._call(self.v1.checkout.sessions.create, key=idempotency_key, mode="setup",
                             customer=customer_id, currency=currency or self.currency, payment_method_types=["card"],
                             success_url=success_url, metadata=metadata or {})
        return self._hosted(session)

    def hosted_card_page(self, session_id: str) -> HostedCardPage:
        # "Setup mode uses the Setup Intents API to create Payment Methods." (save-and-reuse): the
        # completed session's SetupIntent holds the saved card.
        session = self._call(self.v1.checkout.sessions.retrieve, session_id, expand=["setup_intent.payment_method"])
        return self._hosted(session)

    @staticmethod
    def _hosted(session: Any) -> HostedCardPage:
        from clarity_tui.payments.base import HostedCardPage

        status = _val(session, "status", "open")
        seti = _val(session, "setup_intent")
        pm = None if seti is None or isinstance(seti, str) else _val(seti, "payment_method")
        card = None if pm is None or isinstance(pm, str) else _val(pm, "card")
        pm_id = pm if isinstance(pm, str) else _val(pm, "id")
        return HostedCardPage(session.id, status, _val(session, "url"), pm_id if status == "complete" else None,
                              _val(card, "brand", "unknown"), _val(card, "last4", ""),
                              int(_val(card, "exp_month", 0)), int(_val(card, "exp_year", 0)))


def _generated_card(seti: Any) -> str | None:
    details = _val(_val(_val(seti, "latest_attempt"), "payment_method_details"), "card_present")
    generated = _val(details, "generated_card")
    if generated is not None and not isinstance(generated, str):
        generated = _val(generated, "id")
    return generated
