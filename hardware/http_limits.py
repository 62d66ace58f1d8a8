"""Limits shared by the small stdlib HTTP endpoints (the plate-camera webhook, the Stripe webhook).

Both listen with `http.server` in a thread: one endpoint each needs no framework, but a LAN is not a friendly
place, so every endpoint gets the same guards:

- a read timeout on each read of the socket (`read_timeout`), and a deadline for the whole request, request line
  to last body byte (`request_timeout`): a client that sends nothing, or a byte now and then, is dropped;
- a cap on connections served at once (`ConnectionSlots`): the accept loop refuses the connection over the cap
  itself (closed at once, or a canned `503` with `Retry-After`), so no thread is ever started for it and the
  thread count stays at the cap plus the accept loop, whatever the clients do;
- a body limit and a strict `Content-Length` (`read_body`);
- a bound on JSON nesting checked without recursion (`json_nesting_exceeds`), before `json.loads` sees the body.

Headless (no Textual, no clarity_tui): hardware/ drivers use it, and clarity_tui may import it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000
READ_TIMEOUT = 10.0  # seconds a client may take for each read of its request
REQUEST_TIMEOUT = 30.0  # seconds for a whole request, however the client paces its bytes
MAX_CONNECTIONS = 16
# The bounds of the settings: a timeout past MAX_TIMEOUT (or infinite) cannot be given to a socket and would make
# every request fail; the others bound what one client, or a typo, can make the endpoint hold.
MAX_TIMEOUT = 300.0
MAX_BODY_LIMIT = 32 * 1024 * 1024
MAX_CONNECTIONS_LIMIT = 1024

_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
# Every C0/C1 control character and DEL, shown escaped in log lines (a request line is attacker text).
_LOG_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def busy_response(retry_after: int = 5) -> bytes:
    """The canned answer for a connection over the cap: 503, Retry-After, closed."""
    body = json.dumps({"error": "busy", "retry_after": retry_after}).encode()
    return (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {retry_after}\r\nConnection: close\r\n\r\n").encode() + body


class ConnectionSlots:
    """How many connections are being served; at most `limit`. Counters for tests and `doctor`."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_connections must be at least 1, not {limit}.")
        self.limit = limit
        self.open = 0
        self.peak = 0  # the most served at once, ever
        self.accepted = 0  # connections given a slot
        self.refused = 0  # connections over the cap
        self.timed_out = 0  # connections dropped by the read timeout or the request deadline
        self._sockets: set[socket.socket] = set()
        self._cond = threading.Condition()

    def enter(self, request: socket.socket) -> bool:
        with self._cond:
            if self.open >= self.limit:
                self.refused += 1
                self._cond.notify_all()
                return False
            self.open += 1
            self.accepted += 1
            self.peak = max(self.peak, self.open)
            self._sockets.add(request)
            self._cond.notify_all()
            return True

    def leave(self, request: socket.socket) -> None:
        with self._cond:
            self.open -= 1
            self._sockets.discard(request)
            self._cond.notify_all()

    def note_timeout(self) -> None:
        with self._cond:
            self.timed_out += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait until `predicate(self)` holds (re-checked on every change); False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is being served (tests; a clean stop); False if `timeout` passed first."""
        return self.wait_for(lambda slots: slots.open == 0, timeout)

    def drop_all(self) -> None:
        """Cut every connection being served (on stop), so their threads end now, not at their timeouts."""
        with self._cond:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose every read waits at most the read timeout, and never past the request's
    deadline: a client that trickles a byte at a time still meets the deadline."""

    def __init__(self, handler: LimitedHandler) -> None:
        super().__init__()
        self._handler = handler
        self._sock: socket.socket = handler.connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        handler = self._handler
        remaining = handler.deadline - time.monotonic()
        if remaining <= 0:
            handler.note_timeout()
            raise TimeoutError("the request took longer than its deadline")
        self._sock.settimeout(min(handler.server.read_timeout, remaining))
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            handler.note_timeout()
            raise


def _timeout(name: str, value: float) -> float:
    """A timeout a socket accepts: above 0 and at most MAX_TIMEOUT seconds (not NaN, not infinite)."""
    seconds = float(value)
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ValueError(f"{name} must be above 0 and at most {MAX_TIMEOUT:g} seconds, not {value!r}.")
    return seconds


class LimitedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap enforced in the accept loop, and timeouts for its handlers."""

    daemon_threads = True
    request_queue_size = 128  # a burst of connects waits in the kernel, then meets the cap

    def __init__(self, address: tuple[str, int], handler: type[LimitedHandler], *, slots: ConnectionSlots,
                 read_timeout: float = READ_TIMEOUT, request_timeout: float = REQUEST_TIMEOUT,
                 busy_reply: bytes | None = None, name: str = "http") -> None:
        self.slots = slots
        self.read_timeout = _timeout("read_timeout", read_timeout)
        self.request_timeout = _timeout("request_timeout", request_timeout)
        self.busy_reply = busy_reply
        self.name = name
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.enter(request):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.leave(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.leave(request)

    def _refuse(self, request: socket.socket) -> None:
        """Over the cap, on the accept loop's thread: never blocks (non-blocking socket), never starts a thread."""
        if self.busy_reply is not None:
            try:
                request.setblocking(False)
                for _ in range(16):  # what the client already sent, so closing does not reset the answer away
                    if not request.recv(65536):
                        break
            except OSError:
                pass
            try:
                request.send(self.busy_reply)
            except OSError:
                pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-request is routine on a LAN, not a traceback on stderr.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.info("%s: connection from %s ended: %s", self.name, client_address[0], exc)
        else:
            log.exception("%s: request from %s failed", self.name, client_address[0])

    def stop(self) -> None:
        """Stop accepting, cut the connections being served, and wait for their threads."""
        self.shutdown()
        self.slots.drop_all()
        self.server_close()


