"""Camera webhooks: OpenALPR / Rekor Scout `alpr_group` JSON over HTTP on a local port.

Each POST is checked completely before anything is recorded, then handed to the
injected `record` callable (the sessions service, one transaction). stdlib
`http.server` in a thread (one small endpoint needs no framework), behind the
guards of hardware/http_limits.py: a read timeout and a deadline per request, a
cap on connections (over it: 503 with Retry-After, and no thread), a body limit
and a JSON nesting limit.

Who may post (issue 15), checked before the body is parsed:

- an optional address allow-list (`allow_from`, addresses and CIDR networks): any other address gets 401;
- a shared secret per camera (`secrets`, camera_id -> secret; or one `secret` for every camera), presented as a
  token in `X-Clarity-Token`, in `Authorization: Bearer`, or, for cameras that cannot set headers, in the URL
  (`/plate/<token>` or `?token=`); and/or an HMAC-SHA256 of the body under that secret in
  `X-Clarity-Signature: sha256=<hex>` (`require_signature` makes it mandatory). Anything else gets 401, and is
  logged without the secret. A camera's secret only covers that camera's `camera_id` (403 otherwise).
- with no secret configured the receiver still listens (health check, `doctor`), but refuses every read with 401
  and says so in its status and the log: secure by default.

Answers: 201 recorded, 202 a heartbeat, 400 a bad body or plate (the reason comes back; nothing is recorded),
401/403 as above, 503 with Retry-After when the database is unreachable for now, 500 for anything else. No
answer ever carries SQL, a traceback or an exception's text from the database: those go to the log.

About 400 lines, kept in one module: the checks above are one request's path, and splitting them would
scatter the security rules a reviewer must read together.
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from hardware.base import DeviceError, DeviceState
from hardware.http_limits import (
    MAX_BODY,
    MAX_BODY_LIMIT,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_LIMIT,
    MAX_TIMEOUT,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    ConnectionSlots,
    LimitedHandler,
    LimitedHTTPServer,
    busy_response,
)
from hardware.plate_reader.alpr_payload import (
    MAX_JSON_DEPTH,
    MAX_JSON_DEPTH_LIMIT,
    WebhookRejected,
    parse_alpr_group,
    shown,
)
from hardware.plate_reader.base import PlateEvent, PlateReader
from hardware.plate_reader.camera_auth import (
    NO_SECRET,
    SIGNATURE_HEADER,
    TOKEN_HEADER,
    CameraAuth,
    Headers,
    Scope,
    Unauthorized,
    sign_body,
)

# Kept importable from here: the tests and the CLI name them through this module.
__all__ = ["NO_SECRET", "RETRY_AFTER", "SIGNATURE_HEADER", "TOKEN_HEADER", "CameraAuth", "HttpPlateReader",
           "PlateWebhookReceiver", "Reply", "TransientRecordError", "WebhookRejected", "parse_alpr_group",
           "parse_listen_address", "receiver_options", "sign_body"]

log = logging.getLogger(__name__)

RETRY_AFTER = 30  # seconds, when the database is unreachable
BUSY_RETRY_AFTER = 5  # seconds, over the connection cap
OPTION_NAMES = frozenset({"host", "secrets", "secret", "allow_from", "require_signature", "max_connections",
                          "read_timeout", "request_timeout", "max_body", "max_json_depth"})

Record = Callable[[PlateEvent], int]


class TransientRecordError(Exception):
    """A `record` callable may raise this for "not now, send it again" (503 with Retry-After)."""


def receiver_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`hardware.plate_reader.options` -> PlateWebhookReceiver keyword arguments. ValueError names the fix."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown plate receiver option(s) {', '.join(unknown)}: use {', '.join(sorted(OPTION_NAMES))}.")
    kwargs: dict[str, Any] = {"auth": CameraAuth.from_options(options)}
    # Each limit within its range, or refused here (one line naming the option and the range): a huge or infinite
    # timeout cannot be given to a socket and would fail every request, a huge cap or body limit is no limit.
    for name, kind, low, high in (("max_connections", int, 1, MAX_CONNECTIONS_LIMIT),
                                  ("max_body", int, 1, MAX_BODY_LIMIT),
                                  ("max_json_depth", int, 1, MAX_JSON_DEPTH_LIMIT),
                                  ("read_timeout", float, 0.01, MAX_TIMEOUT),
                                  ("request_timeout", float, 0.01, MAX_TIMEOUT)):
        if name in options:
            value = options[name]
            if kind is int:
                ok = (not isinstance(value, bool) and isinstance(value, (int, float))
                      and (isinstance(value, int) or value.is_integer()) and low <= value <= high)
                if not ok:
                    raise ValueError(f"{name} must be a whole number from {low} to {high}, not {shown(value)}.")
            else:
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value <= high
                if not ok:  # NaN and infinity fail the range check too
                    raise ValueError(f"{name} must be a number of seconds from {low:g} to {high:g}, not {shown(value)}.")
            kwargs[name] = kind(value)
    return kwargs


# --- the endpoint ---------------------------------------------------------------------------------------------

class Reply(NamedTuple):
    status: HTTPStatus
    payload: dict[str, Any]
    headers: dict[str, str] = {}


_TRANSIENT = frozenset({"OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError",
                        "IntegrityError", "ConnectionError", "DatabaseUnreachable", "DiskFull"})


def _failure_kind(exc: BaseException) -> str:
    """"transient" (send again later), "data" (the value cannot be stored) or "internal". By class name along the
    exception's chain: hardware/ knows no database library (SQLAlchemy and the DB-API drivers name theirs so)."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    for item in chain:
        if isinstance(item, (TransientRecordError, ConnectionError, TimeoutError)):
            return "transient"
        names = {cls.__name__ for cls in type(item).__mro__}
        if names & _TRANSIENT:
            return "transient"
        if "DataError" in names:
            return "data"
    return "internal"


