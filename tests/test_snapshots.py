"""Snapshots of the board and the session screen: 80x24, 120x40, and 16 colours.

Deterministic: demo data from a fixed seed, fixed arrival times and a fixed clock.
Update after an intended visual change with: ./dev test tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.models import LegacyMemberPlate, Vehicle, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers.clock import FIXED_NOW
from tests.helpers.ui import make_app, wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    # Snapshots are about pixels, not backends: SQLite only (the board tests cover PostgreSQL).
    return f"sqlite:///{tmp_path / 'site.db'}"


@pytest.fixture
def busy_site(demo_db):  # noqa: ANN001, ANN201
    from sqlmodel import select

    with demo_db.read() as s:
        members = s.exec(select(Vehicle).where(Vehicle.customer_id.is_not(None)).order_by(Vehicle.id).limit(4)).all()
        legacy = s.exec(select(LegacyMemberPlate).order_by(LegacyMemberPlate.id).limit(1)).all()
    arrivals = [
        (members[0].plate, "Pre-Gate"), (legacy[0].plate_raw, "Pre-Gate"), ("NEW-4821", "Pre-Gate"),
        (members[1].plate, "Lane 1"), ("WLK-1020", "Lane 1"),
        (members[2].plate, "Lane 2"),
        (members[3].plate, "Lane 3"), ("TMP-0007", "Lane 3"),
    ]
    sessions = SessionService(demo_db)
    ids = []
    for i, (plate, lane) in enumerate(arrivals):
        ids.append(sessions.record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.95,
                                                         make="Toyota", model="Camry", colour="Silver"), Actor.system("snap")))
    with demo_db.write() as s:
        for i, sid in enumerate(ids):
            s.exec(update(VehicleSession).where(VehicleSession.id == sid).values(arrived_at=FIXED_NOW - dt.timedelta(minutes=9 - i, seconds=13 * i)))
    return demo_db, ids


def _app(settings, db):  # noqa: ANN001, ANN202
    return make_app(settings, db, fixed_clock=True)


async def _board_ready(pilot) -> None:  # noqa: ANN001
    from clarity_tui.widgets.bubble import SessionBubble

    await wait_until(pilot, lambda: len(pilot.app.screen.query(SessionBubble)) == 8, "eight bubbles")
    await pilot.pause()


def test_board_80x24(busy_site, settings, snap_compare) -> None:  # noqa: ANN001
    db, _ = busy_site
    assert snap_compare(_app(settings, db), terminal_size=(80, 24), run_before=_board_ready)


def test_board_120x40(busy_site, settings, snap_compare) -> None:  # noqa: ANN001
    db, _ = busy_site
    assert snap_compare(_app(settings, db), terminal_size=(120, 40), run_before=_board_ready)


def test_board_80x24_sixteen_colours(busy_site, settings, snap_compare, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    db, _ = busy_site
    assert snap_compare(_app(settings, db), terminal_size=(80, 24), run_before=_board_ready)


def test_board_120x40_sixteen_colours(busy_site, settings, snap_compare, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    db, _ = busy_site
    assert snap_compare(_app(settings, db), terminal_size=(120, 40), run_before=_board_ready)


def test_session_detail_80x24(busy_site, settings, snap_compare) -> None:  # noqa: ANN001
    db, ids = busy_site

    async def open_member(pilot) -> None:  # noqa: ANN001
        from clarity_tui.screens.session_detail import SessionDetailScreen

        await _board_ready(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, SessionDetailScreen) and pilot.app.screen.detail is not None, "detail")
        await pilot.pause()

    assert snap_compare(_app(settings, db), terminal_size=(80, 24), run_before=open_member)


def test_too_small_60x20(busy_site, settings, snap_compare) -> None:  # noqa: ANN001
    db, _ = busy_site

    async def settle(pilot) -> None:  # noqa: ANN001
        from clarity_tui.screens.too_small import TooSmallScreen

        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TooSmallScreen), "too small")
        await pilot.pause()

    assert snap_compare(_app(settings, db), terminal_size=(60, 20), run_before=settle)
