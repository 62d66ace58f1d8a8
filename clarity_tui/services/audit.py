"""Audit rows, written inside the same transaction as the change they describe."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlmodel import Session, SQLModel

from clarity_tui.services.actor import Actor
from db.models import AuditLog


def snapshot(obj: SQLModel | None, fields: list[str] | None = None) -> dict[str, Any] | None:
    """A JSON-safe dict of a row's columns (for the before/after of an audit row)."""
    if obj is None:
        return None
    data = obj.model_dump(include=set(fields) if fields else None)
    return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def record(
    session: Session,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    row = AuditLog(
        actor=actor.name,
        operator_id=actor.operator_id,
        terminal=actor.terminal,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
    )
    session.add(row)
    return row
