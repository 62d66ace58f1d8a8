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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import threading
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

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
    json_nesting_exceeds,
)
from hardware.plate_reader.base import PlateEvent, PlateReader

log = logging.getLogger(__name__)

# An alpr_group nests 4 deep (message > vehicle > make > [candidates]); well past that is an attack, refused
# before json.loads (whose C parser would otherwise recurse once per level).
MAX_JSON_DEPTH = 8
MAX_JSON_DEPTH_LIMIT = 64  # the most max_json_depth may be set to
NOT_UTF8 = "The body must be UTF-8 JSON."
MIN_SECRET_LENGTH = 16
RETRY_AFTER = 30  # seconds, when the database is unreachable
BUSY_RETRY_AFTER = 5  # seconds, over the connection cap
TOKEN_HEADER = "X-Clarity-Token"
SIGNATURE_HEADER = "X-Clarity-Signature"
MAX_CAMERA_ID = 64  # Lane.camera_id
# Agent messages that are not plate reads: acknowledged, never recorded.
IGNORED_TYPES = frozenset({"heartbeat", "alpr_alert", "vehicle"})
NO_SECRET = ("No camera secret is configured (hardware.plate_reader.options.secrets, or .secret): every plate read "
             "is refused with 401 until one is set.")
OPTION_NAMES = frozenset({"host", "secrets", "secret", "allow_from", "require_signature", "max_connections",
                          "read_timeout", "request_timeout", "max_body", "max_json_depth"})

