"""Camera webhooks: OpenALPR / Rekor Scout `alpr_group` JSON over HTTP on a local port.

Each POST is checked completely before anything is recorded, then handed to the
injected `record` callable (the sessions service, one transaction). A bad body
gets a 400 with the reason and records nothing. stdlib `http.server` in a
thread: one small endpoint needs no framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hardware.base import DeviceError, DeviceState
from hardware.plate_reader.base import PlateEvent, PlateReader

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000
# Agent messages that are not plate reads: acknowledged, never recorded.
IGNORED_TYPES = frozenset({"heartbeat", "alpr_alert", "vehicle"})

Record = Callable[[PlateEvent], int]


class WebhookRejected(ValueError):
    """The body cannot become a plate read; str() says why (sent back with the 400)."""


def _first_name(vehicle: dict, key: str) -> str | None:
    items = vehicle.get(key)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        name = items[0].get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


def _confidence(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WebhookRejected(f"best_confidence must be a number, got {value!r}.")
    # OpenALPR reports percent (0-100); keep 0..1 like the rest of the app.
    value = float(value) / 100.0 if value > 1 else float(value)
    if not 0 <= value <= 1:
        raise WebhookRejected(f"best_confidence {value!r} is out of range.")
    return round(value, 4)


def parse_alpr_group(body: bytes | str) -> PlateEvent | None:
    """An `alpr_group` body -> PlateEvent (lane = the camera id). None for messages to acknowledge and ignore."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(f"Body is not JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise WebhookRejected("Body must be a JSON object.")
    data_type = data.get("data_type")
    if data_type in IGNORED_TYPES:
        return None
    if data_type != "alpr_group":
        raise WebhookRejected(f"Unsupported data_type {data_type!r}: send alpr_group messages.")
    best = data.get("best_plate") if isinstance(data.get("best_plate"), dict) else {}
    plate = data.get("best_plate_number") or best.get("plate")
    if not isinstance(plate, str) or not plate.strip():
        raise WebhookRejected("No plate in the message (best_plate_number or best_plate.plate).")
    camera = data.get("camera_id")
    if camera is None or isinstance(camera, bool) or str(camera).strip() == "":
        raise WebhookRejected("No camera_id in the message: the lane cannot be known.")
    region = data.get("best_region") or best.get("region") or ""
    confidence = _confidence(data.get("best_confidence", best.get("confidence")))
    vehicle = data.get("vehicle") if isinstance(data.get("vehicle"), dict) else {}
    make = _first_name(vehicle, "make")
    model = _first_name(vehicle, "make_model")
    if model and make and model.lower().startswith(make.lower() + "_"):
        model = model[len(make) + 1 :]
    colour = _first_name(vehicle, "color")
    return PlateEvent(
        plate=plate.strip(),
        lane=str(camera).strip(),
        region=str(region)[:16],
        confidence=confidence,
        make=make.replace("-", " ").title()[:40] if make else None,
        model=model.replace("_", " ").replace("-", " ").title()[:40] if model else None,
        colour=colour.replace("-", " ")[:24] if colour else None,
        image_ref=str(data.get("best_uuid"))[:200] if data.get("best_uuid") else None,
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # route to logging, not stderr
        log.info("plate webhook %s: " + fmt, self.client_address[0], *args)

    def _reply(self, status: HTTPStatus, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - a health check for technicians
        self._reply(HTTPStatus.OK, {"status": "ok", "accepted": self.server.receiver.accepted})

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required."})
            return
        if length > MAX_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"Body over {MAX_BODY} bytes."})
            self.close_connection = True
            return
        body = self.rfile.read(length)
        status, payload = self.server.receiver.handle(body)
        self._reply(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: PlateWebhookReceiver


class PlateWebhookReceiver:
    """The HTTP endpoint. `record(event) -> session id`; a ValueError from it (bad plate, unknown camera) is a 400."""

    def __init__(self, record: Record | None, host: str = "127.0.0.1", port: int = 0,
                 on_event: Callable[[PlateEvent, int | None], None] | None = None) -> None:
        self.record = record
        self.host = host
        self.port = port
        self.on_event = on_event
        self.accepted = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(self, body: bytes) -> tuple[HTTPStatus, dict]:
        try:
            event = parse_alpr_group(body)
        except WebhookRejected as exc:
            return self._reject(str(exc))
        if event is None:
            return HTTPStatus.ACCEPTED, {"ignored": True}
        session_id = None
        if self.record is not None:
            try:
                session_id = self.record(event)
            except ValueError as exc:  # InvalidPlate, UnknownLane: the sender must fix the message or mapping
                return self._reject(str(exc))
            except Exception as exc:  # noqa: BLE001 - a database outage: the camera should resend later
                log.exception("plate webhook could not be recorded")
                self.last_error = f"Could not record the read: {exc}"
                return HTTPStatus.SERVICE_UNAVAILABLE, {"error": self.last_error}
        self.accepted += 1
        if self.on_event is not None:
            self.on_event(event, session_id)
        return HTTPStatus.CREATED, {"session_id": session_id, "plate": event.plate, "camera_id": event.lane}

    def _reject(self, reason: str) -> tuple[HTTPStatus, dict]:
        self.rejected += 1
        self.last_error = reason
        return HTTPStatus.BAD_REQUEST, {"error": reason}

    def start(self) -> None:
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            raise DeviceError(f"Cannot listen for plate cameras on {self.host}:{self.port} ({exc.strerror or exc}): "
                              "pick a free port in hardware.plate_reader.port.", code="offline") from exc
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="plate-webhook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

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
    """The plate reader that cameras push to. With `record`, each read is recorded as it arrives."""

    host: str = "127.0.0.1"
    port: int = 8088
    record: Record | None = None
    driver_name: str = field(init=False, default="http")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._queue: asyncio.Queue[PlateEvent] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.receiver = PlateWebhookReceiver(None, self.host, self.port, on_event=self._forward)
        self.last_session_id: int | None = None

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> HttpPlateReader:
        host, number = parse_listen_address(port, str(options.get("host", "127.0.0.1")))
        return cls(host=host, port=number, record=context.get("record_plate"))

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
        while self.receiver._server is not None:  # noqa: SLF001
            yield await self._queue.get()
