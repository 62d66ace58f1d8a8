"""Alembic, driven from code: upgrade, current/head revisions, and schema checks."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError, OperationalError

from db.errors import DatabaseCorrupt, DatabaseProblem, DatabaseReadOnly, DatabaseUnreachable, SchemaTooNew

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


def explain(exc: BaseException, engine: Engine) -> DatabaseProblem:
    """Turn a driver error into a one-line message that names the fix."""
    where = engine.url.render_as_string(hide_password=True)
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    lowered = text.lower()
    if engine.dialect.name == "sqlite":
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return DatabaseCorrupt(
                f"The database file {engine.url.database} is corrupt or not a Clarity database: "
                "restore it from a backup, or move it aside to start a fresh one."
            )
        if "readonly" in lowered or "read-only" in lowered or "attempt to write" in lowered:
            return DatabaseReadOnly(
                f"The database file {engine.url.database} is read-only: give this user write "
                "access, or point CLARITY_DATABASE_URL at a writable file."
            )
        if "unable to open" in lowered:
            return DatabaseUnreachable(
                f"Cannot open the database file {engine.url.database}: check the path and its folder's permissions."
            )
    if isinstance(exc, OperationalError):
        return DatabaseUnreachable(
            f"Cannot reach the database at {where} ({text}): check that the server is running "
            "and that CLARITY_DATABASE_URL / --db are right."
        )
    return DatabaseProblem(f"The database at {where} failed ({text}).")


def check_revision(engine: Engine) -> str | None:
    """Return the current revision; raise SchemaTooNew if it is from newer code."""
    try:
        rev = current_revision(engine)
    except (OperationalError, DatabaseError) as exc:
        raise explain(exc, engine) from exc
    if rev is not None and rev not in known_revisions():
        raise SchemaTooNew(
            f"The database schema ({rev}) is newer than this version of clarity-tui "
            f"(knows up to {head_revision()}): upgrade clarity-tui on this terminal."
        )
    return rev


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema; safe to call on every start (a no-op at head)."""
    rev = check_revision(engine)
    if rev == head_revision() and revision == "head":
        return
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
