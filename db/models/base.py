"""What every table module shares: the UTC clock default and the JSON column."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

# Pydantic builds each table's validator and serializer when it is first used, not when the class is
# defined: the boot imports every table and most are never validated (issue 17: start-up). The tables,
# columns and SQLAlchemy mappings are unchanged. Set before any table class exists (the package imports
# this module first), so every table inherits it.
SQLModel.model_config["defer_build"] = True


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def json_field(**kw: Any) -> Any:
    """A nullable JSON column (dicts and lists as the database's JSON type)."""
    return Field(default=None, sa_column=Column(JSON, nullable=True), **kw)
