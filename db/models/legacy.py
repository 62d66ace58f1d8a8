"""Members imported from the legacy POS, and their plates (issue 6, migration 0005)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utcnow
from db.plate_shape import plate_shape_sql


class LegacyMember(SQLModel, table=True):
    __tablename__ = "legacy_member"
    __table_args__ = (UniqueConstraint("source_system", "legacy_id"),)
    id: int | None = Field(default=None, primary_key=True)
    source_system: str = Field(max_length=40)
    legacy_id: str = Field(max_length=64)
    raw: dict[str, Any] | None = json_field()
    first_name: str = Field(default="", max_length=80)
    last_name: str = Field(default="", max_length=80)
    phone_e164: str | None = Field(default=None, max_length=20, index=True)
    email: str | None = Field(default=None, max_length=254)
    vehicle_desc: str | None = Field(default=None, max_length=120)
    plan_name: str | None = Field(default=None, max_length=80)
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    status: str | None = Field(default=None, max_length=24)
    next_bill_on: dt.date | None = None
    joined_on: dt.date | None = None
    imported_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    migrated_at: dt.datetime | None = None
    migrated_by: str | None = Field(default=None, max_length=120)
    migrated_terminal: str | None = Field(default=None, max_length=64)
    migrated_customer_id: int | None = Field(default=None, foreign_key="customer.id")


class LegacyMemberPlate(SQLModel, table=True):
    __tablename__ = "legacy_member_plate"
    id: int | None = Field(default=None, primary_key=True)
    legacy_member_id: int = Field(foreign_key="legacy_member.id", index=True)
    plate_raw: str = Field(max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)


# Plate-camera confusions collapsed in SQL (db/plate_shape.py): an expression index on the shape finds
# look-alike legacy plates by equality (O/0, I/1, B/8 ...) and, with one-character variants of the read,
# a missing or extra character, without scanning the table. Bulk loads need no extra column kept in step.
Index("ix_legacy_member_plate_shape", plate_shape_sql(LegacyMemberPlate.plate_normalized))
