"""Operators, their shifts at terminals, and the audit trail of what they did."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel

from db.models.base import json_field, utcnow


class Role(StrEnum):
    ATTENDANT = "attendant"
    MANAGER = "manager"
    TECHNICIAN = "technician"
    SUPPORT = "support"


class Operator(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    role: str = Field(default=Role.ATTENDANT, max_length=16)
    pin_hash: str = Field(max_length=255)
    active: bool = True
    failed_attempts: int = 0
    locked_until: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class OperatorShift(SQLModel, table=True):
    """Who is signed in where: one row per sign-in at a terminal."""

    __tablename__ = "operator_shift"
    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    terminal: str = Field(max_length=64)
    signed_in_at: dt.datetime = Field(default_factory=utcnow)
    last_activity_at: dt.datetime = Field(default_factory=utcnow)
    signed_out_at: dt.datetime | None = None
    signout_reason: str | None = Field(default=None, max_length=24)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=120)
    operator_id: int | None = Field(default=None, foreign_key="operator.id")
    terminal: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64, index=True)
    entity: str = Field(max_length=40)
    entity_id: str | None = Field(default=None, max_length=64)
    before: dict[str, Any] | None = json_field()
    after: dict[str, Any] | None = json_field()