Record = Callable[[PlateEvent], int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookRejected(ValueError):
    """The body cannot become a plate read; str() says why (sent back with the 400)."""


class Unauthorized(Exception):
    """The request's credentials are missing or wrong; str() says which (never the secret)."""


class TransientRecordError(Exception):
    """A `record` callable may raise this for "not now, send it again" (503 with Retry-After)."""


def _has_control(text: str) -> str | None:
    """The first control/format character (Unicode category C*) in text, as U+XXXX, or None."""
    for ch in text:
        if unicodedata.category(ch)[0] == "C":
            return f"U+{ord(ch):04X}"
    return None


def _text(value: Any, name: str, limit: int) -> str:
    """A text field of the message, stripped, without control characters, cut to `limit` (the column's size)."""
    if not isinstance(value, str):
        raise WebhookRejected(f"{name} must be text.")
    bad = _has_control(value)
    if bad:
        raise WebhookRejected(f"{name} holds a control character ({bad}): refused.")
    return value.strip()[:limit]


def _first_name(vehicle: dict, key: str) -> str | None:
    items = vehicle.get(key)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        name = items[0].get("name")
        if isinstance(name, str) and name.strip():
            return _text(name, f"vehicle.{key}", 80)
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _confidence(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WebhookRejected(f"best_confidence must be a number, got {_shown(value)}.")
    # OpenALPR reports percent (0-100); keep 0..1 like the rest of the app.
    value = float(value) / 100.0 if value > 1 else float(value)
    if not 0 <= value <= 1:
        raise WebhookRejected(f"best_confidence {value!r} is out of range.")
    return round(value, 4)


def _camera_id(value: Any) -> str:
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise WebhookRejected("No camera_id in the message: the lane cannot be known.")
    if not isinstance(value, (str, int)):
        raise WebhookRejected("camera_id must be text or a number.")
    camera = _text(str(value), "camera_id", 10_000)
    if len(camera) > MAX_CAMERA_ID:
        raise WebhookRejected(f"camera_id is longer than {MAX_CAMERA_ID} characters.")
    return camera


def parse_alpr_group(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> PlateEvent | None:
    """An `alpr_group` body -> PlateEvent (lane = the camera id). None for messages to acknowledge and ignore.

    Structure only: the plate's own rule (alphabet, transliteration, length) is the sessions service's
    (clarity_tui/services/plates.py), applied when the read is recorded. Every text field is refused here if it
    holds a control character, so none reaches the database or a terminal."""
    if isinstance(body, str):
        text = body
        raw = body.encode("utf-8", "surrogatepass")
    else:
        # Strict UTF-8 first (a UTF-8 BOM is allowed and dropped): json.loads would guess UTF-16/32 from the
        # bytes, and in those a byte that looks like a quote hides brackets from the depth scan. The scan then
        # reads validated UTF-8 (whose multi-byte characters hold no ASCII byte), and json.loads the same text.
        raw = body.removeprefix(b"\xef\xbb\xbf")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected(NOT_UTF8) from None
        if "\x00" in text:  # never in JSON text (not even in a string), always in UTF-16/32 text of ASCII
            raise WebhookRejected(NOT_UTF8)
    if json_nesting_exceeds(raw, max_depth):
        raise WebhookRejected(f"Body nests deeper than {max_depth} levels: not an alpr_group message.")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected(f"Body is not JSON ({_shown(str(exc))[1:-1]}).") from None
    if not isinstance(data, dict):
        raise WebhookRejected("Body must be a JSON object.")
    data_type = data.get("data_type")
    if isinstance(data_type, str) and data_type in IGNORED_TYPES:
        return None
    if data_type != "alpr_group":
        raise WebhookRejected(f"Unsupported data_type {_shown(data_type)}: send alpr_group messages.")
    best = data.get("best_plate") if isinstance(data.get("best_plate"), dict) else {}
    plate = data.get("best_plate_number") or best.get("plate")
    if not isinstance(plate, str) or not plate.strip():
        raise WebhookRejected("No plate in the message (best_plate_number or best_plate.plate).")
    bad = _has_control(plate)
    if bad:
        raise WebhookRejected(f"The plate holds a control character ({bad}): it is not a plate and was not recorded.")
    camera = _camera_id(data.get("camera_id"))
    region = data.get("best_region") or best.get("region") or ""
    region = _text(region, "best_region", 16)
    confidence = _confidence(data.get("best_confidence", best.get("confidence")))
    vehicle = data.get("vehicle") if isinstance(data.get("vehicle"), dict) else {}
    make = _first_name(vehicle, "make")
    model = _first_name(vehicle, "make_model")
    if model and make and model.lower().startswith(make.lower() + "_"):
        model = model[len(make) + 1 :]
    colour = _first_name(vehicle, "color")
    uuid = data.get("best_uuid")
    image_ref = _text(str(uuid), "best_uuid", 200) if isinstance(uuid, (str, int)) and not isinstance(uuid, bool) and uuid != "" else None
    return PlateEvent(
        plate=plate.strip(),
        lane=camera,
        region=region,
        confidence=confidence,
        make=make.replace("-", " ").title()[:40] if make else None,
        model=model.replace("_", " ").replace("-", " ").title()[:40] if model else None,
        colour=colour.replace("-", " ")[:24] if colour else None,
        image_ref=image_ref or None,
    )


# --- who may post ---------------------------------------------------------------------------------------------

Scope = frozenset[str] | None  # the camera ids a request's credentials cover (lower case); None: every camera


def _narrow(a: Scope, b: Scope) -> Scope:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _check_secret(secret: Any, where: str) -> str:
    if not isinstance(secret, str):
        raise ValueError(f"{where} must be text.")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{where} is {len(secret)} characters: use at least {MIN_SECRET_LENGTH} random ones "
                         "(e.g. the output of `python -c \"import secrets; print(secrets.token_urlsafe(24))\"`).")
    if not secret.isprintable() or any(ch.isspace() for ch in secret) or not secret.isascii():
        raise ValueError(f"{where} must be printable ASCII without spaces (it may travel in a header or a URL).")
    return secret


def _network(entry: Any) -> Network:
    try:
        return ipaddress.ip_network(str(entry).strip(), strict=False)
    except ValueError:
        raise ValueError(f"allow_from entry {entry!r} is not an address or a network (e.g. 192.168.10.0/24).") from None


@dataclass(frozen=True)
class CameraAuth:
    """Who may post plate reads. Empty (the default): nobody, until a secret is configured."""

    secrets: Mapping[str, str] = field(default_factory=dict)  # camera_id -> its secret
    secret: str = ""  # one secret that every camera may use
    allow_from: tuple[Network, ...] = ()  # empty: any address
    require_signature: bool = False

    def __post_init__(self) -> None:
        for camera, secret in self.secrets.items():
            if not isinstance(camera, str) or not camera.strip():
                raise ValueError("secrets must map each camera_id to its secret.")
            _check_secret(secret, f"The secret for camera {camera!r}")
        if self.secret:
            _check_secret(self.secret, "The shared camera secret")
        object.__setattr__(self, "_keys", tuple((camera.strip().lower(), secret.encode())
                                                for camera, secret in self.secrets.items()))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CameraAuth:
        """From `hardware.plate_reader.options`: secrets = {camera_id = secret}, secret, allow_from, require_signature."""
        secrets = options.get("secrets") or {}
        if not isinstance(secrets, Mapping):
            raise ValueError("secrets must map each camera_id to its secret, e.g. secrets = {\"cam-lane1\" = \"...\"}.")
        allow = options.get("allow_from") or ()
        if isinstance(allow, str):
            allow = [part for part in allow.split(",") if part.strip()]
        if not isinstance(allow, (list, tuple)):
            raise ValueError("allow_from must be a list of addresses or networks, e.g. [\"192.168.10.0/24\"].")
        require = options.get("require_signature", False)
        if not isinstance(require, bool):
            raise ValueError("require_signature must be true or false.")
        return cls(secrets=dict(secrets), secret=options.get("secret") or "",
                   allow_from=tuple(_network(entry) for entry in allow), require_signature=require)

    @property
    def configured(self) -> bool:
        return bool(self.secrets or self.secret)

    def address_allowed(self, host: str) -> bool:
        if not self.allow_from:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.allow_from)

    def _match(self, check: Callable[[bytes], bool]) -> Scope | bool:
        """Every secret is tried (no early exit): the cameras whose secret passes `check`; None when the shared
        secret does; False when none does."""
        shared = bool(self.secret) and check(self.secret.encode())
        cameras = frozenset(camera for camera, secret in self._keys if check(secret))  # type: ignore[attr-defined]
        if shared:
            return None
        return cameras or False

    def authenticate(self, headers: Mapping[str, str], path: str, body: bytes) -> Scope:
        """The cameras these credentials cover, or Unauthorized. Every credential presented must be right."""
        if not self.configured:
            raise Unauthorized(NO_SECRET)
        tokens: list[str] = []
        if headers.get(TOKEN_HEADER) is not None:
            tokens.append(headers[TOKEN_HEADER].strip())
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthorized("Authorization must be 'Bearer <the camera's token>'.")
            tokens.append(value.strip())
        url = urlsplit(path)
        in_path = re.fullmatch(r"/plate/([^/]+)/?", url.path)
        if in_path:
            tokens.append(unquote(in_path.group(1)))
        tokens.extend(parse_qs(url.query, keep_blank_values=True).get("token", []))
        signature = headers.get(SIGNATURE_HEADER)
        if not tokens and signature is None:
            raise Unauthorized(f"No credentials: send the camera's token ({TOKEN_HEADER}, Authorization: Bearer, "
                               f"/plate/<token> or ?token=) or sign the body ({SIGNATURE_HEADER}: sha256=<hex>).")
        if self.require_signature and signature is None:
            raise Unauthorized(f"This receiver requires {SIGNATURE_HEADER}: sha256=<HMAC-SHA256 of the body>.")
        scope: Scope = None
        for token in tokens:
            given = token.encode("utf-8", "replace")
            matched = self._match(lambda secret, given=given: hmac.compare_digest(given, secret))
            if matched is False:
                raise Unauthorized("Wrong token.")
            scope = _narrow(scope, matched)  # type: ignore[arg-type]
        if signature is not None:
            digest = signature.strip()
            if digest[:7].lower() == "sha256=":
                digest = digest[7:]
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise Unauthorized(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>.")
            digest = digest.lower()
            matched = self._match(lambda secret: hmac.compare_digest(
                hmac.new(secret, body, hashlib.sha256).hexdigest(), digest))
            if matched is False:
                raise Unauthorized("Bad signature: the body's HMAC does not match the camera's secret.")
            scope = _narrow(scope, matched)  # type: ignore[arg-type]
        if scope is not None and not scope:
            raise Unauthorized("The credentials belong to different cameras.")
        return scope


def sign_body(body: bytes, secret: str) -> str:
    """The X-Clarity-Signature value for `body` (tests, and cameras configured by script)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
                    raise ValueError(f"{name} must be a whole number from {low} to {high}, not {_shown(value)}.")
            else:
                ok = not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value <= high
                if not ok:  # NaN and infinity fail the range check too
                    raise ValueError(f"{name} must be a number of seconds from {low:g} to {high:g}, not {_shown(value)}.")
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

    def receive(self, client: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
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
