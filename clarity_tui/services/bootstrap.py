"""Open the site's database: build the engine, upgrade the schema, make sure lanes exist."""

from __future__ import annotations

from sqlalchemy.exc import DatabaseError, OperationalError

from clarity_tui.config import Settings
from clarity_tui.services.sessions import SessionService
from db import migrate
from db.engine import Database, make_engine


def open_database(settings: Settings, *, upgrade: bool = True, ensure_site: bool = True) -> Database:
    """Raises db.errors.DatabaseProblem (one-line, actionable) on any failure."""
    engine = make_engine(settings.resolved_database_url())
    try:
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
        engine.dispose()
        raise migrate.explain(exc, engine) from exc
    except Exception:
        engine.dispose()
        raise
