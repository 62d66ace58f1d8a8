"""Stripe-shaped response bodies for the replayed Stripe client: payment intents, customers, checkout sessions."""

from __future__ import annotations

from typing import Any


def pi_body(status: str, *, pi: str = "pi_cp", moto: bool = False, generated: str | None = "pm_gen_7",
            decline: str | None = None, refunded: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": pi, "object": "payment_intent", "amount": 2999, "currency": "usd", "status": status,
        "customer": "cus_9", "payment_method_types": ["card" if moto else "card_present"],
        "setup_future_usage": "off_session", "capture_method": "automatic", "livemode": False,
        "payment_method": None, "latest_charge": None, "last_payment_error": None, "metadata": {},
    }
    if decline:
        body["last_payment_error"] = {"type": "card_error", "code": "card_declined", "decline_code": decline}
    if status == "succeeded":
        details: dict[str, Any] = {"brand": "mastercard", "last4": "4444", "exp_month": 8, "exp_year": 2029}
        if moto:
            body["payment_method"] = "pm_keyed_1"
            pmd = {"type": "card", "card": details}
        else:
            body["payment_method"] = "pm_cp_1"
            pmd = {"type": "card_present", "card_present": details | {"generated_card": generated,
                                                                       "read_method": "contactless_emv"}}
        body["latest_charge"] = {"id": "ch_cp", "object": "charge", "amount": 2999, "status": "succeeded",
                                 "amount_refunded": refunded, "payment_method": body["payment_method"],
                                 "payment_method_details": pmd}
    return body


def customer_body() -> dict[str, Any]:
    return {"id": "cus_9", "object": "customer", "invoice_settings": {"default_payment_method": "pm_gen_7"}}


def session_body(status: str, *, pm: str | None = None) -> dict[str, Any]:
    seti: Any = "seti_h1"
    if pm:
        seti = {"id": "seti_h1", "object": "setup_intent", "status": "succeeded",
                "payment_method": {"id": pm, "object": "payment_method", "type": "card",
                                   "card": {"brand": "amex", "last4": "8431", "exp_month": 3, "exp_year": 2031}}}
    return {"id": "cs_test_h1", "object": "checkout.session", "mode": "setup", "status": status,
            "customer": "cus_9", "url": "https://checkout.stripe.com/c/pay/cs_test_h1", "setup_intent": seti}
