"""A small Twilio-compatible Messages API on 127.0.0.1 for tests (real HTTP, the real wire shape).

POST /2010-04-01/Accounts/{sid}/Messages.json  (form: To, From, Body; basic auth) -> 201 message JSON
GET  /2010-04-01/Accounts/{sid}/Messages.json?From=&To=&DateSent>=  -> {"messages": [...]} newest first
`inbound(from_, body)` is the customer texting back (as Twilio would record it).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import threading
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class TwilioStub:
    def __init__(self, account_sid: str = "AC_test", auth_token: str = "secret", number: str = "+15125550100") -> None:
        self.account_sid, self.auth_token, self.number = account_sid, auth_token, number
        self.messages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.fail_next: tuple[int, dict[str, Any]] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _check(self) -> dict[str, Any] | None:
                expected = "Basic " + base64.b64encode(f"{stub.account_sid}:{stub.auth_token}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return {"code": 20003, "message": "Authenticate", "status": 401}
                if urlsplit(self.path).path != f"/2010-04-01/Accounts/{stub.account_sid}/Messages.json":
                    return {"code": 20404, "message": "The requested resource was not found", "status": 404}
                return None

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                stub.requests.append(("POST", self.path, form))
                problem = self._check()
                if problem:
                    return self._reply(problem["status"], problem)
                if stub.fail_next:
                    status, body = stub.fail_next
                    stub.fail_next = None
                    return self._reply(status, body)
                to = form.get("To", [""])[0]
                if not to.startswith("+"):
                    return self._reply(400, {"code": 21211, "message": f"The 'To' number {to} is not a valid phone "
                                                                        "number.", "status": 400})
                self._reply(201, stub._store(form["From"][0], to, form.get("Body", [""])[0], "outbound-api", "queued"))

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                stub.requests.append(("GET", self.path, query))
                problem = self._check()
                if problem:
                    return self._reply(problem["status"], problem)
                day = query.get("DateSent>", [""])[0].lstrip("=")
                with stub._lock:
                    found = [m for m in stub.messages
                             if m["from"] == query.get("From", [""])[0] and m["to"] == query.get("To", [""])[0]
                             and (not day or m["_at"].date().isoformat() >= day)]
                self._reply(200, {"messages": [{k: v for k, v in m.items() if k != "_at"}
                                               for m in reversed(found)], "page": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _store(self, from_: str, to: str, body: str, direction: str, status: str,
               at: dt.datetime | None = None) -> dict[str, Any]:
        at = (at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        with self._lock:
            msg = {"sid": f"SM{next(self._ids):032d}", "account_sid": self.account_sid, "from": from_, "to": to,
                   "body": body, "direction": direction, "status": status, "date_created": format_datetime(at),
                   "date_sent": format_datetime(at), "_at": at}
            self.messages.append(msg)
        return {k: v for k, v in msg.items() if k != "_at"}

    def inbound(self, from_: str, body: str, at: dt.datetime | None = None) -> None:
        self._store(from_, self.number, body, "inbound", "received", at)

    def __enter__(self) -> TwilioStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
