"""What every table module shares: the UTC clock default and the JSON column."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def json_field(**kw: Any) -> Any:
    """A nullable JSON column (dicts and lists as the database's JSON type)."""
    return Field(default=None, sa_column=Column(JSON, nullable=True), **kw)
