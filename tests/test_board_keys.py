"""Board keys (issue 14, item 5): typing a plate jumps to its bubble; Home/End/PgUp/PgDn move within a lane.

Type-to-jump: a letter or digit that no board binding owns starts a plate prefix ("/" starts an empty one, for
plates that begin with h, j, k or l, which move); while a prefix is being typed every letter and digit extends
it. It is forgotten after a pause on the app's clock, or by Esc."""

from __future__ import annotations

import datetime as dt

import pytest

from clarity_tui.screens.board import BoardScreen
from clarity_tui.services.actor import Actor
from clarity_tui.widgets.bubble import SessionBubble
from tests.helpers.lanes import arrive
from tests.helpers.ui import bubble_ids, make_app, wait_until

ACTOR = Actor.system("test")
START = dt.datetime(2026, 11, 22, 14, 30, tzinfo=dt.UTC)


def _arrive(db, plate: str, lane: str) -> int:  # noqa: ANN001
    return arrive(db, plate, lane, make="Honda", model="Civic", colour="Red")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def grid(demo_db):  # noqa: ANN001, ANN201
    ids = {
        "pg1": _arrive(demo_db, "PG1-001", "Pre-Gate"),
        "pg2": _arrive(demo_db, "PG2-002", "Pre-Gate"),
        "rmk": _arrive(demo_db, "RMK 3231", "Lane 2"),
        "l3a": _arrive(demo_db, "L3A-004", "Lane 3"),
        "l3b": _arrive(demo_db, "L3B-005", "Lane 3"),
    }
    return demo_db, ids


async def _board(pilot, app, count: int) -> None:  # noqa: ANN001
    await wait_until(pilot, lambda: len(bubble_ids(app)) == count and isinstance(app.focused, SessionBubble), "the board")


def _focused(app) -> int | None:  # noqa: ANN001
    return app.focused.session_id if isinstance(app.focused, SessionBubble) else None


async def test_typing_a_plate_focuses_its_bubble(grid, settings) -> None:  # noqa: ANN001
    db, ids = grid
    app = make_app(settings, db, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot, app, 5)
        assert _focused(app) == ids["pg1"]
        await pilot.press("r", "m")  # r is no board key: it starts a plate
        assert _focused(app) == ids["rmk"]
        assert "RM" in app.screen.sub_title
        await pilot.press("escape", "p", "g", "2")  # Esc forgets "RM"; "-" and spaces do not count
        assert _focused(app) == ids["pg2"]
        await pilot.press("escape")
        assert app.screen.sub_title == "Lanes"
        assert isinstance(app.screen, BoardScreen)


async def test_h_j_k_l_extend_a_plate_once_one_is_being_typed(grid, settings) -> None:  # noqa: ANN001
    db, ids = grid
    app = make_app(settings, db, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot, app, 5)
        await pilot.press("slash", "l", "3", "b")  # "/" then a plate starting with l (a movement key)
        assert _focused(app) == ids["l3b"]
        await pilot.press("backspace")  # "L3": the first such plate
        assert _focused(app) == ids["l3a"]
        await pilot.press("escape", "h")  # no plate being typed: h moves to the lane before again
        assert _focused(app) == ids["rmk"]


async def test_the_prefix_is_forgotten_after_a_pause_on_the_apps_clock(grid, settings) -> None:  # noqa: ANN001
    db, ids = grid
    clock = Clock()
    app = make_app(settings, db, clock=clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot, app, 5)
        await pilot.press("p", "g", "2")
        assert _focused(app) == ids["pg2"]
        clock.now += dt.timedelta(seconds=1)
        await pilot.press("x")  # within the pause: "PG2X" matches nothing, the focus stays
        assert _focused(app) == ids["pg2"]
        assert "no plate starts with PG2X" in app.screen.sub_title
        clock.now += dt.timedelta(seconds=2)
        await pilot.press("r")  # after the pause: a new plate, "R"
        assert _focused(app) == ids["rmk"]
        clock.now += dt.timedelta(seconds=2)
        await pilot.press("down")  # the arrows work as always
        assert _focused(app) == ids["rmk"]  # the only bubble of Lane 2
        await wait_until(pilot, lambda: app.screen.sub_title == "Lanes", "the plate hint cleared by the clock tick")


async def test_end_pgdn_home_pgup_move_within_the_lane(demo_db, settings) -> None:  # noqa: ANN001
    ids = [_arrive(demo_db, f"ABC{n:03d}", "Pre-Gate") for n in range(1, 10)]
    app = make_app(settings, demo_db, clock=Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot, app, 9)
        assert _focused(app) == ids[0]
        await pilot.press("end")
        assert _focused(app) == ids[-1]
        await pilot.pause()
        last = app.screen.query_one(f"#session-{ids[-1]}")
        assert app.screen.find_widget(last).region.bottom <= 24  # scrolled into view
        await pilot.press("home")
        assert _focused(app) == ids[0]
        await pilot.press("pagedown")
        bubble = app.screen.query_one(f"#session-{ids[0]}")
        page = bubble.parent.size.height // bubble.outer_size.height
        assert page >= 1
        assert _focused(app) == ids[page]
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        assert _focused(app) == ids[-1]  # clamped at the last bubble
        await pilot.press("pageup")
        assert _focused(app) == ids[-1 - page]
