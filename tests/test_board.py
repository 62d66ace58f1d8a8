"""The lanes board through Pilot: layout, navigation, live updates, session detail."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlmodel import select

from clarity_tui.screens.board import BoardScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.screens.too_small import TooSmallScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.bubble import SessionBubble
from clarity_tui.widgets.lane_column import LaneColumn
from db.engine import make_engine
from db.models import Lane, SessionStatus, Vehicle, VehicleSession
from tests.helpers.lanes import arrive
from tests.helpers.ui import bubble_ids, make_app, tap_bubble, wait_until

ACTOR = Actor.system("test")


def _arrive(db, plate: str, lane: str) -> int:
    return arrive(db, plate, lane, make="Honda", model="Civic", colour="Red")


@pytest.fixture
def grid(demo_db):
    """Two cars in Pre-Gate, none in Lane 1, one in Lane 2, two in Lane 3."""
    ids = {
        "pg1": _arrive(demo_db, "PG1-001", "Pre-Gate"),
        "pg2": _arrive(demo_db, "PG2-002", "Pre-Gate"),
        "l2a": _arrive(demo_db, "L2A-003", "Lane 2"),
        "l3a": _arrive(demo_db, "L3A-004", "Lane 3"),
        "l3b": _arrive(demo_db, "L3B-005", "Lane 3"),
    }
    return demo_db, ids


async def test_board_shows_one_column_per_lane_and_a_bubble_per_session(grid, settings) -> None:
    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(bubble_ids(app)) == 5, "five bubbles")
        titles = [str(c.query_one(".lane-title").render()) for c in app.screen.query(LaneColumn)]
        assert titles == ["Pre-Gate (2)", "Lane 1", "Lane 2 (1)", "Lane 3 (2)"]
        bubble = app.screen.query_one(f"#session-{ids['pg1']}", SessionBubble)
        assert "PG1-001" in bubble.line("plate")
        assert bubble.line("vehicle").startswith("Red Honda Civ")  # as shown: cut at 80 columns
        assert bubble.border_title == "NEW"
        # Every lane fits side by side at 80 columns.
        await pilot.pause()
        assert all(c.region.width >= LaneColumn.MIN_WIDTH for c in app.screen.query(LaneColumn))


@pytest.mark.parametrize("keys", [("down", "right", "right", "down", "left", "up"), ("j", "l", "l", "j", "h", "k")])
async def test_arrow_keys_and_hjkl_move_between_bubbles_and_lanes(grid, settings, keys) -> None:
    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        visited = [app.focused.session_id]
        for key in keys:
            await pilot.press(key)
            visited.append(app.focused.session_id)
        # down: pg2; right: skips empty Lane 1 -> Lane 2 (only bubble); right: Lane 3 (row clamped to 0);
        # down: l3b; left: Lane 2; up: stays on l2a (top)
        assert visited == [ids["pg1"], ids["pg2"], ids["l2a"], ids["l3a"], ids["l3b"], ids["l2a"], ids["l2a"]]


async def test_enter_opens_the_session_and_escape_returns(grid, settings) -> None:
    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "session detail")
        await wait_until(pilot, lambda: app.screen.detail is not None, "detail loaded")
        assert app.screen.session_id == ids["pg2"]
        vehicle = str(app.screen.query_one("#vehicle").render())
        assert "PG2-002" in vehicle and "Red Honda Civic" in vehicle and "Pre-Gate" in vehicle
        # The terminal that opened it is recorded for the other terminals to see.
        await wait_until(pilot, lambda: SessionService(db).detail(ids["pg2"]).bubble.held_by is not None, "hold recorded")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen), "back on the board")
        await wait_until(pilot, lambda: SessionService(db).detail(ids["pg2"]).bubble.held_by is None, "hold released")


async def test_click_opens_a_session(grid, settings) -> None:
    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(bubble_ids(app)) == 5, "bubbles")
        await tap_bubble(pilot, ids['l3b'])
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "session detail")
        assert app.screen.session_id == ids["l3b"]


async def test_member_vehicle_shows_customer_and_membership(demo_db, settings) -> None:
    from db.models import Membership, MembershipStatus

    with demo_db.read() as s:
        vehicle, membership = s.exec(
            select(Vehicle, Membership)
            .join(Membership, Membership.customer_id == Vehicle.customer_id)
            .where(Membership.status == MembershipStatus.ACTIVE)
        ).first()
    sid = _arrive(demo_db, vehicle.plate, "Lane 1")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: sid in bubble_ids(app), "member bubble")
        bubble = app.screen.query_one(f"#session-{sid}", SessionBubble)
        assert bubble.border_title == "MEMBER"
        assert bubble.has_class("-member")
        await tap_bubble(pilot, sid)
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None, "detail")
        customer = str(app.screen.query_one("#customer").render())
        assert "MEMBER" in customer and "Plan:" in customer and "(active)" in customer


async def test_legacy_plate_gets_a_legacy_badge(demo_db, settings) -> None:
    from db.models import LegacyMemberPlate

    with demo_db.read() as s:
        plate = s.exec(select(LegacyMemberPlate)).first()
    sid = _arrive(demo_db, plate.plate_raw, "Pre-Gate")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: sid in bubble_ids(app), "legacy bubble")
        assert app.screen.query_one(f"#session-{sid}", SessionBubble).border_title == "LEGACY"


@pytest.mark.both_databases
async def test_session_inserted_by_another_connection_appears_without_a_key_press(demo_db, settings) -> None:
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen) and app.screen._lanes, "board loaded")
        assert bubble_ids(app) == []
        # Another terminal: its own engine and raw SQL, not our services.
        # A writer takes the write lock at BEGIN, as Database.write() does: a deferred transaction that read
        # first could not upgrade once the app's background billing pass had committed (SQLITE_BUSY_SNAPSHOT).
        other = make_engine(settings.resolved_database_url())
        with other.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
            lane_id = conn.execute(text("SELECT id FROM lane WHERE name = 'Lane 2'")).scalar_one()
            new_id = conn.execute(
                text(
                    "INSERT INTO vehicle_session (lane_id, plate, plate_region, plate_normalized, make, model, colour, "
                    "confidence, arrived_at, status, source, version) VALUES (:lane, 'OTH-999', 'US-TX', 'OTH999', "
                    "'Ford', 'F-150', 'Blue', 0.97, :now, 'waiting', 'camera', 1) RETURNING id"
                ),
                {"lane": lane_id, "now": dt.datetime.now(dt.UTC)},
            ).scalar_one()
        other.dispose()
        await wait_until(pilot, lambda: new_id in bubble_ids(app), "the other terminal's session")
        bubble = app.screen.query_one(f"#session-{new_id}", SessionBubble)
        assert bubble.parent.parent.id == f"lane-{lane_id}"
        assert "Blue Ford F-150" in bubble.line("vehicle")


async def test_mark_done_removes_the_bubble_and_writes_an_audit_row(grid, settings) -> None:
    from db.models import AuditLog

    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(bubble_ids(app)) == 5, "bubbles")
        await tap_bubble(pilot, ids['l2a'])
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None, "detail")
        await pilot.press("f6")
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen), "back on the board")
        await wait_until(pilot, lambda: ids["l2a"] not in bubble_ids(app), "bubble gone")
    with db.read() as s:
        assert s.get(VehicleSession, ids["l2a"]).status == SessionStatus.DONE
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity_id == str(ids["l2a"])))]
        assert "session.done" in actions


async def test_wait_time_ticks(grid, settings) -> None:
    db, ids = grid
    now = [dt.datetime.now(dt.UTC)]
    app = make_app(settings, db, clock=lambda: now[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(bubble_ids(app)) == 5, "bubbles")
        bubble = app.screen.query_one(f"#session-{ids['pg1']}", SessionBubble)
        now[0] = now[0] + dt.timedelta(minutes=3, seconds=7)
        await wait_until(pilot, lambda: "3m 0" in bubble.line("wait"), "the wait time to tick to 3 minutes")


async def test_terminal_too_small_shows_a_clear_view_and_recovers(grid, settings) -> None:
    db, _ = grid
    app = make_app(settings, db)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "too-small view")
        assert "Terminal too small" in str(app.screen.query_one("#too-small").render())
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen), "the board again")


async def test_many_lanes_scroll_sideways_instead_of_squashing(demo_db, settings) -> None:
    with demo_db.write() as s:
        site_id = s.exec(select(Lane.site_id)).first()
        for i in range(4, 8):
            s.add(Lane(site_id=site_id, name=f"Lane {i}", position=10 + i))
    near = _arrive(demo_db, "NEA-111", "Pre-Gate")
    sid = _arrive(demo_db, "FAR-777", "Lane 7")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: sid in bubble_ids(app), "bubble in the last lane")
        columns = list(app.screen.query(LaneColumn))
        assert len(columns) == 8
        await pilot.pause()
        assert all(c.outer_size.width >= LaneColumn.MIN_WIDTH for c in columns)
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "focus")
        assert app.focused.session_id == near
        await pilot.press("right")  # across four empty lanes, off screen
        assert app.focused.session_id == sid
        # The focused bubble is scrolled into view.
        await wait_until(pilot, lambda: 0 < app.focused.region.right <= 80, "the far lane scrolled into view")


async def test_migrate_key_opens_the_legacy_match(grid, settings) -> None:
    # Every session action is built now; "m" (Migrate, issue 6) opens the legacy match screen.
    db, ids = grid
    app = make_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(bubble_ids(app)) == 5, "bubbles")
        await tap_bubble(pilot, ids['pg1'])
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "detail")
        await pilot.press("m")
        await wait_until(pilot, lambda: app.screen.id == "migration-match", "the legacy match screen")
