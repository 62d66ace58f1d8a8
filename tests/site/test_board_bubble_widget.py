"""A board bubble is one widget (issue 17 item 3): no child widgets for a layout to walk, four rows of its
own, each cut with an ellipsis at the bubble's width, and the held / look-alike styles from its CSS."""

from __future__ import annotations

import pytest
from rich.style import Style
from textual.color import Color

from clarity_tui.services.actor import Actor
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.bubble import SessionBubble
from db.models import VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers.ui import make_app, wait_until

pytestmark = pytest.mark.both_databases

CAMERA = Actor.system("camera")
ROWS = {"plate": 0, "vehicle": 1, "who": 2, "wait": 3}


def _row(bubble: SessionBubble, name: str) -> tuple[str, Style]:
    """One row of the bubble as it is on screen (inside border and padding): its text and its text's style."""
    region = bubble.content_region
    screen = bubble.screen._compositor.render_strips()  # what the terminal shows, whatever the widgets
    strip = screen[region.y + ROWS[name]].crop(region.x, region.right)
    styles = [s.style for s in strip if s.text.strip()]
    return strip.text.rstrip(), styles[0] or Style()


def _colour(style: Style) -> str:
    assert style.color is not None
    return Color.from_rich_color(style.color).hex


async def test_a_bubble_is_one_widget_of_four_rows_cut_with_an_ellipsis(demo_db, settings) -> None:
    camera = SessionService(demo_db)
    sid = camera.record_plate_read(PlateEvent(plate="LNG-0001", lane="Lane 1", make="Mercedes-Benz",
                                              model="Sprinter 3500 High Roof", colour="Silver"), CAMERA)
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{sid}"))
                         and app.screen.query_one(f"#session-{sid}").region.area > 0, "the bubble")
        bubble = app.screen.query_one(f"#session-{sid}", SessionBubble)
        assert not bubble.children
        assert bubble.region.height == 6
        width = bubble.content_size.width
        vehicle, _ = _row(bubble, "vehicle")
        assert vehicle == bubble.line("vehicle")
        assert vehicle.endswith("…") and len(vehicle) == width
        assert "Silver Mercedes-Benz Sprinter".startswith(vehicle[:-1])
        # One row each: the long line did not wrap into the next.
        assert _row(bubble, "plate")[0] == "LNG-0001"
        assert _row(bubble, "who")[0] == "Walk-up"
        assert _row(bubble, "wait")[0].startswith("Wait ")
        assert _row(bubble, "plate")[1].bold and not _row(bubble, "who")[1].bold


async def test_a_held_wait_and_a_lookalike_walk_up_take_the_warning_style(demo_db, settings) -> None:
    # RMK-323I: the shape of member Sofia Evans's RMK-3231, a walk-up that may be a misread.
    sid = SessionService(demo_db).record_plate_read(
        PlateEvent(plate="RMK-323I", lane="Lane 1", region="US-TX", confidence=0.9, make="Kia", model="Soul",
                   colour="Red"), CAMERA)
    app = make_app(settings, demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{sid}"))
                         and app.screen.query_one(f"#session-{sid}").region.area > 0, "the bubble")
        bubble = app.screen.query_one(f"#session-{sid}", SessionBubble)
        warning = Color.parse(app.get_css_variables()["warning"]).hex
        who, who_style = _row(bubble, "who")
        assert who == "≈ member?" and who_style.bold and _colour(who_style) == warning
        wait, wait_style = _row(bubble, "wait")
        assert "·" not in wait and _colour(wait_style) != warning

        other = open_database(settings)  # another terminal holds it
        try:
            with other.write() as s:
                row = s.get(VehicleSession, sid)
                assert row is not None
                row.held_by = "Ana"
        finally:
            other.dispose()
        await wait_until(pilot, lambda: "Ana" in _row(bubble, "wait")[0], "the hold")
        wait, wait_style = _row(bubble, "wait")
        assert wait.endswith("· Ana") and _colour(wait_style) == warning
