"""A loopback Stripe for the recorded lifecycle events (tests/payments/fixtures/stripe_events).

A real HTTP server on 127.0.0.1 (stdlib, a thread of the test process) that answers what the lifecycle
calls of StripeGateway ask, from the recorded JSON, the way Stripe documents it, and records every request
(headers included) for assertions. localstripe has no Events API, portal or tax rates; this has only that.

- `GET /v1/events`: newest first; `types[]` (also the SDK's indexed `types[0]`), `limit` (1..100, default
  10), and the cursors of docs.stripe.com/api/pagination: "Both parameters accept an existing object ID
  value (see below) and return objects in reverse chronological order. The ending_before parameter returns
  objects listed before the named object. The starting_after parameter returns objects listed after the
  named object. These parameters are mutually exclusive." An `ending_before` page holds the `limit` events
  just newer than the cursor (the page before it), `has_more` telling whether newer ones follow; both
  cursors at once get Stripe's "Received both starting_after and ending_before parameters. Please pass in
  only one."; an unknown cursor gets "No such event: '<id>'" on its parameter (404 resource_missing;
  `cursor_error_status` switches it to a 400 for the gateway's other branch). Events are kept 30 days:
  `forget_event(id)` drops one, as Stripe does when it ages out.
- `GET /v1/{subscriptions,invoices,charges,disputes,payment_methods}/<id>` from `objects/<id>.json`, with
  `expand[]` (dotted paths, `data.` for lists; a charge's `refunds` list built from the refund objects, as
  it is not in the charge unless expanded); 404 resource_missing for an unknown id.
- `GET /v1/invoices?subscription=&status=&created[gte]=&starting_after=` (newest first).
- `POST /v1/billing_portal/sessions` (`portal_configured=False` answers Stripe's 400 "You can't create a
  portal session in test mode until you save your customer portal settings ..."), `POST
  /v1/checkout/sessions` (setup mode), `GET/POST /v1/tax_rates`.
- `fail_next(path, status, ...)`: the next request to that path gets that error.
- POSTs keep Stripe's idempotency: the same key and body replays the first answer (`Idempotent-Replayed:
  true`); the same key with other parameters is Stripe's 400 idempotency_error.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).with_name("fixtures") / "stripe_events"
PORTAL_NOT_CONFIGURED = ("You can’t create a portal session in test mode until you save your customer portal settings "
                         "in test mode at https://dashboard.stripe.com/test/settings/billing/portal.")
RETRIEVABLE = {"subscriptions": "subscription", "invoices": "invoice", "charges": "charge", "disputes": "dispute",
               "payment_methods": "payment_method"}


def load_events(root: Path = FIXTURES) -> list[dict[str, Any]]:
    """Every recorded event, oldest first."""
    events = [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]
    return sorted(events, key=lambda e: (e["created"], e["id"]))


def load_objects(root: Path = FIXTURES) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "objects").glob("*.json"))}


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    headers: dict[str, str]
    status: int | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query + self.form)

    def values(self, name: str) -> list[str]:
        """A list parameter in either encoding: `name[]=a&name[]=b` or the SDK's `name[0]=a&name[1]=b`."""
        out = []
        for key, value in self.query + self.form:
            if key == f"{name}[]" or (key.startswith(f"{name}[") and key[len(name) + 1:-1].isdigit()):
                out.append(value)
        return out


class StripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
            self.body["error"]["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["error"]["param"] = param


def no_such(kind: str, oid: str, param: str | None = None) -> StripeError:
    return StripeError(404, "invalid_request_error", f"No such {kind}: '{oid}'", code="resource_missing", param=param)


@dataclass
class StripeEventsServer:
    events: list[dict[str, Any]] = field(default_factory=load_events)  # oldest first
    objects: dict[str, dict[str, Any]] = field(default_factory=load_objects)
    portal_configured: bool = True
    cursor_error_status: int = 404
    requests: list[Request] = field(default_factory=list)
    # One-shot faults: path prefix -> (status, error type, message, code), taken by the next matching request.
    faults: dict[str, tuple[int, str, str, str | None]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _idempotency: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> StripeEventsServer:
        handler = type("Handler", (_Handler,), {"stripe": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- test helpers ------------------------------------------------------------------------------------------
    def calls(self, method: str, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def forget_event(self, event_id: str) -> None:
        self.events = [e for e in self.events if e["id"] != event_id]

    def add_event(self, event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
        event = {"id": f"evt_loopback{next(self._ids):04d}", "object": "event", "api_version": "2025-02-24.acacia",
                 "created": created, "data": {"object": obj}, "livemode": False, "pending_webhooks": 0,
                 "request": {"id": None, "idempotency_key": None}, "type": event_type}
        self.events.append(event)
        self.events.sort(key=lambda e: (e["created"], e["id"]))
        return event

    # --- endpoints ----------------------------------------------------------------------------------------------
    def fail_next(self, path_prefix: str, status: int, type_: str = "api_error",
                  message: str = "An unknown error occurred (injected fault).", code: str | None = None) -> None:
        self.faults[path_prefix] = (status, type_, message, code)

    def route(self, req: Request) -> tuple[int, Any]:
        parts = [p for p in req.path.split("/") if p]
        for prefix in list(self.faults):
            if req.path.startswith(prefix):
                status, type_, message, code = self.faults.pop(prefix)
                raise StripeError(status, type_, message, code=code)
        if not str(req.header("Authorization") or "").startswith("Bearer "):
            raise StripeError(401, "invalid_request_error", "You did not provide an API key.")
        if req.method == "GET" and parts == ["v1", "events"]:
            return 200, self.list_events(req)
        if req.method == "GET" and parts == ["v1", "invoices"]:
            return 200, self.list_invoices(req)
        if req.method == "GET" and len(parts) == 3 and parts[0] == "v1" and parts[1] in RETRIEVABLE:
            return 200, self.retrieve(RETRIEVABLE[parts[1]], parts[2], req.values("expand"))
        if req.method == "POST" and parts == ["v1", "billing_portal", "sessions"]:
            return 200, self.portal_session(req)
        if req.method == "POST" and parts == ["v1", "checkout", "sessions"]:
            return 200, self.checkout_session(req)
        if parts == ["v1", "tax_rates"]:
            return 200, (self.list_tax_rates(req) if req.method == "GET" else self.create_tax_rate(req))
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({req.method}: {req.path}).")

    def list_events(self, req: Request) -> dict[str, Any]:
        p = req.params
        if p.get("starting_after") and p.get("ending_before"):
            raise StripeError(400, "invalid_request_error",
                              "Received both starting_after and ending_before parameters. Please pass in only one.")
        limit = int(p.get("limit", "10"))
        if not 1 <= limit <= 100:
            raise StripeError(400, "invalid_request_error", "This value must be between 1 and 100.", param="limit")
        types = set(req.values("types"))
        newest_first = list(reversed(self.events))
        cursor_param = "ending_before" if p.get("ending_before") else "starting_after" if p.get("starting_after") else None
        if cursor_param:
            cursor = p[cursor_param]
            ids = [e["id"] for e in newest_first]
            if cursor not in ids:
                err = no_such("event", cursor, cursor_param)
                err.status = self.cursor_error_status
                raise err
            at = ids.index(cursor)
        matching = [(i, e) for i, e in enumerate(newest_first) if not types or e["type"] in types]
        if cursor_param == "ending_before":
            newer = [e for i, e in matching if i < at]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            older = [e for i, e in matching if cursor_param is None or i > at]
            page, has_more = older[:limit], len(older) > limit
        return {"object": "list", "url": "/v1/events", "has_more": has_more, "data": copy.deepcopy(page)}

    def _object(self, kind: str, oid: str, param: str | None = None) -> dict[str, Any]:
        obj = self.objects.get(oid)
        if obj is None or obj.get("object") != kind:
            raise no_such({"payment_method": "PaymentMethod"}.get(kind, kind), oid, param)
        return copy.deepcopy(obj)

    def retrieve(self, kind: str, oid: str, expand: list[str]) -> dict[str, Any]:
        obj = self._object(kind, oid, "id")
        for path in expand:
            self._expand(obj, path.split("."))
        return obj

    def _expand(self, obj: Any, path: list[str]) -> None:
        if not path or not isinstance(obj, dict):
            return
        name, rest = path[0], path[1:]
        if name == "data" and isinstance(obj.get("data"), list):
            for item in obj["data"]:
                self._expand(item, rest)
            return
        if name == "refunds" and obj.get("object") == "charge" and "refunds" not in obj:
            data = [copy.deepcopy(o) for o in self.objects.values()
                    if o.get("object") == "refund" and o.get("charge") == obj["id"]]
            obj["refunds"] = {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                              "url": f"/v1/charges/{obj['id']}/refunds"}
        value = obj.get(name)
        if isinstance(value, str) and value in self.objects:
            obj[name] = copy.deepcopy(self.objects[value])
        self._expand(obj.get(name), rest)

    def list_invoices(self, req: Request) -> dict[str, Any]:
        p = req.params
        data = [copy.deepcopy(o) for o in self.objects.values() if o.get("object") == "invoice"
                and (not p.get("subscription") or o.get("subscription") == p["subscription"])
                and (not p.get("status") or o.get("status") == p["status"])
                and (not p.get("customer") or o.get("customer") == p["customer"])
                and ("created[gte]" not in p or o["created"] >= int(p["created[gte]"]))]
        data.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        if p.get("starting_after"):  # the next page: the objects after that one, newest first
            ids = [o["id"] for o in data]
            data = data[ids.index(p["starting_after"]) + 1:]
        limit = int(p.get("limit", "10"))
        result = {"object": "list", "url": "/v1/invoices", "has_more": len(data) > limit, "data": data[:limit]}
        for path in req.values("expand"):
            self._expand(result, path.split("."))
        return result

    def portal_session(self, req: Request) -> dict[str, Any]:
        p = req.params
        if not self.portal_configured:
            raise StripeError(400, "invalid_request_error", PORTAL_NOT_CONFIGURED)
        if not p.get("customer"):
            raise StripeError(400, "invalid_request_error", "Missing required param: customer.", param="customer")
        n = next(self._ids)
        return {"id": f"bps_loopback{n:04d}", "object": "billing_portal.session", "configuration": "bpc_loopback0001",
                "created": 1794700000 + n, "customer": p["customer"],
                "flow": {"after_completion": {"hosted_confirmation": None, "redirect": None, "type": "portal_homepage"},
                         "subscription_cancel": None, "subscription_update": None, "subscription_update_confirm": None,
                         "type": p.get("flow_data[type]")},
                "livemode": False, "locale": None, "on_behalf_of": None, "return_url": p.get("return_url"),
                "url": f"https://billing.stripe.com/p/session/test_loopback{n:04d}"}

    def checkout_session(self, req: Request) -> dict[str, Any]:
        p = req.params
        if p.get("mode") != "setup":
            raise StripeError(400, "invalid_request_error", "Only setup mode here.", param="mode")
        n = next(self._ids)
        return {"id": f"cs_test_loopback{n:04d}", "object": "checkout.session", "mode": "setup", "status": "open",
                "customer": p.get("customer"), "currency": p.get("currency"), "success_url": p.get("success_url"),
                "setup_intent": f"seti_loopback{n:04d}", "payment_status": "no_payment_required",
                "url": f"https://checkout.stripe.com/c/pay/cs_test_loopback{n:04d}"}

    def list_tax_rates(self, req: Request) -> dict[str, Any]:
        p = req.params
        rates = [o for o in self.objects.values() if o.get("object") == "tax_rate"
                 and ("active" not in p or str(o.get("active")).lower() == p["active"])]
        rates.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        if p.get("starting_after"):
            ids = [r["id"] for r in rates]
            if p["starting_after"] not in ids:
                raise no_such("tax rate", p["starting_after"], "starting_after")
            rates = rates[ids.index(p["starting_after"]) + 1:]
        limit = int(p.get("limit", "10"))
        return {"object": "list", "url": "/v1/tax_rates", "has_more": len(rates) > limit,
                "data": copy.deepcopy(rates[:limit])}

    def create_tax_rate(self, req: Request) -> dict[str, Any]:
        p = req.params
        for name in ("display_name", "percentage", "inclusive"):
            if name not in p:
                raise StripeError(400, "invalid_request_error", f"Missing required param: {name}.", param=name)
        n = next(self._ids)
        rate = {"id": f"txr_loopback{n:04d}", "object": "tax_rate", "active": True, "country": None,
                "created": 1794700000 + n, "description": None, "display_name": p["display_name"],
                "effective_percentage": float(p["percentage"]), "flat_amount": None,
                "inclusive": p["inclusive"] == "true", "jurisdiction": None, "jurisdiction_level": None,
                "livemode": False, "metadata": {k[9:-1]: v for k, v in p.items() if k.startswith("metadata[")},
                "percentage": float(p["percentage"]), "rate_type": "percentage", "state": None, "tax_type": None}
        self.objects[rate["id"]] = rate
        return rate


class _Handler(BaseHTTPRequestHandler):
    stripe: StripeEventsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, parts.path, parse_qsl(parts.query, keep_blank_values=True),
                      parse_qsl(body.decode(), keep_blank_values=True), dict(self.headers.items()))
        server = self.stripe
        with server._lock:  # noqa: SLF001 - one request at a time keeps the state simple
            server.requests.append(req)
            key = req.header("Idempotency-Key") if self.command == "POST" else None
            slot = f"{req.header('Authorization')}|{key}" if key else None
            digest = f"{parts.path}?{body.decode()}"
            stored = server._idempotency.get(slot) if slot else None  # noqa: SLF001
            if stored is not None and stored[0] != digest:
                status, payload, extra = 400, StripeError(
                    400, "idempotency_error", "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.").body, {}
            elif stored is not None:
                status, raw, extra = stored[1], stored[2], {"Idempotent-Replayed": "true"}
                payload = json.loads(raw)
            else:
                extra = {}
                try:
                    status, payload = server.route(req)
                except StripeError as exc:
                    status, payload = exc.status, exc.body
                if slot is not None and (status < 400 or status >= 500):
                    server._idempotency[slot] = (digest, status, json.dumps(payload).encode())  # noqa: SLF001
            req.status = status
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Request-Id", f"req_loopback{len(server.requests):05d}")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_DELETE = _handle  # noqa: N815
