"""The plate camera's webhook as tests post to it: an ALPR group body, and the rows it leaves."""

from __future__ import annotations

from sqlmodel import func, select

from db.engine import Database
from db.models import AuditLog, VehicleSession


def alpr_group(plate: str | None = "ABC1234", camera: object = "cam-lane2", **extra: object) -> dict:
    body: dict = {
        "version": 2, "data_type": "alpr_group", "epoch_start": 1717000000000, "epoch_end": 1717000000900,
        "agent_uid": "X1", "camera_id": camera, "best_uuid": "X1-123-1717000000000",
        "best_plate": {"plate": plate, "confidence": 91.2, "region": "us-tx"},
        "best_region": "us-tx", "best_confidence": 91.2,
        "vehicle": {"color": [{"name": "silver-gray", "confidence": 80.1}],
                    "make": [{"name": "toyota", "confidence": 90.0}],
                    "make_model": [{"name": "toyota_camry", "confidence": 70.0}],
                    "body_type": [{"name": "sedan-standard", "confidence": 88.0}]},
    }
    if plate is not None:
        body["best_plate_number"] = plate
    else:
        body["best_plate"] = {"confidence": 10}
    body.update(extra)
    return body


def session_count(db: Database) -> int:
    with db.read() as s:
        return s.exec(select(func.count()).select_from(VehicleSession)).one()


def audit_count(db: Database) -> int:
    with db.read() as s:
        return s.exec(select(func.count()).select_from(AuditLog)).one()
