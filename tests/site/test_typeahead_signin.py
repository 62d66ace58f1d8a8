"""The PIN and what comes after it in one burst (tmux, issue 14): "123456 /ZZQ Enter" signs in, jumps to
the car typed and opens its session, as the same keys typed slowly do. Before the sign-in check and the
board's load held the keys, the plate was lost and Enter opened whichever bubble had focus."""

from __future__ import annotations

from clarity_tui.screens.board import BoardScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from hardware.plate_reader import PlateEvent
from tests.helpers.burst import burst
from tests.helpers.signin import PINS, choose, signin_settings
from tests.helpers.ui import make_app, wait_until


def _cars(db) -> int:  # noqa: ANN001
    sessions = SessionService(db)
    sessions.record_plate_read(PlateEvent(plate="AAB-1001", lane="Lane 1"), Actor.system("test"))  # first bubble
    return sessions.record_plate_read(PlateEvent(plate="ZZQ-4821", lane="Lane 2"), Actor.system("test"))


async def test_pin_then_a_plate_and_enter_in_one_burst_open_that_car(demo_db, settings) -> None:  # noqa: ANN001
    wanted = _cars(demo_db)
    app = make_app(signin_settings(settings), demo_db, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await choose(pilot, "Alex Attendant")
        burst(pilot, [*PINS["Alex Attendant"], "slash", *"ZZQ", "enter"])
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "a session opened")
        await pilot.pause()
        assert app.actor.name == "Alex Attendant"
        assert app.screen.session_id == wanted, "the burst opened another car than the one typed"
        assert [type(s) for s in app.screen_stack].count(SessionDetailScreen) == 1


async def test_the_same_keys_typed_slowly_open_the_same_car(demo_db, settings) -> None:  # noqa: ANN001
    wanted = _cars(demo_db)
    app = make_app(signin_settings(settings), demo_db, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await choose(pilot, "Alex Attendant")
        await pilot.press(*PINS["Alex Attendant"])
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen) and app.actor.name == "Alex Attendant",
                         "signed in")
        await pilot.press("slash", *"ZZQ", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "a session opened")
        assert app.screen.session_id == wanted
