"""Browse the audit trail: filter by actor, action, entity, terminal and time; newest first.

The screen and `clarity-tui audit` both call `query()`. Filters are case-insensitive
substrings (action "order." finds every order step), so a person can type part of a name.
Reading the trail needs audit.view (managers and support): the actor is checked first.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.actor import Actor
from clarity_tui.sitetime import stored_utc
from clarity_tui.services.permissions import Permission, require
from db.models import AuditLog


class AuditQueryError(UserFacingError, ValueError):
    """str() says how to write the filter."""


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    entity: str = ""
    terminal: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 500


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    operator_id: int | None
    terminal: str | None
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "operator_id": self.operator_id,
                "terminal": self.terminal, "action": self.action, "entity": self.entity,
                "entity_id": self.entity_id, "before": self.before, "after": self.after}

    def change_summary(self, width: int = 60) -> str:
        """What changed, in one line: the keys whose value differs (or the 'after' values)."""
        before, after = self.before or {}, self.after or {}
        keys = [k for k in after if before.get(k) != after.get(k)] or list(before)
        parts = []
        for k in keys:
            if k in before and k in after:
                parts.append(f"{k}: {before[k]!s} → {after[k]!s}")
            elif k in after:
                parts.append(f"{k}={after[k]!s}")
            else:
                parts.append(f"-{k}")
        text = "; ".join(parts)
        return text if len(text) <= width else text[: width - 1] + "…"


_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """'30m', '2h', '7d', '2026-11-22' or an ISO time (UTC unless it says otherwise)."""
    now = now or dt.datetime.now(dt.UTC)
    m = _RELATIVE.match(text)
    if m:
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditQueryError(f"'{text}' is not a time: use 30m, 2h, 7d, 2026-11-22 or 2026-11-22T08:00.") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _like(column: Any, text: str) -> Any:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def query(db, f: AuditFilter | None = None, *, actor: Actor) -> list[AuditEntry]:
    require(actor, Permission.AUDIT_VIEW)
    f = f or AuditFilter()
    with db.read() as s:
        q = select(AuditLog)
        if f.actor:
            q = q.where(_like(AuditLog.actor, f.actor))
        if f.action:
            q = q.where(_like(AuditLog.action, f.action))
        if f.entity:
            q = q.where(_like(AuditLog.entity, f.entity))
        if f.terminal:
            q = q.where(_like(AuditLog.terminal, f.terminal))
        if f.since is not None:
            q = q.where(AuditLog.at >= f.since)
        if f.until is not None:
            q = q.where(AuditLog.at < f.until)
        q = q.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(f.limit)
        return [AuditEntry(r.id, stored_utc(r.at), r.actor, r.operator_id, r.terminal, r.action, r.entity,
                           r.entity_id, r.before, r.after) for r in s.exec(q)]