_URL_SECRET = re.compile(r"(/plate/)[^\s/?#\"]+|([?&]token=)[^&\s#\"]*", re.IGNORECASE)


class _Handler(LimitedHandler):
    server: _Server
    log_label = "plate webhook"
    logger = log

    def redact(self, text: str) -> str:
        return _URL_SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)

    def _address_ok(self) -> bool:
        receiver = self.server.receiver
        if receiver.auth.address_allowed(self.client_address[0]):
            return True
        receiver.count("unauthorized")
        log.warning("plate webhook: refused %s %s from %s: address not in allow_from", self.command,
                    self.redact(urlsplit(self.path).path), self.client_address[0])
        self.reply_json(HTTPStatus.UNAUTHORIZED, {"error": "This address may not send plate reads."}, close=True)
        return False

    def do_GET(self) -> None:
        if not self._address_ok():
            return
        receiver = self.server.receiver
        self.reply_json(HTTPStatus.OK, {"status": "ok", "accepted": receiver.accepted,
                                        "auth": "configured" if receiver.auth.configured else "missing"})

    def _not_allowed(self) -> None:
        self.reply_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST plate reads; GET is the health check."},
                        close=True, headers={"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def do_POST(self) -> None:
        if not self._address_ok():
            return
        receiver = self.server.receiver
        body = self.read_body(receiver.max_body)
        if body is None:
            if self.body_problem in ("too_large", "length"):
                receiver.count("rejected")
            return
        reply = receiver.receive(self.client_address[0], self.path, self.headers, body)
        self.reply_json(reply.status, reply.payload, close=reply.status >= 400, headers=reply.headers)


class _Server(LimitedHTTPServer):
    receiver: PlateWebhookReceiver


class PlateWebhookReceiver:
    """The HTTP endpoint. `record(event) -> session id`; a ValueError from it (bad plate, unknown camera) is a 400."""

    def __init__(self, record: Record | None, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[PlateEvent, int | None], None] | None = None, *,
                 auth: CameraAuth | None = None, max_body: int = MAX_BODY, read_timeout: float = READ_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 max_json_depth: int = MAX_JSON_DEPTH) -> None:
        self.record = record
        self.host = host
        self.port = port
        self.on_event = on_event
        self.auth = auth or CameraAuth()
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.request_timeout = request_timeout
        self.max_json_depth = max_json_depth
        self.slots = ConnectionSlots(max_connections)
        self.accepted = 0
        self.rejected = 0  # 400s and 413s: bad bodies, bad plates
        self.unauthorized = 0  # 401s: no or wrong credentials, or an address outside allow_from
        self.forbidden = 0  # 403s: another camera's id
        self.failed = 0  # 500s and 503s: the read could not be recorded
        self.last_error: str | None = None
        self._counting = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def count(self, name: str) -> None:
        with self._counting:
            setattr(self, name, getattr(self, name) + 1)

    def receive(self, client: str, path: str, headers: Headers, body: bytes) -> Reply:
        """One POST from `client` (whose address already passed the allow-list): authenticate, parse, record."""
        try:
            scope = self.auth.authenticate(headers, path, body)
        except Unauthorized as exc:
            self.count("unauthorized")
            self.last_error = f"401 from {client}: {exc}"
            log.warning("plate webhook: refused a read from %s: %s", client, exc)
            return Reply(HTTPStatus.UNAUTHORIZED, {"error": str(exc)},
                         {"WWW-Authenticate": 'Bearer realm="clarity plate camera"'})
        return self.handle(body, scope)

    def handle(self, body: bytes, scope: Scope = None) -> Reply:
        """An authenticated body, covering the cameras in `scope` (None: every camera)."""
        try:
            event = parse_alpr_group(body, self.max_json_depth)
        except WebhookRejected as exc:
            return self._reject(str(exc))
        if event is None:
            return Reply(HTTPStatus.ACCEPTED, {"ignored": True})
        if scope is not None and event.lane.lower() not in scope:
            self.count("forbidden")
            log.warning("plate webhook: a camera's credentials were used for camera_id %r", event.lane)
            return Reply(HTTPStatus.FORBIDDEN, {"error": f"These credentials do not cover camera_id {event.lane!r}."})
        session_id = None
        if self.record is not None:
            try:
                session_id = self.record(event)
            except ValueError as exc:  # InvalidPlate, UnknownLane: the sender must fix the message or mapping
                return self._reject(str(exc))
            except Exception as exc:  # noqa: BLE001 - details to the log, never to the sender
                return self._failed(exc, event)
        self.count("accepted")
        if self.on_event is not None:
            self.on_event(event, session_id)
        return Reply(HTTPStatus.CREATED, {"session_id": session_id, "plate": event.plate, "camera_id": event.lane})

    def _reject(self, reason: str) -> Reply:
        self.count("rejected")
        self.last_error = reason
        return Reply(HTTPStatus.BAD_REQUEST, {"error": reason})

    def _failed(self, exc: Exception, event: PlateEvent) -> Reply:
        self.count("failed")
        kind = _failure_kind(exc)
        log.error("plate webhook: the read of camera %r could not be recorded (%s)", event.lane, kind, exc_info=exc)
        if kind == "transient":
            self.last_error = "The database is unreachable: reads are refused with 503 until it is back."
            return Reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "The read could not be recorded now: send it again later."},
                         {"Retry-After": str(RETRY_AFTER)})
        if kind == "data":
            self.last_error = "A read was refused by the database (see the log)."
            return self._reject("The read holds a value the database cannot store: it was not recorded.")
        self.last_error = "A read could not be recorded: an internal error (see the log)."
        return Reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "The read could not be recorded: an internal error."})

    @property
    def timed_out(self) -> int:
        return self.slots.timed_out

    def start(self) -> None:
        try:
            server = _Server((self.host, self.port), _Handler, slots=self.slots, read_timeout=self.read_timeout,
                             request_timeout=self.request_timeout, busy_reply=busy_response(BUSY_RETRY_AFTER),
                             name="plate webhook")
        except OSError as exc:
            raise DeviceError(f"Cannot listen for plate cameras on {self.host}:{self.port} ({exc.strerror or exc}): "
                              "pick a free port in hardware.plate_reader.port.", code="offline") from exc
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="plate-webhook", daemon=True)
        self._thread.start()
        if not self.auth.configured:
            log.warning("plate webhook listening on %s WITHOUT a camera secret: %s", self.url, NO_SECRET)
        else:
            log.info("plate webhook listening on %s (%d camera secret(s)%s%s)", self.url, len(self.auth.secrets),
                     ", a shared secret" if self.auth.secret else "",
                     f", from {', '.join(map(str, self.auth.allow_from))}" if self.auth.allow_from else "")

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

    def __enter__(self) -> PlateWebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_listen_address(port: str | int | None, default_host: str = "127.0.0.1", default_port: int = 8088) -> tuple[str, int]:
    """"8088", "0.0.0.0:8088" or None -> (host, port)."""
    if port is None or str(port).strip() == "":
        return default_host, default_port
    text = str(port).strip()
    host, _, num = text.rpartition(":")
    try:
        return (host or default_host), int(num)
    except ValueError:
        raise DeviceError(f"Plate reader port '{text}' is not a port number (e.g. 8088 or 0.0.0.0:8088).", code="config") from None


