"""The OpenALPR / Rekor Scout `alpr_group` message: checked field by field and turned into a PlateEvent.

Structure only: the plate's own rule (alphabet, transliteration, length) is the sessions service's, applied
when the read is recorded. Every text field holding a control character is refused here.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from hardware.http_limits import json_nesting_exceeds
from hardware.plate_reader.base import PlateEvent

# An alpr_group nests 4 deep (message > vehicle > make > [candidates]); well past that is an attack, refused
# before json.loads (whose C parser would otherwise recurse once per level).
MAX_JSON_DEPTH = 8
MAX_JSON_DEPTH_LIMIT = 64  # the most max_json_depth may be set to
NOT_UTF8 = "The body must be UTF-8 JSON."
MAX_CAMERA_ID = 64  # Lane.camera_id
# Agent messages that are not plate reads: acknowledged, never recorded.
IGNORED_TYPES = frozenset({"heartbeat", "alpr_alert", "vehicle"})


class WebhookRejected(ValueError):
    """The body cannot become a plate read; str() says why (sent back with the 400)."""


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


def _first_name(vehicle: dict[str, Any], key: str) -> str | None:
    items = vehicle.get(key)
    if isinstance(items, list) and items and isinstance(items[0], dict):
        name = items[0].get("name")
        if isinstance(name, str) and name.strip():
            return _text(name, f"vehicle.{key}", 80)
    return None


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _confidence(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WebhookRejected(f"best_confidence must be a number, got {shown(value)}.")
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
        raise WebhookRejected(f"Body is not JSON ({shown(str(exc))[1:-1]}).") from None
    if not isinstance(data, dict):
        raise WebhookRejected("Body must be a JSON object.")
    data_type = data.get("data_type")
    if isinstance(data_type, str) and data_type in IGNORED_TYPES:
        return None
    if data_type != "alpr_group":
        raise WebhookRejected(f"Unsupported data_type {shown(data_type)}: send alpr_group messages.")
    best_plate = data.get("best_plate")
    best: dict[str, Any] = best_plate if isinstance(best_plate, dict) else {}
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
    given_vehicle = data.get("vehicle")
    vehicle: dict[str, Any] = given_vehicle if isinstance(given_vehicle, dict) else {}
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
