"""The optional Stripe webhook receiver (issue 13): for sites that can expose a URL to Stripe.

The sync loop needs none (it pulls the Events API); a webhook only makes a change arrive sooner. Each
POST is verified with the SDK before anything else (`stripe.WebhookSignature.verify_header`: the
`Stripe-Signature` header's `t=` timestamp and `v1=` HMAC-SHA256 of "<t>.<body>" under the endpoint's
signing secret, within `billing.webhook.tolerance_seconds`), then parsed with `event_from_json` and handed
to the injected `handle(event, source)` (the billing sync's `handle_event`, which trusts only the ids and
retrieves the object fresh). Answers:

- 200 when handled (whatever the handler decided: processed, duplicate, unknown object ...);
- 400, nothing handled, for a missing or bad signature, a stale timestamp, a body that is not JSON or not an
  event, or a body over the limit;
- 500 when the handler raised, so Stripe retries the delivery later; the body never carries a traceback, SQL
  or the exception's text (that goes to the log);
- 405 for anything but POST, 411 without a Content-Length.

stdlib `http.server` in a thread (like hardware/plate_reader/http_receiver.py), behind the guards both share
(hardware/http_limits.py): a body limit, a read timeout and a request deadline (a slow or stalled client is cut
off), and a cap on concurrent connections (over it, the connection is closed at once). Headless: no Textual.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import stripe

from clarity_tui.errors import UserFacingError
from clarity_tui.payments.errors import PaymentError
from clarity_tui.payments.lifecycle import BadSignature, GatewayEvent, event_from_json
from hardware.http_limits import REQUEST_TIMEOUT, ConnectionSlots, LimitedHandler, LimitedHTTPServer

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000  # Stripe's event bodies are a few kilobytes; an invoice with many lines stays far below
READ_TIMEOUT = 10.0  # seconds a client may take for each read of its request
MAX_CONNECTIONS = 16
SOURCE = "webhook"

Handle = Callable[[GatewayEvent, str], str]


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """A `Stripe-Signature` value for `payload` (tests and the simulator): Stripe's `v1` scheme, an
    HMAC-SHA256 keyed with the endpoint secret over "<timestamp>.<payload>", as `t=<timestamp>,v1=<hex>`."""
    signed = str(int(timestamp)).encode() + b"." + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> GatewayEvent:
    """The event in a signed body, or BadSignature (signature, timestamp, or the body itself)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("The body is not UTF-8 text.", code="bad_body") from None
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(f"Stripe-Signature did not verify ({exc.user_message or exc}).",
                           code="bad_signature") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise BadSignature("The body is not JSON.", code="bad_body") from None
    if not _event_shaped(body):
        raise BadSignature("The body is not a Stripe event.", code="bad_body")
    try:
        return event_from_json(body)
    except PaymentError as exc:
        raise BadSignature(str(exc), code="bad_body") from None


def _event_shaped(body: Any) -> bool:
    """An event's id and type, and its data.object with an id, of the types Stripe sends (signed bodies are
    Stripe's, but a body this version cannot read must be a 400, never a handler that crashes or an event
    recorded under the id "None")."""
    if not isinstance(body, dict) or body.get("object") not in (None, "event"):
        return False
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return (isinstance(body.get("id"), str) and bool(body["id"]) and isinstance(body.get("type"), str)
            and bool(body["type"]) and isinstance(data, dict) and isinstance(obj, dict)
            and isinstance(obj.get("id"), str) and bool(obj["id"])
            and isinstance(data.get("previous_attributes") or {}, dict))


class _Handler(LimitedHandler):
    server: _Server
    log_label = "billing webhook"
    logger = log

    def _not_allowed(self) -> None:
        self.reply_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST only."}, close=True, headers={"Allow": "POST"})

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def do_POST(self) -> None:
        receiver = self.server.receiver
        payload = self.read_body(receiver.max_body, too_large=HTTPStatus.BAD_REQUEST)
        if payload is None:
            if self.body_problem == "too_large":
                receiver.rejected += 1
            elif self.body_problem == "timeout":  # too slow to send its body: dropped without an answer
                receiver.timed_out += 1
            return
        status, answer = receiver.receive(payload, self.headers.get("Stripe-Signature"))
        self.reply_json(status, answer, close=status >= 400)


class MissingSigningSecret(UserFacingError, ValueError):
    """The webhook is enabled but has no signing secret: every delivery would be refused."""


class _Server(LimitedHTTPServer):
    receiver: BillingWebhookServer


class BillingWebhookServer:
    """The receiver. `handle(event, source) -> str` is called once per verified delivery, one at a time."""

    def __init__(self, handle: Handle, *, secret: str, tolerance_seconds: int = 300, host: str = "127.0.0.1",
                 port: int = 0, max_body: int = MAX_BODY, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, request_timeout: float = REQUEST_TIMEOUT) -> None:
        if not secret:
            raise MissingSigningSecret("The Stripe webhook needs its signing secret (billing.webhook.signing_secret, whsec_...): "
                             "without it every delivery would be refused.")
        self.handle = handle
        self.secret = secret
        self.tolerance = int(tolerance_seconds)
        self.host, self.port = host, port
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.slots = ConnectionSlots(max_connections)
        self._handling = threading.Lock()
        self.accepted = self.rejected = self.failed = self.timed_out = 0
        self.last_error: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def refused(self) -> int:
        """Connections closed at once because the cap was reached."""
        return self.slots.refused

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is being served (tests; a clean stop); False if `timeout` passed first."""
        return self.slots.wait_idle(timeout)

    def receive(self, payload: bytes, signature: str | None) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            event = verify(payload, signature, self.secret, self.tolerance)
        except BadSignature as exc:
            self.rejected += 1
            self.last_error = str(exc)
            log.warning("billing webhook refused a delivery: %s", exc)
            return HTTPStatus.BAD_REQUEST, {"error": "bad_signature" if exc.code == "bad_signature" else "bad_request"}
        try:
            with self._handling:
                result = self.handle(event, SOURCE)
        except Exception:
            self.failed += 1
            self.last_error = f"Event {event.event_id} could not be handled."
            log.exception("billing webhook: event %s (%s) could not be handled", event.event_id, event.type)
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "not_handled", "event": event.event_id}
        self.accepted += 1
        return HTTPStatus.OK, {"received": True, "event": event.event_id, "result": str(result)}

    def start(self) -> BillingWebhookServer:
        server = _Server((self.host, self.port), _Handler, slots=self.slots, read_timeout=self.read_timeout,
                         request_timeout=max(self.request_timeout, self.read_timeout), name="billing webhook")
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="billing-webhook", daemon=True)
        self._thread.start()
        log.info("billing webhook listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> BillingWebhookServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_webhook_server(settings: Any, handle: Handle, **kw: Any) -> BillingWebhookServer:
    """Listen on billing.webhook.host:port (the caller checks billing.webhook.enabled). `kw` overrides the
    limits (max_body, read_timeout, max_connections) or the address (host, port=0 for a free port)."""
    cfg = settings.billing.webhook
    options: dict[str, Any] = {"host": cfg.host, "port": cfg.port, **kw}
    return BillingWebhookServer(handle, secret=cfg.signing_secret, tolerance_seconds=cfg.tolerance_seconds,
                                **options).start()


__all__ = ["BillingWebhookServer", "sign_payload", "start_webhook_server", "verify"]
