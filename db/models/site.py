"""The site, its lanes, and the vehicles the plate camera sees on them (the lanes board)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel, col

from db.models.base import PartialIndex, utcnow
from db.states import OPEN_SESSION_STATES, SessionStatus


class LaneKind(StrEnum):
    PRE_GATE = "pre_gate"
    LANE = "lane"
    PAY_STATION = "pay_station"


class Site(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    phone_region: str = Field(default="US", max_length=2)
    created_at: dt.datetime = Field(default_factory=utcnow)


class Lane(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    site_id: int = Field(foreign_key="site.id", index=True)
    name: str = Field(max_length=60)
    kind: str = Field(default=LaneKind.LANE, max_length=16)
    position: int = 0
    # Maps a plate camera (webhook camera_id) to this lane.
    camera_id: str | None = Field(default=None, max_length=64, unique=True)
    active: bool = True
    # Members' cars are sent to the tunnel (and the gate opened) as soon as they are let through.
    auto_dispatch: bool = False


class VehicleSession(SQLModel, table=True):
    """A vehicle seen by the plate camera: one bubble on the lanes board."""

    __tablename__ = "vehicle_session"
    __table_args__ = (Index("ix_vehicle_session_status_lane", "status", "lane_id"),)
    id: int | None = Field(default=None, primary_key=True)
    lane_id: int = Field(foreign_key="lane.id", index=True)
    plate: str = Field(max_length=16)
    plate_region: str = Field(default="", max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)
    make: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=40)
    colour: str | None = Field(default=None, max_length=24)
    confidence: float = 1.0
    image_ref: str | None = Field(default=None, max_length=255)
    arrived_at: dt.datetime = Field(default_factory=utcnow, index=True)
    status: str = Field(default=SessionStatus.WAITING, max_length=16)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    vehicle_id: int | None = Field(default=None, foreign_key="vehicle.id")
    legacy_member_id: int | None = Field(default=None, foreign_key="legacy_member.id")
    # Which terminal/operator has the session open (shown to other terminals).
    held_by: str | None = Field(default=None, max_length=120)
    held_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    source: str = Field(default="camera", max_length=24)
    version: int = 1


# One open session per car (migration 0006): a read in another lane moves the open session
# instead of opening a second one, and two cameras posting at once cannot both insert
# (services/sessions.py catches the clash and moves the winner's session).
OPEN_PLATE_INDEX = "ux_vehicle_session_open_plate"
_open_session = col(VehicleSession.status).in_(OPEN_SESSION_STATES)
PartialIndex(OPEN_PLATE_INDEX, VehicleSession.plate_normalized, unique=True, where=_open_session)
