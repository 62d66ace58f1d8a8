"""Camera webhooks over real HTTP on 127.0.0.1: good reads become sessions, bad ones a 400 and no row.

Every receiver here has a camera secret (tests/hardware/test_plate_webhook_auth.py covers who may post);
tests/hardware/test_plate_webhook_fuzz.py covers hostile bodies, plates and clients."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from hardware.base import DeviceError, DeviceState

from clarity_tui.devices import plate_recorder
from db.models import Lane, VehicleSession
from hardware.plate_reader.http_receiver import (
    NO_SECRET,
    TOKEN_HEADER,
    CameraAuth,
    HttpPlateReader,
    PlateWebhookReceiver,
    parse_alpr_group,
)
from tests.helpers.plate_webhook import alpr_group, audit_count, session_count

SECRET = "shared-camera-secret-0123456789"
AUTH = CameraAuth(secret=SECRET)


def post(url: str, body: bytes | dict, token: str | None = SECRET, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **({TOKEN_HEADER: token} if token is not None else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def receiver(demo_db, settings):  # noqa: ANN001, ANN201
    with PlateWebhookReceiver(plate_recorder(demo_db, settings.terminal_id), auth=AUTH) as running:
        yield running


def test_good_alpr_group_creates_a_session_on_the_mapped_lane(receiver, demo_db) -> None:  # noqa: ANN001
    before = session_count(demo_db)
    status, body = post(receiver.url, alpr_group("abc-1234", "cam-lane2"))
    assert status == 201, body
    with demo_db.read() as s:
        row = s.get(VehicleSession, body["session_id"])
        lane = s.get(Lane, row.lane_id)
    assert lane.name == "Lane 2"
    assert (row.plate, row.plate_normalized, row.plate_region) == ("ABC-1234", "ABC1234", "us-tx")
    assert (row.make, row.model, row.colour) == ("Toyota", "Camry", "silver gray")
    assert row.confidence == pytest.approx(0.912)
    assert row.image_ref == "X1-123-1717000000000"
    assert session_count(demo_db) == before + 1
    # The camera often reports the same car twice: no second bubble.
    status, again = post(receiver.url, alpr_group("ABC1234", "cam-lane2"))
    assert status == 201 and again["session_id"] == body["session_id"]
    assert session_count(demo_db) == before + 1


def test_best_plate_object_only_is_accepted(receiver, demo_db) -> None:  # noqa: ANN001
    body = alpr_group("XYZ987", "cam-pregate")
    del body["best_plate_number"], body["best_region"], body["best_confidence"]
    status, reply = post(receiver.url, body)
    assert status == 201, reply
    with demo_db.read() as s:
        row = s.get(VehicleSession, reply["session_id"])
    assert row.plate == "XYZ987" and row.plate_region == "us-tx"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(alpr_group(None)).encode(), "No plate"),
        (json.dumps(alpr_group("ABC1234", camera="cam-car-park")).encode(), "No lane or camera called 'cam-car-park'"),
        (json.dumps(alpr_group("!!")).encode(), "is not a plate"),
        (json.dumps(alpr_group("ABC1234", camera=None)).encode(), "No camera_id"),
        (json.dumps({**alpr_group(), "data_type": "alpr_results"}).encode(), "Unsupported data_type"),
        (json.dumps(alpr_group(best_confidence="high")).encode(), "best_confidence must be a number"),
    ],
)
def test_bad_bodies_get_400_with_a_reason_and_write_nothing(receiver, demo_db, payload: bytes, reason: str) -> None:  # noqa: ANN001
    sessions, audits = session_count(demo_db), audit_count(demo_db)
    status, body = post(receiver.url, payload)
    assert status == 400
    assert reason in body["error"]
    assert (session_count(demo_db), audit_count(demo_db)) == (sessions, audits)
    assert receiver.rejected == 1 and receiver.accepted == 0


def test_heartbeats_are_acknowledged_and_ignored(receiver, demo_db) -> None:  # noqa: ANN001
    before = session_count(demo_db)
    status, body = post(receiver.url, {"data_type": "heartbeat", "agent_uid": "X1"})
    assert status == 202 and body == {"ignored": True}
    assert session_count(demo_db) == before


def test_health_check_answers_get(receiver) -> None:  # noqa: ANN001
    with urllib.request.urlopen(receiver.url, timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"


def test_numeric_camera_ids_map_as_text() -> None:
    event = parse_alpr_group(json.dumps(alpr_group("ABC1234", camera=104233)))
    assert event is not None and event.lane == "104233" and event.confidence == pytest.approx(0.912)


async def test_http_plate_reader_device_listens_and_records(demo_db, settings) -> None:  # noqa: ANN001
    import asyncio

    reader = HttpPlateReader(host="127.0.0.1", port=0, record=plate_recorder(demo_db, settings.terminal_id),
                             options={"secret": SECRET})
    await reader.open()
    try:
        status, body = await asyncio.to_thread(post, reader.receiver.url, alpr_group("LNE1234", "cam-lane1"))
        assert status == 201
        assert reader.last_session_id == body["session_id"]
        assert reader.records_itself
        assert reader.status.state is DeviceState.CONNECTED
    finally:
        await reader.close()
    # The port is busy: a clear error status.
    with PlateWebhookReceiver(None) as other:
        taken = HttpPlateReader(host="127.0.0.1", port=other.port)
        with pytest.raises(DeviceError, match="Cannot listen for plate cameras"):
            await taken.open()
        assert taken.status.state is DeviceState.ERROR


async def test_http_plate_reader_without_a_secret_listens_but_refuses_every_read(demo_db, settings) -> None:  # noqa: ANN001
    """Secure by default: no secret configured is an ERROR status naming the setting, and every read a 401."""
    import asyncio

    reader = HttpPlateReader(host="127.0.0.1", port=0, record=plate_recorder(demo_db, settings.terminal_id))
    before = session_count(demo_db)
    await reader.open()
    try:
        assert reader.status.state is DeviceState.ERROR and reader.status.reason == NO_SECRET
        status, body = await asyncio.to_thread(post, reader.receiver.url, alpr_group("NOS1234", "cam-lane1"), "any-token-at-all-0000")
        assert status == 401 and body["error"] == NO_SECRET
        with urllib.request.urlopen(reader.receiver.url, timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok", "accepted": 0, "auth": "missing"}
    finally:
        await reader.close()
    assert session_count(demo_db) == before
