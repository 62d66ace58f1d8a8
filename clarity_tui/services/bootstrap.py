"""Open the site's database: build the engine, upgrade the schema, make sure lanes exist."""

from __future__ import annotations

from sqlalchemy.exc import DatabaseError, OperationalError

from clarity_tui.config import Settings
from clarity_tui.services.sessions import SessionService
from db.engine import Database, make_engine
from db.rawconnect import schema_at_head


def open_database(settings: Settings, *, upgrade: bool = True, ensure_site: bool = True) -> Database:
    """Raises db.errors.DatabaseProblem (one-line, actionable) on any failure."""
    url = settings.resolved_database_url()
    engine = make_engine(url)
    try:
        # The common case is a schema already at head: then Alembic is never imported (start-up time).
        if not schema_at_head(url):
            from db import migrate

            if upgrade:
                migrate.upgrade(engine)
            else:
                migrate.check_revision(engine)
        db = Database(engine)
        if ensure_site:
            site = settings.site
            SessionService(db).ensure_site(
                site.code, site.name, site.phone_region, [(lane.name, lane.kind, lane.camera_id) for lane in site.lanes]
            )
        return db
    except (OperationalError, DatabaseError) as exc:
        from db import migrate

        engine.dispose()
        raise migrate.explain(exc, engine) from exc
    except Exception:
        engine.dispose()
        raise
