"""Payments fixtures: a real localstripe server on 127.0.0.1 and a recording Stripe HTTP client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

SERVER_SCRIPT = Path(__file__).with_name("localstripe_server.py")
API_KEY = "sk_test_clarity"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStripe:
    """A localstripe subprocess bound to 127.0.0.1; can be stopped and restarted with its data."""

    def __init__(self, state_file: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.state_file = state_file
        self.proc: subprocess.Popen | None = None
        self.log = state_file.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), str(self.port), str(self.state_file)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._request("GET", "/v1/balance")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"localstripe did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the server saves its state
            self.proc.wait(timeout=20)
        self.proc = None

    def _request(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
            return json.loads(body) if body.strip() else None

    def flush(self) -> None:
        self._request("DELETE", "/_config/data")

    def list(self, what: str, **query: str) -> list[dict]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return self._request("GET", f"/v1/{what}?limit=100{'&' + qs if qs else ''}")["data"]


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    server = LocalStripe(tmp_path_factory.mktemp("localstripe") / "state.pickle")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The session's server, wiped for this test."""
    localstripe_server.flush()
    return localstripe_server


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None
    status: int | None = None


# What localstripe cannot take, dropped before forwarding (the exact request is recorded first).
# It implements one subscription item only ("Not implemented" for two): the family's extra vehicle
# item (items[1]) is asserted from the recording.
_UNSUPPORTED = {
    "/v1/subscriptions": ("discounts", "items[1]"),
    "/v1/subscriptions/{id}": ("discounts", "pause_collection", "proration_behavior", "items[1]"),
}


def _template(path: str) -> str:
    parts = path.split("/")
    if len(parts) == 4 and parts[2] == "subscriptions":
        return "/v1/subscriptions/{id}"
    return path


class RecordingClient(stripe.RequestsClient):
    """The SDK's own HTTP client, recording every request (method, path, decoded params, idempotency key).

    Parameters localstripe does not implement are stripped before forwarding, so the
    flow continues against the real server while tests assert what Stripe would get."""

    name = "recording"

    def __init__(self, **kw: Any) -> None:
        super().__init__(timeout=kw.pop("timeout", 10), **kw)
        self.recorded: list[Recorded] = []

    def request(self, method, url, headers, post_data=None):  # noqa: ANN001, ANN201
        parts = urlsplit(url)
        raw = post_data.decode() if isinstance(post_data, bytes) else (post_data or parts.query or "")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        key = (headers or {}).get("Idempotency-Key")
        rec = Recorded(method.upper(), parts.path, params, key)
        self.recorded.append(rec)
        drop = _UNSUPPORTED.get(_template(parts.path), ())
        if method.lower() == "post" and drop and post_data:
            kept = [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True)
                    if not any(k == d or k.startswith(d + "[") for d in drop)]
            if kept:
                from urllib.parse import urlencode

                post_data = urlencode(kept)
            else:  # nothing left localstripe understands: read the object back instead
                method, post_data = "get", None
        content, status, rheaders = super().request(method, url, headers, post_data)
        rec.status = status
        return content, status, rheaders

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.recorded if r.method == method and r.path.startswith(path_prefix)]


@pytest.fixture
def recorder() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def stripe_gateway(localstripe: LocalStripe, recorder: RecordingClient):  # noqa: ANN201
    from clarity_tui.payments.stripe_gateway import StripeGateway

    # Keyed test cards go to localstripe: the account "has" raw card data access (issue 12).
    return StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder, raw_card_data_access=True)


def new_order(db, plan: str = "BASIC", promo: str | None = None, customer_number: str = "C100000",  # noqa: ANN001
              kind: str = "sale") -> int:
    """A sales order ready for billing (customer, plan, optional promotion), as the sale flow leaves it."""
    import uuid

    from sqlmodel import select

    from db.models import Customer, Plan, Promotion, SalesOrder

    with db.write() as s:
        customer = s.exec(select(Customer).where(Customer.customer_number == customer_number)).one()
        plan_row = s.exec(select(Plan).where(Plan.code == plan)).one()
        promo_id = s.exec(select(Promotion.id).where(Promotion.code == promo)).one() if promo else None
        order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=kind, customer_id=customer.id,
                           plan_id=plan_row.id, promotion_id=promo_id, state="signed")
        s.add(order)
        s.flush()
        return order.id


@pytest.fixture
def sim_billing(demo_db):  # noqa: ANN001, ANN201
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.billing import BillingService

    return BillingService(demo_db, SimulatedGateway(demo_db))


# --- gateway contract helpers (tests/payments/test_gateway_contract.py) ----------------------------------------
def localstripe_config(server: LocalStripe, method: str, path: str, payload: dict | None = None,
                       timeout: float = 10) -> tuple[int, Any]:
    """A call to the test-only /_config endpoints of localstripe_server.py: (status, decoded JSON)."""
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def localstripe_fault(server: LocalStripe, path: str, **spec: Any) -> str:
    """Inject a fault for the next POSTs to `path` (status, times, delay, hold, drop, after_effect); its id."""
    status, body = localstripe_config(server, "POST", "/_config/faults", {"path": path, **spec})
    assert status == 200, body
    return body["id"]


@pytest.fixture
def sim_file_db(sqlite_url: str):  # noqa: ANN201
    """A migrated SQLite file (no demo data), for the simulated gateway and other processes on it."""
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database

    db = open_database(Settings(database_url=sqlite_url))
    yield db
    db.dispose()
