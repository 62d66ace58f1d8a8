"""`clarity-tui doctor` (issue 15, item 5): the database's integrity and every configured dependency by name.

Real processes against real servers on 127.0.0.1: a Twilio-compatible Messages API, an SMTP server
(aiosmtpd), a Stripe-shaped HTTP endpoint; and a SQLite file with damaged pages.
"""

from __future__ import annotations

import json
from contextlib import closing
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import forked
from tests.helpers.twilio_server import TwilioStub
from tests.helpers.db_faults import assert_one_line, corrupt

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["database", "database integrity", "card reader (simulated)", "signature pad (simulated)",
         "plate camera (simulated)", "tunnel controller (simulated)", "payment gateway", "sms provider", "mail server",
         "crash log"]


def clarity(env: dict[str, str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`clarity-tui ARGS` in its own process, forked from the warm interpreter (tests/helpers/forked.py)."""
    return forked.run(["-m", "clarity_tui", *args], capture_output=True, text=True, timeout=240,
                      env={**os.environ, **(env or {})}, cwd=ROOT)


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return clarity(env, *args, "doctor", "--json")


def checks_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_UPGRADED: dict[str, Path] = {}


@pytest.fixture
def site(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An upgraded SQLite site; the settings file is the empty one of the test environment. `db upgrade` runs
    once per test process; each test gets a copy of the file it made (every file it left: no WAL)."""
    if "site" not in _UPGRADED:
        template = tmp_path_factory.mktemp("upgraded")
        done = clarity(None, "--db", f"sqlite:///{template / 'site.db'}", "db", "upgrade")
        assert done.returncode == 0, done.stderr
        assert [f.name for f in template.iterdir()] == ["site.db"]
        _UPGRADED["site"] = template / "site.db"
    shutil.copyfile(_UPGRADED["site"], tmp_path / "site.db")
    url = f"sqlite:///{tmp_path / 'site.db'}"
    return {"CLARITY_DATABASE_URL": url, "CLARITY_HARDWARE__CARD_READER__OPTIONS": '{"delay": 0.01}'}


class StripeShaped:
    """GET /v1/customers as Stripe answers it: a list for the right key, 401 for any other."""

    def __init__(self, key: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") == f"Bearer {key}":
                    status, body = 200, {"object": "list", "data": [], "has_more": False, "url": "/v1/customers"}
                else:
                    status, body = 401, {"error": {"message": "Invalid API Key provided", "type": "invalid_request_error"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StripeShaped:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp_port() -> Iterator[int]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_every_dependency_is_checked_by_name_and_simulated_ones_warn_outside_simulator_mode(site: dict[str, str]) -> None:
    result = doctor(site)
    assert result.returncode == 0, result.stdout + result.stderr  # warnings alone are not failures
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["checks"]] == NAMES
    assert report["ok"] is True and report["warnings"] is True
    checks = checks_of(result)
    for name in ("card reader (simulated)", "signature pad (simulated)", "plate camera (simulated)",
                 "tunnel controller (simulated)", "payment gateway", "sms provider"):
        assert checks[name]["ok"] and checks[name]["warning"], checks[name]
        assert "simulated but this site is not in simulator mode" in checks[name]["detail"]
    assert checks["mail server"]["warning"] and "not configured" in checks["mail server"]["detail"]
    assert checks["database integrity"]["ok"] and "quick_check: ok" in checks["database integrity"]["detail"]
    human = clarity(site, "doctor")
    assert human.returncode == 0
    assert "WARN  card reader (simulated)" in human.stdout and "OK    database integrity" in human.stdout
    assert "all good, with warnings" in human.stdout
    # In simulator mode the same simulated devices are what is wanted: no warning.
    simulated = doctor(site, "--simulate")
    assert simulated.returncode == 0
    assert json.loads(simulated.stdout)["warnings"] is False


def test_the_real_sms_provider_mail_server_and_gateway_are_reached(site: dict[str, str], smtp_port: int) -> None:
    with TwilioStub() as twilio, StripeShaped("sk_test_doctor") as stripe_api:
        env = {**site, "CLARITY_MESSAGING__PROVIDER": "twilio",
               "CLARITY_MESSAGING__TWILIO__ACCOUNT_SID": twilio.account_sid,
               "CLARITY_MESSAGING__TWILIO__AUTH_TOKEN": twilio.auth_token,
               "CLARITY_MESSAGING__TWILIO__FROM_NUMBER": twilio.number,
               "CLARITY_MESSAGING__TWILIO__API_BASE": twilio.url,
               "CLARITY_SMTP__HOST": "127.0.0.1", "CLARITY_SMTP__PORT": str(smtp_port),
               "CLARITY_PAYMENTS__GATEWAY": "stripe", "CLARITY_PAYMENTS__STRIPE__API_KEY": "sk_test_doctor",
               "CLARITY_PAYMENTS__STRIPE__API_BASE": stripe_api.url}
        good = doctor(env)
        checks = checks_of(good)
        assert checks["sms provider"]["ok"] and not checks["sms provider"]["warning"], checks["sms provider"]
        assert "reachable, credentials accepted" in checks["sms provider"]["detail"]
        assert checks["mail server"]["ok"] and f"127.0.0.1:{smtp_port}: answers" in checks["mail server"]["detail"]
        assert checks["payment gateway"]["ok"] and "reachable, key accepted" in checks["payment gateway"]["detail"]
        assert [(r[0] == "GET") for r in twilio.requests] == [True], "the SMS check reads; it never sends"

        wrong = doctor({**env, "CLARITY_MESSAGING__TWILIO__AUTH_TOKEN": "wrong",
                        "CLARITY_PAYMENTS__STRIPE__API_KEY": "sk_test_wrong", "CLARITY_SMTP__PORT": str(free_port())})
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        checks = checks_of(wrong)
        assert not checks["sms provider"]["ok"] and "refused our credentials" in checks["sms provider"]["detail"]
        assert not checks["mail server"]["ok"] and "unreachable" in checks["mail server"]["detail"]
        assert not checks["payment gateway"]["ok"]
        assert checks["database"]["ok"], "one failing dependency never hides the others"


def test_the_gateway_line_is_the_same_check_as_payments_check(site: dict[str, str]) -> None:
    env = {**site, "CLARITY_PAYMENTS__GATEWAY": "stripe", "CLARITY_PAYMENTS__STRIPE__API_KEY": "sk_test_doctor",
           "CLARITY_PAYMENTS__STRIPE__API_BASE": f"http://127.0.0.1:{free_port()}"}
    check = clarity(env, "payments", "check")
    assert check.returncode == 2
    message = check.stderr.strip().removeprefix("Error: ")
    gateway = checks_of(doctor(env))["payment gateway"]
    assert not gateway["ok"] and "unreachable" in gateway["detail"] and message in gateway["detail"]


def test_an_unconfigured_twilio_is_a_failure_naming_the_settings(site: dict[str, str]) -> None:
    result = doctor({**site, "CLARITY_MESSAGING__PROVIDER": "twilio"})
    assert result.returncode == 1
    sms = checks_of(result)["sms provider"]
    assert not sms["ok"] and "messaging.twilio" in sms["detail"]


def test_doctor_runs_quick_check_and_a_damaged_file_is_exit_2(site: dict[str, str]) -> None:
    path = Path(site["CLARITY_DATABASE_URL"].removeprefix("sqlite:///"))
    # Give the legacy tables some rows, so their pages exist to damage.
    seeded = clarity(site, "demo", "seed", "--customers", "20")
    assert seeded.returncode == 0, seeded.stderr
    import sqlite3

    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    corrupt(path, "legacy pages")
    result = doctor(site)
    assert_one_line(result, "corrupt", str(path), ".recover")
    checks = checks_of(result)
    assert not checks["database integrity"]["ok"] and "corrupt" in checks["database integrity"]["detail"]
    assert not checks["database"]["ok"]
    # The devices and the rest are still checked and reported.
    assert "card reader (simulated)" in checks and "mail server" in checks