class LimitedHandler(BaseHTTPRequestHandler):
    """Base handler: timeouts from the server, JSON replies, a strict body reader. Subclasses add do_* methods.

    One request per connection: every answer says `Connection: close` and the connection is closed after it, so
    the request deadline is also the connection's lifetime and a keep-alive client cannot hold a slot by sending
    a cheap request now and then (cameras and Stripe post one message per connection anyway)."""

    server: LimitedHTTPServer
    protocol_version = "HTTP/1.1"
    # The stdlib's default, HTTP/0.9, answers a malformed request line with a bare body and no status line.
    default_request_version = "HTTP/1.0"
    log_label = "http"
    logger = log  # subclasses log under their own module's name
    deadline = 0.0
    body_problem: str | None = None  # after read_body returned None: length, too_large, timeout or gone

    def setup(self) -> None:
        self.deadline = time.monotonic() + self.server.request_timeout
        super().setup()
        # The server's read timeout on the socket (the stdlib reads it from a class attribute, shared by every server).
        self.connection.settimeout(self.server.read_timeout)
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(self), 8192)

    def handle_one_request(self) -> None:
        # The deadline (set in setup) covers the connection's one request, from the wait for its first byte to
        # its last; never reset, so no connection outlives it whatever it sends.
        try:
            super().handle_one_request()
        finally:
            self.close_connection = True

    def note_timeout(self) -> None:
        self.server.slots.note_timeout()
        self.close_connection = True

    def redact(self, text: str) -> str:
        """Log lines pass through here: subclasses hide secrets that may be in a request line."""
        return text

    def log_message(self, format: str, *args: Any) -> None:
        text = self.redact(format % args).translate(_LOG_ESCAPES)
        self.logger.info("%s %s: %s", self.log_label, self.client_address[0], text)

    def reply_json(self, status: HTTPStatus, payload: Mapping[str, Any], *, close: bool = False,
                   headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.connection.settimeout(self.server.read_timeout)  # a whole read timeout for the answer to leave
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        # Every answer closes its connection (see the class docstring); `close` is kept for the callers' sake.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self, max_body: int, *, too_large: HTTPStatus = HTTPStatus.REQUEST_ENTITY_TOO_LARGE) -> bytes | None:
        """The request body, or None when the request was answered (411, `too_large`) or dropped (timeout, the
        client hung up); `body_problem` then says which. A chunked body is refused: a Content-Length is needed
        to apply the limit before reading."""
        self.body_problem = None
        lengths = self.headers.get_all("Content-Length") or []
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked or len(lengths) != 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            self.body_problem = "length"
            self.reply_json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required."}, close=True)
            return None
        length = int(lengths[0])
        if length > max_body:
            self.body_problem = "too_large"
            self.reply_json(too_large, {"error": f"Body over {max_body} bytes."}, close=True)
            return None
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            self.body_problem = "timeout"  # too slow to send its body: dropped without an answer
            self.close_connection = True
            return None
        if len(body) < length:
            self.body_problem = "gone"
            self.close_connection = True
            return None
        return body


def json_nesting_exceeds(data: bytes, limit: int) -> bool:
    """True when arrays/objects in `data` nest deeper than `limit` (or open and are never closed that deep).

    No recursion and no parse: escapes and strings are removed at C speed, then only the brackets are counted,
    stopping at the first one past the limit. Meant for bodies already under a size limit; a body that is not
    JSON at all is left for json.loads to refuse.

    `data` must be UTF-8 (check it first, and give json.loads the decoded text, never these bytes): in another
    encoding a byte that looks like a quote can hide brackets from this scan (UTF-16 "\u4122" is b'"A'), while
    json.loads, which guesses UTF-16/32 from bytes, would still see them."""
    stripped = _STRINGS.sub(b"", _ESCAPES.sub(b"", data))
    depth = 0
    for byte in stripped.translate(None, _NOT_BRACKETS):
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


_ESCAPES = re.compile(rb"\\.", re.DOTALL)
_STRINGS = re.compile(rb'"[^"]*"')
_OPENERS = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


__all__ = ["MAX_BODY", "MAX_BODY_LIMIT", "MAX_CONNECTIONS", "MAX_CONNECTIONS_LIMIT", "MAX_TIMEOUT", "READ_TIMEOUT",
           "REQUEST_TIMEOUT", "ConnectionSlots", "LimitedHTTPServer",
           "LimitedHandler", "busy_response", "json_nesting_exceeds"]
