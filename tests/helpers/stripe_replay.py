"""A recording HTTP client for the stripe SDK: asserts the exact requests, in order, and replays
Stripe-shaped responses (localstripe has no Terminal API, so Terminal is tested by replay)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class Step:
    method: str
    path: str
    params: dict[str, str] | None
    body: dict[str, Any]
    status: int = 200
    # Runs when this request arrives (e.g. the attendant pressing Cancel mid-poll).
    on_request: Callable[[], None] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class ReplayHTTPClient(stripe.HTTPClient):
    steps: list[Step]
    recorded: list[Recorded] = field(default_factory=list)
    name = "replay"

    def __post_init__(self) -> None:
        super().__init__()

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None) -> tuple[str, int, dict]:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query)) if method == "get" else dict(parse_qsl(post_data or ""))
        self.recorded.append(Recorded(method.upper(), parts.path, params, dict(headers or {})))
        index = len(self.recorded) - 1
        assert index < len(self.steps), f"unexpected extra request {method.upper()} {parts.path} {params}"
        step = self.steps[index]
        assert (method.upper(), parts.path) == (step.method, step.path), (
            f"request {index}: expected {step.method} {step.path}, got {method.upper()} {parts.path}")
        if step.params is not None:
            assert params == step.params, f"request {index} {step.path}: params {params} != {step.params}"
        if step.on_request is not None:
            step.on_request()
        return json.dumps(step.body), step.status, {"Request-Id": f"req_{index}"}

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used by Terminal
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return len(self.recorded) == len(self.steps)


def client_for(steps: list[Step]) -> tuple[stripe.StripeClient, ReplayHTTPClient]:
    http = ReplayHTTPClient(steps)
    return stripe.StripeClient("sk_test_replay", http_client=http, max_network_retries=0), http


# --- Stripe-shaped objects -------------------------------------------------------------

READER = "tmr_FDOt2wlRZEdpd7"


def reader(action: dict | None, status: str = "online") -> dict:
    return {"id": READER, "object": "terminal.reader", "device_type": "bbpos_wisepos_e", "label": "Lane 1",
            "livemode": False, "status": status, "action": action}


def setup_action(state: str, seti: str = "seti_123", failure: str | None = None, generated: str | None = None) -> dict:
    return {"type": "process_setup_intent", "status": state, "failure_code": failure,
            "failure_message": f"{failure} happened" if failure else None,
            "process_setup_intent": {"setup_intent": seti, "generated_card": generated}}


def payment_action(state: str, pi: str = "pi_123", failure: str | None = None) -> dict:
    return {"type": "process_payment_intent", "status": state, "failure_code": failure,
            "failure_message": f"{failure} happened" if failure else None,
            "process_payment_intent": {"payment_intent": pi}}


def setup_intent(status: str = "requires_payment_method", generated: str | None = None, seti: str = "seti_123") -> dict:
    attempt = None
    if generated:
        attempt = {"id": "setatt_1", "object": "setup_attempt", "status": "succeeded", "setup_intent": seti,
                   "payment_method": "pm_cp_1",
                   "payment_method_details": {"type": "card_present",
                                              "card_present": {"generated_card": generated, "offline": None}}}
    return {"id": seti, "object": "setup_intent", "status": status, "usage": "off_session",
            "payment_method_types": ["card_present"], "latest_attempt": attempt, "livemode": False}


def card_payment_method(pm: str = "pm_gen_1") -> dict:
    return {"id": pm, "object": "payment_method", "type": "card", "livemode": False,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "funding": "credit",
                     "country": "US"}}


def payment_intent(status: str = "requires_payment_method", amount: int = 2999, pi: str = "pi_123",
                   charged: bool = False) -> dict:
    body: dict[str, Any] = {"id": pi, "object": "payment_intent", "amount": amount, "currency": "usd", "status": status,
                            "payment_method_types": ["card_present"], "capture_method": "automatic", "livemode": False,
                            "payment_method": None, "latest_charge": None}
    if charged:
        body["payment_method"] = "pm_cp_9"
        body["latest_charge"] = {
            "id": "ch_1", "object": "charge", "amount": amount, "status": "succeeded", "payment_method": "pm_cp_9",
            "payment_method_details": {"type": "card_present", "card_present": {
                "brand": "mastercard", "last4": "4444", "exp_month": 8, "exp_year": 2029, "read_method": "contactless_emv"}}}
    return body


def api_error(code: str, message: str, status: int = 400, kind: str = "invalid_request_error") -> dict:
    return {"error": {"code": code, "message": message, "type": kind}}