@dataclass
class HttpPlateReader(PlateReader):
    """The plate reader that cameras push to. With `record`, each read is recorded as it arrives.

    `options` are `hardware.plate_reader.options` (see `receiver_options`): the camera secrets, the address
    allow-list and the limits."""

    host: str = "127.0.0.1"
    port: int = 8088
    record: Record | None = None
    options: dict[str, Any] = field(default_factory=dict)
    driver_name: str = field(init=False, default="http")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._queue: asyncio.Queue[PlateEvent] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        settings = receiver_options({k: v for k, v in self.options.items() if k != "host"})
        self.receiver = PlateWebhookReceiver(None, self.host, self.port, on_event=self._forward, **settings)
        self.last_session_id: int | None = None

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> HttpPlateReader:
        host, number = parse_listen_address(port, str(options.get("host", "127.0.0.1")))
        return cls(host=host, port=number, record=context.get("record_plate"), options=dict(options))

    @property
    def records_itself(self) -> bool:
        return self.record is not None

    @property
    def port_description(self) -> str:
        return f"http://{self.host}:{self.receiver.port or self.port}/"

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.receiver.record = self.record
        try:
            await asyncio.to_thread(self.receiver.start)
        except DeviceError as exc:
            self._set_status(DeviceState.ERROR, str(exc))
            raise
        if not self.receiver.auth.configured:
            # Listening (health check, doctor) but refusing every read: loud on the board and the hardware screen.
            self._set_status(DeviceState.ERROR, NO_SECRET)
            return
        self._set_status(DeviceState.CONNECTED)

    async def close(self) -> None:
        await asyncio.to_thread(self.receiver.stop)
        self._set_status(DeviceState.DISCONNECTED)

    def _forward(self, event: PlateEvent, session_id: int | None) -> None:
        self.last_session_id = session_id
        if self._loop is not None and self._queue is not None and not self.records_itself:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[PlateEvent]:
        if self._queue is None:
            raise DeviceError("Open the plate receiver before reading events.")
        while self.receiver._server is not None:
            yield await self._queue.get()
