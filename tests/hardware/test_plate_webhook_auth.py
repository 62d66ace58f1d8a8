"""Who may post plate reads (issue 15): camera secrets, HMAC signatures and the address allow-list.

Real HTTP on 127.0.0.1 against the real receiver, recording into a real database (SQLite).
A refused request records nothing (no session, no audit row) and its secret appears in no answer and no log.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from clarity_tui.devices import build_devices, plate_recorder
from hardware.base import DeviceError
from hardware.plate_reader.http_receiver import (
    NO_SECRET,
    SIGNATURE_HEADER,
    TOKEN_HEADER,
    CameraAuth,
    HttpPlateReader,
    PlateWebhookReceiver,
    receiver_options,
    sign_body,
)
from hardware.registry import create_device
from tests.helpers.plate_webhook import alpr_group, audit_count, session_count

LANE1 = "lane1-secret-Zq8w3Kd0pXr7"
LANE2 = "lane2-secret-Hs2n9Lm4tYv1"
SHARED = "site-shared-secret-Bc5x7Pq2"


def send(receiver: PlateWebhookReceiver, body: bytes | dict, *, path: str = "/", method: str = "POST",
         headers: dict[str, str] | None = None) -> tuple[int, dict, dict[str, str]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=30)
    try:
        conn.request(method, path, body=data if method == "POST" else None,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


@pytest.fixture
def cameras(demo_db, settings) -> Iterator[PlateWebhookReceiver]:  # noqa: ANN001
    auth = CameraAuth(secrets={"cam-lane1": LANE1, "cam-lane2": LANE2})
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=auth) as running:
        yield running


BODY = alpr_group("AUT1234", "cam-lane1")
RAW = json.dumps(BODY).encode()


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/", {}, "No credentials"),
        ("/", {TOKEN_HEADER: "lane1-secret-WRONG-000000"}, "Wrong token"),
        ("/", {TOKEN_HEADER: ""}, "Wrong token"),
        ("/", {"Authorization": "Bearer not-the-secret-at-all"}, "Wrong token"),
        ("/", {"Authorization": f"Basic {LANE1}"}, "Bearer"),
        ("/plate/not-the-secret-at-all", {}, "Wrong token"),
        ("/?token=not-the-secret-at-all", {}, "Wrong token"),
        ("/", {SIGNATURE_HEADER: sign_body(RAW, "some-other-secret-000000")}, "Bad signature"),
        ("/", {SIGNATURE_HEADER: "sha256=" + "0" * 64}, "Bad signature"),
        ("/", {SIGNATURE_HEADER: "sha256=xyz"}, "64 hex digits"),
        # A right token does not excuse a wrong signature, nor the other way round.
        ("/", {TOKEN_HEADER: LANE1, SIGNATURE_HEADER: sign_body(RAW + b" ", LANE1)}, "Bad signature"),
        (f"/plate/{LANE1}", {TOKEN_HEADER: "not-the-secret-at-all"}, "Wrong token"),
        # Two cameras' credentials at once cover no camera.
        ("/", {TOKEN_HEADER: LANE1, "Authorization": f"Bearer {LANE2}"}, "different cameras"),
    ],
    ids=["none", "wrong-header", "empty-header", "wrong-bearer", "basic-scheme", "wrong-path", "wrong-query",
         "hmac-other-secret", "hmac-zero", "hmac-malformed", "token-ok-hmac-bad", "path-ok-header-bad", "two-cameras"],
)
def test_requests_without_valid_credentials_get_401_and_record_nothing(
        cameras: PlateWebhookReceiver, demo_db, path: str, headers: dict[str, str], reason: str,  # noqa: ANN001
        caplog: pytest.LogCaptureFixture) -> None:
    sessions, audits = session_count(demo_db), audit_count(demo_db)
    with caplog.at_level(logging.INFO, logger="hardware"):
        status, body, reply_headers = send(cameras, RAW, path=path, headers=headers)
    assert status == 401, body
    assert reason in body["error"]
    assert reply_headers["www-authenticate"].startswith("Bearer")
    assert (session_count(demo_db), audit_count(demo_db)) == (sessions, audits)
    assert cameras.unauthorized == 1 and cameras.accepted == 0
    # Logged, without any secret (the URL's token included).
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused a read from 127.0.0.1" in logged
    for secret in (LANE1, LANE2, "not-the-secret-at-all"):
        assert secret not in logged and secret not in json.dumps(body)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/", {TOKEN_HEADER: LANE1}),
        ("/", {"Authorization": f"Bearer {LANE1}"}),
        (f"/plate/{quote(LANE1)}", {}),
        (f"/?token={quote(LANE1)}", {}),
        (f"/plate?token={quote(LANE1)}", {}),
        ("/", {SIGNATURE_HEADER: sign_body(RAW, LANE1)}),
        ("/", {SIGNATURE_HEADER: sign_body(RAW, LANE1).upper().replace("SHA256=", "sha256=")}),
        ("/", {TOKEN_HEADER: LANE1, SIGNATURE_HEADER: sign_body(RAW, LANE1)}),
    ],
    ids=["header", "bearer", "url-path", "url-query", "plate-query", "hmac", "hmac-upper-hex", "token-and-hmac"],
)
def test_each_credential_form_records_the_read(cameras: PlateWebhookReceiver, demo_db, path: str,  # noqa: ANN001
                                               headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    before = session_count(demo_db)
    with caplog.at_level(logging.INFO, logger="hardware"):
        status, body, _ = send(cameras, RAW, path=path, headers=headers)
    assert status == 201, body
    assert body["camera_id"] == "cam-lane1" and body["session_id"] > 0
    assert session_count(demo_db) == before + 1
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST" in logged and LANE1 not in logged  # the request line is logged with the token hidden


def test_a_cameras_secret_covers_only_its_own_camera(cameras: PlateWebhookReceiver, demo_db) -> None:  # noqa: ANN001
    sessions, audits = session_count(demo_db), audit_count(demo_db)
    status, body, _ = send(cameras, alpr_group("SPF1234", "cam-lane2"), headers={TOKEN_HEADER: LANE1})
    assert status == 403 and "cam-lane2" in body["error"]
    # Nor may it name a lane instead of a camera.
    status, _, _ = send(cameras, alpr_group("SPF1234", "Lane 2"), headers={TOKEN_HEADER: LANE1})
    assert status == 403
    assert (session_count(demo_db), audit_count(demo_db)) == (sessions, audits)
    status, body, _ = send(cameras, alpr_group("SPF1234", "CAM-LANE2"), headers={TOKEN_HEADER: LANE2})
    assert status == 201, body  # camera ids compare without case, as the lane mapping does


def test_a_shared_secret_covers_every_camera(demo_db, settings) -> None:  # noqa: ANN001
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=CameraAuth(secret=SHARED)) as shared:
        for camera in ("cam-lane1", "cam-lane3", "cam-pregate"):
            status, body, _ = send(shared, alpr_group(f"SH{camera[-1].upper()}1234", camera), headers={TOKEN_HEADER: SHARED})
            assert status == 201, body


def test_a_signature_can_be_required(demo_db, settings) -> None:  # noqa: ANN001
    auth = CameraAuth(secrets={"cam-lane1": LANE1}, require_signature=True)
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=auth) as signed:
        before = session_count(demo_db)
        status, body, _ = send(signed, RAW, headers={TOKEN_HEADER: LANE1})
        assert status == 401 and SIGNATURE_HEADER in body["error"]
        assert session_count(demo_db) == before
        status, body, _ = send(signed, RAW, headers={SIGNATURE_HEADER: sign_body(RAW, LANE1)})
        assert status == 201, body


def test_addresses_outside_the_allow_list_get_401(demo_db, settings, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    outside = CameraAuth(secrets={"cam-lane1": LANE1}, allow_from=receiver_options(
        {"allow_from": ["10.20.0.0/16", "192.168.1.7"]})["auth"].allow_from)
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=outside) as receiver:
        sessions, audits = session_count(demo_db), audit_count(demo_db)
        with caplog.at_level(logging.WARNING, logger="hardware"):
            status, body, _ = send(receiver, RAW, path=f"/plate/{LANE1}", headers={TOKEN_HEADER: LANE1})
        assert status == 401, body
        assert send(receiver, b"", method="GET")[0] == 401  # the health check too
        assert (session_count(demo_db), audit_count(demo_db)) == (sessions, audits)
        assert receiver.unauthorized == 2
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "address not in allow_from" in logged and LANE1 not in logged
    inside = CameraAuth(secrets={"cam-lane1": LANE1}, allow_from=receiver_options(
        {"allow_from": "10.20.0.0/16, 127.0.0.0/8"})["auth"].allow_from)
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=inside) as receiver:
        status, body, _ = send(receiver, RAW, headers={TOKEN_HEADER: LANE1})
        assert status == 201, body
        status, body, _ = send(receiver, RAW)
        assert status == 401  # an allowed address still needs the secret


def test_with_no_secret_configured_every_read_is_refused(demo_db, settings) -> None:  # noqa: ANN001
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id)) as open_door:
        before = session_count(demo_db)
        for headers in ({}, {TOKEN_HEADER: "anything-at-all-0000000"}, {SIGNATURE_HEADER: sign_body(RAW, "x" * 20)}):
            status, body, _ = send(open_door, RAW, headers=headers)
            assert status == 401 and body["error"] == NO_SECRET
        assert session_count(demo_db) == before
        status, body, _ = send(open_door, b"", method="GET")
        assert status == 200 and body["auth"] == "missing"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret": "short"}, "at least 16"),
        ({"secrets": {"cam-lane1": "has a space in it 0123"}}, "without spaces"),
        ({"secrets": ["cam-lane1"]}, "map each camera_id"),
        ({"secrets": {"cam-lane1": LANE1}, "allow_from": ["10.0.0.0/33"]}, "not an address or a network"),
        ({"secrets": {"cam-lane1": LANE1}, "allow_from": ["lan"]}, "not an address or a network"),
        ({"secret": SHARED, "secert": "typo"}, "unknown plate receiver option(s) secert"),
        ({"secret": SHARED, "max_connections": 0}, "max_connections"),
        ({"secret": SHARED, "require_signature": "yes"}, "true or false"),
    ],
)
def test_bad_camera_settings_are_a_config_error_naming_the_fix(options: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        receiver_options(options)
    assert message in str(raised.value)
    assert LANE1 not in str(raised.value)

    class Config:
        driver = "http"
        port = "127.0.0.1:0"

    Config.options = options  # type: ignore[attr-defined]
    with pytest.raises(DeviceError) as device_error:
        create_device("plate_reader", Config)
    assert device_error.value.code == "config" and message in str(device_error.value)


def test_settings_reach_the_receiver(settings) -> None:  # noqa: ANN001
    settings.hardware.plate_reader.driver = "http"
    settings.hardware.plate_reader.port = "127.0.0.1:0"
    settings.hardware.plate_reader.options = {"secrets": {"cam-lane1": LANE1}, "allow_from": ["192.168.10.0/24"],
                                              "read_timeout": 2, "max_connections": 4}
    reader = build_devices(settings).plate_reader
    assert isinstance(reader, HttpPlateReader)
    receiver = reader.receiver
    assert receiver.auth.configured and not receiver.auth.address_allowed("127.0.0.1")
    assert receiver.auth.address_allowed("192.168.10.44") and receiver.auth.address_allowed("::ffff:192.168.10.44")
    assert receiver.read_timeout == 2.0 and receiver.slots.limit == 4


# --- a keep-alive client cannot hold a slot; settings out of range; a body that is not UTF-8 --------------------

def _get_keep_alive(sock: socket.socket) -> http.client.HTTPResponse:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: camera\r\nConnection: keep-alive\r\n\r\n")
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


def test_keep_alive_connections_cannot_hold_the_slots(demo_db, settings) -> None:  # noqa: ANN001
    """The cap's worth of keep-alive clients, each sending a GET now and then, used to keep a camera at 503 for
    good (the deadline was reset per request). Now each connection gets one answer and is closed."""
    auth = CameraAuth(secrets={"cam-lane1": LANE1})
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=auth, max_connections=4) as receiver:
        holders = [socket.create_connection(("127.0.0.1", receiver.port), timeout=30) for _ in range(receiver.slots.limit)]
        try:
            for sock in holders:
                response = _get_keep_alive(sock)
                assert response.status == 200
                assert response.getheader("Connection") == "close"
            for sock in holders:  # the next GET on the same connection gets no answer: the server closed it
                try:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: camera\r\n\r\n")
                    answer = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    answer = b""
                assert answer == b"", answer[:80]
            assert receiver.slots.wait_idle(30)  # a guard: the closes above are the signal
            status, body, _ = send(receiver, RAW, headers={TOKEN_HEADER: LANE1})
            assert status == 201, body
            assert receiver.slots.refused == 0
        finally:
            for sock in holders:
                sock.close()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("read_timeout", 1e10, "read_timeout must be a number of seconds from 0.01 to 300"),
        ("read_timeout", float("inf"), "read_timeout must be a number of seconds from 0.01 to 300"),
        ("request_timeout", float("1e400"), "request_timeout must be a number of seconds from 0.01 to 300"),
        ("request_timeout", float("nan"), "request_timeout must be a number of seconds from 0.01 to 300"),
        ("request_timeout", 0, "request_timeout must be a number of seconds from 0.01 to 300"),
        ("max_connections", 1025, "max_connections must be a whole number from 1 to 1024"),
        ("max_connections", float("inf"), "max_connections must be a whole number from 1 to 1024"),
        ("max_connections", 2.5, "max_connections must be a whole number from 1 to 1024"),
        ("max_body", 10**12, "max_body must be a whole number from 1 to"),
        ("max_json_depth", 65, "max_json_depth must be a whole number from 1 to 64"),
        ("max_json_depth", 0, "max_json_depth must be a whole number from 1 to 64"),
    ],
)
def test_limits_out_of_range_are_a_config_error_naming_the_range(name: str, value: float, message: str) -> None:
    options = {"secret": SHARED, name: value}
    with pytest.raises(ValueError) as raised:
        receiver_options(options)
    assert message in str(raised.value) and "\n" not in str(raised.value)

    class Config:
        driver = "http"
        port = "127.0.0.1:0"

    Config.options = options  # type: ignore[attr-defined]
    with pytest.raises(DeviceError) as device_error:
        create_device("plate_reader", Config)
    assert device_error.value.code == "config" and message in str(device_error.value)


def test_limits_at_the_top_of_their_range_still_serve(demo_db, settings) -> None:  # noqa: ANN001
    """300 s timeouts are accepted, and the receiver answers with them (1e10 used to fail every request)."""
    options = receiver_options({"secrets": {"cam-lane1": LANE1}, "read_timeout": 300, "request_timeout": 300,
                                "max_connections": 1024, "max_json_depth": 64})
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), **options) as receiver:
        status, body, _ = send(receiver, RAW, headers={TOKEN_HEADER: LANE1})
        assert status == 201, body
    with pytest.raises(ValueError, match="read_timeout must be above 0 and at most 300"):
        PlateWebhookReceiver(None, read_timeout=1e10).start()  # the server refuses too, not each request


def test_a_body_that_is_not_utf8_is_refused_before_the_depth_scan(cameras: PlateWebhookReceiver, demo_db) -> None:  # noqa: ANN001
    before = session_count(demo_db)
    # In UTF-16 "\u4122" is the bytes '"A': a quote to a byte scan, hiding the 5000 brackets behind it.
    # (The text of json.dumps(["\u4122", <"x" nested 5000 deep>, "x"], ensure_ascii=False), built by hand: json.dumps
    # itself recurses.)
    text = '["\u4122", ' + "[" * 5000 + '"x"' + "]" * 5000 + ', "x"]'
    utf16 = text.encode("utf-16-le")
    assert b'"A' in utf16
    status, body, _ = send(cameras, utf16, headers={TOKEN_HEADER: LANE1})
    assert status == 400 and body["error"] == "The body must be UTF-8 JSON.", body
    # The same nesting in UTF-8 meets the depth guard, not json.loads' recursion limit.
    deep = text.encode()
    status, body, _ = send(cameras, deep, headers={TOKEN_HEADER: LANE1})
    assert status == 400 and "nests deeper than 8 levels" in body["error"], body
    assert "recursion" not in json.dumps(body)
    # A UTF-8 BOM is allowed; UTF-16 with its BOM is not.
    status, body, _ = send(cameras, b"\xef\xbb\xbf" + RAW, headers={TOKEN_HEADER: LANE1})
    assert status == 201, body
    status, body, _ = send(cameras, RAW.decode().encode("utf-16"), headers={TOKEN_HEADER: LANE1})
    assert status == 400 and body["error"] == "The body must be UTF-8 JSON.", body
    assert session_count(demo_db) == before + 1
