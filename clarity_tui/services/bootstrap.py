"""Open the site's database: build the engine, upgrade the schema, make sure lanes exist, and bring the
lanes' auto-dispatch and the wash menu in line with the settings (a read when they already are)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlmodel import col, select

from clarity_tui.config import Settings
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.engine import Database, make_engine
from db.models import Lane
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
            site_id = SessionService(db).ensure_site(
                site.code, site.name, site.phone_region, [(lane.name, lane.kind, lane.camera_id) for lane in site.lanes]
            )
            sync_lane_settings(db, site_id, {lane.name: lane.auto_dispatch for lane in site.lanes})
            if settings.wash.menu:
                apply_menu_settings(db, settings)
        return db
    except (OperationalError, DatabaseError) as exc:
        from db import migrate

        engine.dispose()
        raise migrate.explain(exc, engine) from exc
    except Exception:
        engine.dispose()
        raise


def sync_lane_settings(db: Database, site_id: int, auto_dispatch: dict[str, bool]) -> int:
    """Each lane's `auto_dispatch` as its settings say (lanes the settings do not name are left alone).
    Returns how many lanes changed."""
    with db.read() as s:
        stale = [(lane.id, lane.name) for lane in s.exec(select(Lane).where(Lane.site_id == site_id))
                 if lane.name in auto_dispatch and bool(lane.auto_dispatch) != auto_dispatch[lane.name]]
    if not stale:
        return 0
    from clarity_tui.services import audit

    with db.write() as s:
        for lane_id, name in stale:
            s.exec(update(Lane).where(col(Lane.id) == lane_id).values(auto_dispatch=auto_dispatch[name]))
            audit.record(s, Actor.system("settings"), "lane.auto_dispatch", "lane", lane_id,
                         before={"auto_dispatch": not auto_dispatch[name]}, after={"auto_dispatch": auto_dispatch[name]})
    return len(stale)


def apply_menu_settings(db: Database, settings: Settings) -> int:
    """settings.wash.menu into the database (only when it differs). Returns how many items changed."""
    from clarity_tui.services.wash_menu import WashMenu

    menu = WashMenu(db, Actor.system("settings"))
    if menu.matches_settings(settings.wash.menu):
        return 0
    return menu.apply_settings(settings.wash.menu)
