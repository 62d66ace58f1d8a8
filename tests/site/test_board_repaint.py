"""The board repaints only what changed (issue 17): a change to one session touches its bubble and lane,
every other bubble and lane keeps its widgets, and adds, moves between lanes and removals still land."""

from __future__ import annotations

import pytest

from clarity_tui.screens.board import BoardScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.bubble import SessionBubble
from clarity_tui.widgets.lane_column import LaneColumn
from db.models import SessionStatus, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers.ui import bubble_ids, make_app, wait_until

pytestmark = pytest.mark.both_databases

CAMERA = Actor.system("camera")


def _board(app) -> dict[str, list[int]]:
    return {column.lane.name: [b.session_id for b in column.bubbles] for column in app.screen.query(LaneColumn)}


def _expected(db) -> dict[str, list[int]]:
    return {lane.name: [b.session_id for b in lane.bubbles] for lane in SessionService(db).board()}


def _vehicle_line(app, session_id: int) -> str:
    return app.screen.query_one(f"#session-{session_id}", SessionBubble).line("vehicle")


async def test_one_session_changing_repaints_only_its_bubble_and_lane(demo_db, settings) -> None:
    # Another terminal's writes (its own engine), so the change feed carries them as it would in a site.
    other = open_database(settings)
    camera = SessionService(other)

    def arrive(plate: str, lane: str) -> int:
        return camera.record_plate_read(PlateEvent(plate=plate, lane=lane, make="Honda", model="Civic",
                                                   colour="Red"), CAMERA)

    ids = {"a": arrive("RPA-001", "Pre-Gate"), "b": arrive("RPB-002", "Lane 1"), "c": arrive("RPC-003", "Lane 2"),
           "d": arrive("RPD-004", "Lane 3")}
    app = make_app(settings, demo_db)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: sorted(bubble_ids(app)) == sorted(ids.values()), "four bubbles")
            screen = app.screen
            assert isinstance(screen, BoardScreen)
            bubbles = {b.session_id: b for b in screen.query(SessionBubble)}
            lines = {sid: list(b.children) for sid, b in bubbles.items()}
            lanes = {column.id: column.lane for column in screen.query(LaneColumn)}
            c_lane = bubbles[ids["c"]].parent.parent.id  # type: ignore[union-attr]

            # An update of one session: its bubble is updated in place.
            with other.write() as s:
                row = s.get(VehicleSession, ids["c"])
                assert row is not None
                row.colour = "Green"
            await wait_until(pilot, lambda: "Green Honda Civic" in _vehicle_line(app, ids["c"]), "the new colour")
            now = {b.session_id: b for b in screen.query(SessionBubble)}
            assert all(now[sid] is bubble for sid, bubble in bubbles.items())  # no bubble was replaced
            assert all(list(now[sid].children) == lines[sid] for sid in bubbles)  # nor recomposed
            for column in screen.query(LaneColumn):
                # Only the changed lane took the new read; the others were not touched at all.
                assert (column.lane is lanes[column.id]) == (column.id != c_lane), column.id

            # An arrival: one new bubble at the bottom of its lane, the rest as they were.
            e = arrive("RPE-005", "Lane 1")
            await wait_until(pilot, lambda: e in bubble_ids(app), "the arrival")
            assert _board(app)["Lane 1"] == [ids["b"], e]
            assert all(screen.query_one(f"#session-{sid}") is bubbles[sid] for sid in bubbles)

            # A move: the car read at the next lane leaves Pre-Gate for Lane 2.
            assert arrive("RPA-001", "Lane 2") == ids["a"]
            await wait_until(pilot, lambda: ids["a"] in _board(app)["Lane 2"], "the move")
            assert _board(app)["Pre-Gate"] == []

            # A removal.
            camera.set_status(ids["b"], SessionStatus.DONE, CAMERA)
            await wait_until(pilot, lambda: ids["b"] not in bubble_ids(app), "the removal")
            await wait_until(pilot, lambda: _board(app) == _expected(demo_db), "the board as the database has it")
            assert _board(app)["Lane 1"] == [e]
            assert screen.query_one(f"#session-{ids['d']}") is bubbles[ids["d"]]
    finally:
        other.dispose()
