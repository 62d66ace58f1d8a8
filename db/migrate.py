"""Alembic, driven from code: upgrade, current/head revisions, and schema checks."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from db.errors import DatabaseProblem, SchemaTooNew, as_problem, not_clarity, unreachable
from db.rawconnect import foreign_tables

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    return heads[0]


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _where(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return str(engine.url.database or ":memory:")
    return engine.url.render_as_string(hide_password=True)


def explain(exc: BaseException, engine: Engine) -> DatabaseProblem:
    """Turn a driver error into a one-line message that names the fix."""
    where = _where(engine)
    problem = as_problem(exc, where=where)
    if problem is not None:
        return problem
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OperationalError):
        return unreachable(where, text)
    return DatabaseProblem(f"The database at {where} failed ({text}).")


def refuse_foreign(conn: Connection, engine: Engine) -> None:
    """Never add our tables to another program's database: NotAClarityDatabase if it holds tables
    and none of Clarity's (see rawconnect.foreign_tables)."""
    from sqlalchemy import inspect

    others = foreign_tables(inspect(conn).get_table_names())
    if others:
        raise not_clarity(_where(engine), others)


def check_revision(engine: Engine) -> str | None:
    """Return the current revision; raise SchemaTooNew if it is from newer code, and
    NotAClarityDatabase if the database is another program's."""
    try:
        with engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
            known = rev is not None and rev in known_revisions()
            if not known:
                refuse_foreign(conn, engine)
    except (OperationalError, DatabaseError) as exc:
        raise explain(exc, engine) from exc
    if rev is not None and not known:
        raise SchemaTooNew(
            f"The database schema ({rev}) is newer than this version of clarity-tui "
            f"(knows up to {head_revision()}): upgrade clarity-tui on this terminal."
        )
    return rev


def _integrity_before_migrating(engine: Engine) -> None:
    """A schema change rewrites tables: on SQLite, check the whole file first, whatever its size
    (opening checks only files up to rawconnect.QUICK_CHECK_ON_OPEN_MAX_BYTES)."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:":
        from db.rawconnect import preflight_sqlite

        preflight_sqlite(path, quick_check_max_bytes=None)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema; safe to call on every start (a no-op at head)."""
    rev = check_revision(engine)
    if rev == head_revision() and revision == "head":
        return
    if rev is not None:
        _integrity_before_migrating(engine)
    cfg = alembic_config()
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except (OperationalError, DatabaseError) as exc:
        raise explain(exc, engine) from exc


def downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def schema_drift(engine: Engine) -> list:
    """Differences between the models and the migrated database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    import db.models  # noqa: F401

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, SQLModel.metadata)
