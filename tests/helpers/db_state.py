"""The database state a lane flow leaves, without what differs between two runs (clock, random gateway ids)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import SQLModel

TABLES = ("customer", "vehicle", "vehicle_session", "sales_order", "membership", "membership_vehicle",
          "payment_method", "signature")
_VOLATILE = re.compile(r"(_at|_on_utc|idempotency_key|^gateway_.*|.*_intent_id|svg|strokes|points|"
                       r"terms_hash|device|search_.*|email_lower|phone_rev|holder|held_by|.*token.*)$")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items()
            if not _VOLATILE.match(k) and not isinstance(v, dt.datetime)}


def db_state(db: Any) -> dict[str, Any]:
    """Every row of the tables a lane flow writes, plus the audit trail's (action, entity, id)."""
    tables = SQLModel.metadata.tables
    out: dict[str, Any] = {}
    with db.read() as s:
        for name in TABLES:
            table = tables[name]
            rows = s.execute(sa_select(table).order_by(*table.primary_key.columns)).mappings().all()
            out[name] = [_clean(dict(r)) for r in rows]
        audit = tables["audit_log"]
        out["audit"] = sorted((r.action, r.entity, r.entity_id)
                              for r in s.execute(sa_select(audit.c.action, audit.c.entity, audit.c.entity_id)))
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A short description of where two states differ (for assertion messages)."""
    lines = []
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        if ra == rb:
            continue
        if isinstance(ra, list) and isinstance(rb, list):
            only_a = [r for r in ra if r not in rb][:3]
            only_b = [r for r in rb if r not in ra][:3]
            lines.append(f"{key}: burst-only {only_a} / slow-only {only_b}")
        else:
            lines.append(f"{key}: {ra!r} != {rb!r}")
    return "\n".join(lines)
