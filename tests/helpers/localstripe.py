"""A real localstripe server on 127.0.0.1 in a subprocess (tests/payments/localstripe_server.py), and its
test-only /_config endpoints (data wipes, injected faults)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "payments" / "localstripe_server.py"
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
