"""What every table module shares: the UTC clock default and the JSON column."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Index, util
from sqlalchemy.sql.base import _DialectArgDict
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


class PartialIndex(Index):
    """An index over the rows matching `where`, on SQLite and PostgreSQL alike.

    `Index(..., sqlite_where=w, postgresql_where=w)` makes SQLAlchemy load both dialects to check those
    keywords as the table is defined: PostgreSQL's, with its five drivers' modules, on every SQLite terminal
    (~30 ms and 2 MB of the boot, issue 17). Here each of the two dialects is given the WHERE when it first
    asks for the index's options (its DDL, Alembic): only once that dialect is in use."""

    def __init__(self, name: str, *expressions: Any, where: Any, **kw: Any) -> None:
        self._partial_where = where
        super().__init__(name, *expressions, **kw)

    @util.memoized_property
    def dialect_options(self) -> util.PopulateDict[str, _DialectArgDict]:
        def options(dialect_name: str) -> _DialectArgDict:
            found = self._kw_reg_for_dialect_cls(dialect_name)
            if dialect_name in ("sqlite", "postgresql"):
                found["where"] = self._partial_where
            return found

        return util.PopulateDict(options)

    @property
    def dialect_kwargs(self) -> Any:
        """Every dialect's keywords (`sqlite_where`, `postgresql_where`), as Alembic's autogenerate and
        `Table.to_metadata` read them: both WHEREs filled first, or they would copy a full unique index."""
        for name in ("sqlite", "postgresql"):
            self.dialect_options[name]
        return super().dialect_kwargs  # (`kwargs`, SQLAlchemy's synonym, reads this)
