"""The Stripe webhook receiver (issue 13) over real HTTP on loopback: signatures checked with the SDK."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from clarity_tui.config import Settings
from clarity_tui.payments.lifecycle import GatewayEvent, event_from_json
from clarity_tui.services.billing_webhook import BillingWebhookServer, sign_payload, start_webhook_server
from tests.payments.stripe_events_server import FIXTURES, load_events

SECRET = "whsec_test_clarity_0123456789abcdef"
FAILED = FIXTURES / "invoice.payment_failed.json"


class Recorder:
    """The injected handler: records each call; `fail` makes it raise like a database outage would."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[GatewayEvent, str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, event: GatewayEvent, source: str) -> str:
        with self.lock:
            self.calls.append((event, source))
        if self.fail is not None:
            raise self.fail
        return "processed"


def settings(**webhook: Any) -> Settings:
    return Settings(billing={"webhook": {"enabled": True, "host": "127.0.0.1", "signing_secret": SECRET,
                                         "tolerance_seconds": 300, **webhook}})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def webhook(recorder: Recorder) -> Iterator[BillingWebhookServer]:
    server = start_webhook_server(settings(), recorder, port=0, max_body=64_000, read_timeout=5)
    yield server
    server.stop()


def post(server: BillingWebhookServer, body: bytes, signature: str | None, *,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        if signature is not None:
            sent["Stripe-Signature"] = signature
        conn.request("POST", "/stripe/webhook", body=body, headers=sent)
        resp = conn.getresponse()
        raw = resp.read().decode()
        return resp.status, json.loads(raw) if raw else {}, raw
    finally:
        conn.close()


def signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    return sign_payload(body, secret, int(time.time()) if at is None else at)


# --- the scheme ---------------------------------------------------------------------------------------------------

def test_sign_payload_is_the_sdk_scheme() -> None:
    body = FAILED.read_bytes()
    header = sign_payload(body, SECRET, 1794000000)
    assert header.startswith("t=1794000000,v1=") and len(header.split("v1=")[1]) == 64
    assert header == stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, 1794000000)
    assert stripe.WebhookSignature.verify_header(body.decode(), sign_payload(body, SECRET, int(time.time())), SECRET,
                                                 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), sign_payload(body, "whsec_other", int(time.time())),
                                              SECRET, 300)


def test_no_secret_no_server(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="signing secret"):
        start_webhook_server(settings(signing_secret=""), recorder, port=0)


# --- deliveries ---------------------------------------------------------------------------------------------------

def test_a_signed_event_is_handled_once(webhook: BillingWebhookServer, recorder: Recorder) -> None:
    body = FAILED.read_bytes()
    status, answer, _ = post(webhook, body, signed(body))
    assert status == 200
    assert answer == {"received": True, "event": "evt_1QcLarity02Evpaymen", "result": "processed"}
    assert recorder.calls == [(event_from_json(json.loads(body)), "webhook")]
    event = recorder.calls[0][0]
    assert (event.type, event.object_id, event.object_kind, event.related) == (
        "invoice.payment_failed", "in_1QcLarityFailed01", "invoice", {"customer": "cus_RcLarity7wQx2M"})
    assert (webhook.accepted, webhook.rejected) == (1, 0)


def test_every_recorded_event_arrives(webhook: BillingWebhookServer, recorder: Recorder) -> None:
    events = load_events()
    for body in events:
        raw = json.dumps(body).encode()
        assert post(webhook, raw, signed(raw))[0] == 200
    assert [(e.event_id, e.type, e.object_id) for e, _ in recorder.calls] == [
        (b["id"], b["type"], b["data"]["object"]["id"]) for b in events]
    detached = next(e for e, _ in recorder.calls if e.type == "payment_method.detached")
    assert detached.related == {"previous_customer": "cus_RcLarity7wQx2M"}


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "stale timestamp", "missing header",
                                  "garbled header", "no v1 signature"])
