"""Operator sign-in at the terminal: PIN pad, lockout, idle sign-out that keeps an order, shifts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.screens.board import BoardScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.screens.signin import SignInScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.operators import LockedOut, OperatorService, WrongPin
from clarity_tui.services.sessions import SessionService
from db.models import AuditLog, Operator, OperatorShift, SalesOrder
from hardware.plate_reader import PlateEvent
from tests.helpers.clock import Clock
from tests.helpers.signin import choose, message, pad, shifts_last_active, sign_in, signin_settings
from tests.helpers.ui import make_app, tap_bubble, wait_until


def _op(db, name: str) -> Operator:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Operator).where(Operator.name == name)).one()


def _actions(db) -> list[str]:  # noqa: ANN001
    with db.read() as s:
        return [a.action for a in s.exec(select(AuditLog).order_by(AuditLog.id))]


def test_service_locks_out_after_repeated_failures_and_unlocks_after_the_wait(demo_db) -> None:  # noqa: ANN001
    clock = Clock()
    svc = OperatorService(demo_db, "lane-1", clock=clock)
    alex = _op(demo_db, "Alex Attendant")
    for attempt in range(1, 5):
        with pytest.raises(WrongPin) as wrong:
            svc.sign_in(alex.id, "000000")
        assert wrong.value.attempts_left == 5 - attempt
    with pytest.raises(LockedOut, match="locked out for 5 min"):
        svc.sign_in(alex.id, "000000")
    # Even the right PIN is refused while locked, and the message says for how long.
    clock.advance(60)
    with pytest.raises(LockedOut, match=r"try again in 4 min 00 s"):
        svc.sign_in(alex.id, "123456")
    # Other operators are not affected.
    assert svc.sign_in(_op(demo_db, "Morgan Manager").id, "654321").actor.name == "Morgan Manager"
    clock.advance(241)
    signed = svc.sign_in(alex.id, "123456")
    assert signed.actor == Actor("Alex Attendant", "attendant", "lane-1", alex.id)
    actions = _actions(demo_db)
    assert actions.count("operator.sign_in_failed") == 5 and actions.count("operator.locked_out") == 1
    assert actions.count("operator.sign_in") == 2
    # One operator per terminal: Morgan's shift ended when Alex signed in here.
    shifts = svc.shifts(open_only=True)
    assert [(r.operator, r.terminal) for r in shifts] == [("Alex Attendant", "lane-1")]
    svc.sign_out(signed.shift_id, "signout")
    assert svc.shifts(open_only=True) == []
    assert _actions(demo_db)[-1] == "operator.sign_out"


def test_pins_are_stored_hashed(demo_db) -> None:  # noqa: ANN001
    with demo_db.read() as s:
        hashes = [o.pin_hash for o in s.exec(select(Operator))]
    assert hashes and all(h.startswith("scrypt$") and "123456" not in h for h in hashes)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_pin_pad_signs_in_by_keyboard_and_touch_and_locks_out(demo_db, settings) -> None:  # noqa: ANN001
    clock = Clock()
    app = make_app(signin_settings(settings, attempts=3, lockout=120), demo_db, clock=clock, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await choose(pilot, "Taylor Tech")
        # Keys the pad does not allow are shut while it is up: no search, no palette.
        await pilot.press("f7")
        assert app.screen is screen
        for _ in range(2):
            await pilot.press(*"222222")
            await wait_until(pilot, lambda: "tries left" in message(screen) or "try left" in message(screen), "refusal")
        assert "1 try left" in message(screen)
        await pilot.press(*"222222")
        await wait_until(pilot, lambda: "locked out for 2 min" in message(screen), "the lockout message")
        await pilot.press(*"111111")
        await wait_until(pilot, lambda: "try again in 2 min" in message(screen), "still locked")
        clock.advance(121)
        # Now by touch: tap the pad's digits.
        for digit in "111111":
            await pilot.click(f"#pin-{digit}")
        await wait_until(pilot, lambda: app.actor.name == "Taylor Tech", "signed in by touch")
        assert isinstance(app.screen, BoardScreen)
        assert app.actor.role == "technician" and app.actor.operator_id == _op(demo_db, "Taylor Tech").id
        assert app.holder_label == "Taylor Tech @ lane-1-term"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_idle_signout_mid_order_keeps_the_order_for_the_same_operator(demo_db, settings) -> None:  # noqa: ANN001
    sid = SessionService(demo_db).record_plate_read(PlateEvent(plate="IDL-001", lane="Lane 1"), Actor.system("t"))
    clock = Clock()
    app = make_app(signin_settings(settings, idle=60), demo_db, clock=clock, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "Alex Attendant")
        await tap_bubble(pilot, sid)
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "session detail")
        await pilot.press("f2")  # Purchase: the sale flow opens an order and shows the plans
        from clarity_tui.screens.sale.plans import PlanSelectScreen

        await wait_until(pilot, lambda: isinstance(app.screen, PlanSelectScreen), "the plans of a new order")
        order_screen = app.screen
        order_id = order_screen.view.id

        # Activity keeps the operator in; silence past the limit signs them out.
        clock.advance(50)
        await pilot.press("right")
        clock.advance(50)
        # The idle check ran after that and kept Alex in: it recorded the key press on the shift.
        pressed_at = (clock.now - dt.timedelta(seconds=50)).replace(tzinfo=None)
        await wait_until(pilot, lambda: pressed_at in shifts_last_active(demo_db), "the idle check to record the key")
        assert not isinstance(app.screen, SignInScreen)
        clock.advance(11)
        screen = await pad(pilot)
        assert "signed out after 1 min idle" in message(screen) and "kept" in message(screen)
        assert screen.chosen.name == "Alex Attendant"  # preselected for a quick return

        # Another operator gets a board of their own, not Alex's open order.
        await sign_in(pilot, "Morgan Manager")
        assert isinstance(app.screen, BoardScreen) and len(app.screen_stack) == 1
        assert order_screen not in app.screen_stack
        await pilot.press("ctrl+o")  # Morgan signs out
        await pad(pilot)

        # Alex comes back: their open order is reopened where they left it (the plans step).
        await sign_in(pilot, "Alex Attendant")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanSelectScreen), "Alex's order back on screen")
        assert app.screen.view.id == order_id
        assert [type(s).__name__ for s in app.screen_stack] == ["BoardScreen", "SessionDetailScreen", "PlanSelectScreen"]
        with demo_db.read() as s:
            order = s.get(SalesOrder, order_id)
            assert order.state == "draft" and order.operator_id == _op(demo_db, "Alex Attendant").id

        # Idle again, and Alex returns with nobody in between: the very same screens, untouched.
        same = app.screen
        clock.advance(61)
        await pad(pilot)
        await sign_in(pilot, "Alex Attendant")
        assert app.screen is same

    with demo_db.read() as s:
        shifts = s.exec(select(OperatorShift).order_by(OperatorShift.id)).all()
        assert [sh.signout_reason for sh in shifts] == ["idle", "signout", "idle", "exit"]
    actions = _actions(demo_db)
    assert actions.count("operator.sign_in") == 4 and actions.count("operator.sign_out") == 4


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_pad_appears_over_the_board_on_the_fast_start_path(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.app import ClarityApp
    from clarity_tui.bootconfig import resolve_boot_config
    from tests.helpers.ui import bubble_ids

    sid = SessionService(demo_db).record_plate_read(PlateEvent(plate="FST-777", lane="Lane 2"), Actor.system("t"))
    app = ClarityApp(boot=resolve_boot_config(None, settings.resolved_database_url(), None), require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "the pad at once")
        board = app.screen_stack[0]
        await wait_until(pilot, lambda: sid in [b.session_id for b in board.query("SessionBubble")], "the board under it")
        await sign_in(pilot, "Sam Support")
        assert app.is_booted and sid in bubble_ids(app)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_manager_unlocks_a_locked_out_operator_from_whos_on(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.screens.shift import ShiftScreen
    from clarity_tui.services.operators import SignInError

    clock = Clock()
    svc = OperatorService(demo_db, "lane-2", clock=clock)
    taylor = _op(demo_db, "Taylor Tech")
    for _ in range(5):
        with pytest.raises((WrongPin, LockedOut)):
            svc.sign_in(taylor.id, "999999")
    alex = svc.sign_in(_op(demo_db, "Alex Attendant").id, "123456")
    with pytest.raises(SignInError, match="may not manage operators"):
        svc.unlock(taylor.id, alex.actor)
    morgan = Actor("Morgan Manager", "manager", "office", _op(demo_db, "Morgan Manager").id)
    app = make_app(signin_settings(settings), demo_db, clock=clock, actor=morgan)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+w")
        await wait_until(pilot, lambda: isinstance(app.screen, ShiftScreen)
                         and "Locked out: Taylor Tech" in str(app.screen.query_one("#shift-note").render()), "lockout shown")
        await pilot.press("u")
        await wait_until(pilot, lambda: "Locked out" not in str(app.screen.query_one("#shift-note").render()), "unlocked")
    assert svc.sign_in(taylor.id, "111111").actor.name == "Taylor Tech"
    assert "operator.unlocked" in _actions(demo_db)