def test_bad_signatures_are_400_and_never_handled(webhook: BillingWebhookServer, recorder: Recorder, case: str) -> None:
    body = FAILED.read_bytes()
    now = int(time.time())
    signature: str | None = {
        "wrong secret": signed(body, secret="whsec_someone_else"),
        "tampered body": signed(body.replace(b'"amount_due": 3246', b'"amount_due": 1')),
        "stale timestamp": signed(body, at=now - 301),  # tolerance_seconds = 300
        "missing header": None,
        "garbled header": "nonsense",
        "no v1 signature": f"t={now},v0=" + "0" * 64,
    }[case]
    status, answer, raw = post(webhook, body, signature)
    assert status == 400 and answer == {"error": "bad_signature"}
    assert recorder.calls == [] and webhook.rejected == 1 and webhook.accepted == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"object": "event", "id": "evt_1"}', b"\xff\xfe"])
def test_signed_but_unreadable_bodies_are_400(webhook: BillingWebhookServer, recorder: Recorder, body: bytes) -> None:
    # A signature over bytes that are not UTF-8 cannot verify either; the others verify, then fail to parse.
    signature = signed(body) if body != b"\xff\xfe" else "t=1,v1=" + "0" * 64
    status, answer, _ = post(webhook, body, signature)
    assert status == 400 and answer["error"] in ("bad_request", "bad_signature")
    assert recorder.calls == []


def test_oversized_body_is_400_unread(webhook: BillingWebhookServer, recorder: Recorder) -> None:
    body = json.dumps({**json.loads(FAILED.read_text()), "padding": "x" * 70_000}).encode()
    status, answer, _ = post(webhook, body, signed(body))
    assert status == 400 and "64000" in answer["error"]
    assert recorder.calls == []


def test_a_failing_handler_is_500_without_details(recorder: Recorder) -> None:
    failing = Recorder(fail=RuntimeError("(sqlite3.OperationalError) database is locked [SQL: SELECT * FROM membership]"))
    server = start_webhook_server(settings(), failing, port=0)
    try:
        body = FAILED.read_bytes()
        status, answer, raw = post(server, body, signed(body))
    finally:
        server.stop()
    assert status == 500  # Stripe delivers it again later
    assert answer == {"error": "not_handled", "event": "evt_1QcLarity02Evpaymen"}
    assert "Traceback" not in raw and "SQL" not in raw and "sqlite" not in raw and "locked" not in raw
    assert len(failing.calls) == 1 and server.failed == 1


def test_post_only(webhook: BillingWebhookServer, recorder: Recorder) -> None:
    for method in ("GET", "PUT", "DELETE"):
        conn = http.client.HTTPConnection("127.0.0.1", webhook.port, timeout=30)
        conn.request(method, "/stripe/webhook")
        resp = conn.getresponse()
        assert resp.status == 405 and resp.getheader("Allow") == "POST"
        resp.read()
        conn.close()
    assert recorder.calls == []


def test_without_content_length_is_refused(webhook: BillingWebhookServer, recorder: Recorder) -> None:
    with socket.create_connection(("127.0.0.1", webhook.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 411")
    assert recorder.calls == []


# --- slow and too many clients ---------------------------------------------------------------------------------------

def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the signal waited on; no sleeps)."""
    chunks = []
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_a_slow_client_is_cut_by_the_read_timeout(recorder: Recorder) -> None:
    server = start_webhook_server(settings(), recorder, port=0, read_timeout=0.3)
    try:
        body = FAILED.read_bytes()
        head = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Stripe-Signature: {signed(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head + body[:100])  # and then nothing more
            assert read_until_closed(sock) == b""  # closed, no answer
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # stalls inside the headers
            read_until_closed(sock)
    finally:
        server.stop()
    assert recorder.calls == [] and server.timed_out == 1


def test_connections_over_the_cap_are_closed(recorder: Recorder) -> None:
    server = start_webhook_server(settings(), recorder, port=0, max_connections=1, read_timeout=30)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as first:
            first.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # holds the only slot, waiting for its headers
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as second:
                assert read_until_closed(second) == b""  # refused at once
            assert server.refused == 1
        # The slot comes back once the first connection is gone: a delivery goes through.
        assert server.wait_idle(timeout=30)
        body = FAILED.read_bytes()
        assert post(server, body, signed(body))[0] == 200 and len(recorder.calls) == 1
    finally:
        server.stop()
