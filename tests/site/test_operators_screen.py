"""The manager's Operators screen and the Manager PIN modal, through Pilot at 80x24 (issue 15, items 1-2)."""

from __future__ import annotations

import pytest
from sqlmodel import select
from textual.widgets import DataTable

from clarity_tui.screens.operators import OperatorsScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.operators import LockedOut, OperatorService, SignInError, WrongPin
from clarity_tui.widgets.manager_pin import ManagerPinModal
from db.models import AuditLog, Operator, Role
from tests.helpers.signin import signin_settings
from tests.helpers.ui import make_app, wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _op(db, name: str) -> Operator:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Operator).where(Operator.name == name)).one()


def _actor(db, name: str) -> Actor:  # noqa: ANN001
    op = _op(db, name)
    return Actor(op.name, Role(op.role), "lane-1-term", op.id)


def _audit(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _text(app, selector: str) -> str:  # noqa: ANN001
    return " ".join(str(app.screen.query_one(selector).render()).split())


def _names(app) -> list[str]:  # noqa: ANN001
    return [r.name for r in app.screen._rows] if isinstance(app.screen, OperatorsScreen) else []


def _visible(app, selector: str) -> bool:  # noqa: ANN001
    region = app.screen.query_one(selector).region
    return region.area > 0 and region.right <= 80 and region.bottom <= 24


async def _type(pilot, text: str) -> None:  # noqa: ANN001
    await pilot.press(*["space" if c == " " else c for c in text])


async def _screen(pilot, screen_id: str, focus: str | None = None) -> None:  # noqa: ANN001
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.id == screen_id and (
        focus is None or (bool(app.screen.query(focus)) and app.screen.focused is app.screen.query_one(focus))),
        f"the {screen_id} screen")


async def _highlight(pilot, name: str) -> None:  # noqa: ANN001
    app = pilot.app
    table = app.screen.query_one(DataTable)
    target = _names(app).index(name)
    await pilot.press(*(["down"] * (target - table.cursor_row) if target >= table.cursor_row
                        else ["up"] * (table.cursor_row - target)))
    await wait_until(pilot, lambda: app.screen.highlighted is not None and app.screen.highlighted.name == name,
                     f"{name} highlighted")


async def test_a_manager_adds_sets_a_pin_unlocks_and_disables_from_the_screen(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Morgan Manager"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")  # from the board
        await _screen(pilot, "operators")
        await wait_until(pilot, lambda: _names(app) == ["Alex Attendant", "Morgan Manager", "Sam Support",
                                                         "Taylor Tech"], "the operators listed")
        assert _visible(app, "#operators-table") and _visible(app, "#operators-message")

        # A: add. Name, role (arrow keys), PIN twice; a trivial PIN is refused in place.
        await pilot.press("a")
        await _screen(pilot, "operator-add", "#op-name")
        assert _visible(app, "#form-save") and _visible(app, "#op-role") and _visible(app, "#op-pin2")
        await _type(pilot, "Pat Lee")
        await pilot.press("enter", "down", "down", "down", "enter")  # technician
        await pilot.press(*"111111", "enter", *"111111", "enter")
        await wait_until(pilot, lambda: "one digit repeated" in _text(app, ".form-error"), "a trivial PIN refused")
        await pilot.press(*"480917", "enter", *"480917", "enter")
        await _screen(pilot, "operators")
        await wait_until(pilot, lambda: "Pat Lee" in _names(app) and "Added Pat Lee (technician)" in
                         _text(app, "#operators-message"), "Pat added")
        pat = _op(demo_db, "Pat Lee")
        assert pat.role == "technician"
        svc = OperatorService(demo_db, "lane-2")
        assert svc.sign_in(pat.id, "480917").actor.name == "Pat Lee"

        # P: set a new PIN for the highlighted operator.
        await _highlight(pilot, "Pat Lee")
        await pilot.press("p")
        await _screen(pilot, "operator-set-pin", "#op-pin")
        await pilot.press(*"630529", "enter", *"630529", "enter")
        await _screen(pilot, "operators")
        await wait_until(pilot, lambda: "New PIN set for Pat Lee" in _text(app, "#operators-message"), "PIN set")
        with pytest.raises(WrongPin):
            svc.sign_in(pat.id, "480917")
        assert svc.sign_in(pat.id, "630529").actor.name == "Pat Lee"

        # U: unlock a locked-out operator (the lockout shows in the list).
        taylor = _op(demo_db, "Taylor Tech")
        for _ in range(5):
            with pytest.raises((WrongPin, LockedOut)):
                svc.sign_in(taylor.id, "000000")
        await pilot.press("f5")
        await wait_until(pilot, lambda: any(r.name == "Taylor Tech" and r.locked(app.now()) for r in app.screen._rows),
                         "the lockout listed")
        await _highlight(pilot, "Taylor Tech")
        await pilot.press("u")
        await wait_until(pilot, lambda: "Taylor Tech is unlocked" in _text(app, "#operators-message"), "unlocked")
        assert svc.sign_in(taylor.id, "111111").actor.name == "Taylor Tech"

        # D: disable, after a confirmation; a manager cannot disable themselves.
        await _highlight(pilot, "Morgan Manager")
        await pilot.press("d")
        await _screen(pilot, "operator-disable")
        await pilot.press("y")
        await wait_until(pilot, lambda: "cannot disable yourself" in _text(app, "#operators-message"), "refused")
        await _highlight(pilot, "Pat Lee")
        await pilot.press("d")
        await _screen(pilot, "operator-disable")
        assert _visible(app, "#operator-disable-yes")
        await pilot.press("n")  # kept
        await _screen(pilot, "operators")
        await pilot.press("d")
        await _screen(pilot, "operator-disable")
        await pilot.press("y")
        await wait_until(pilot, lambda: "Pat Lee is disabled" in _text(app, "#operators-message"), "disabled")
        await wait_until(pilot, lambda: any(r.name == "Pat Lee" and not r.active for r in app.screen._rows),
                         "listed as disabled")
        with pytest.raises(SignInError, match="cannot sign in"):
            svc.sign_in(pat.id, "630529")
        await pilot.press("escape")
        await _screen(pilot, "board")

    for action in ("operator.created", "operator.pin_changed", "operator.unlocked", "operator.disabled"):
        rows = _audit(demo_db, action)
        assert [r.actor for r in rows] == ["Morgan Manager"], action


async def test_an_attendant_gets_operators_only_with_a_managers_pin_in_place(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Operators: manage" in titles  # in the command palette too
        await pilot.press("ctrl+k")
        await _screen(pilot, "manager-pin", "#manager-pin-input")
        modal = app.screen
        assert isinstance(modal, ManagerPinModal)
        await wait_until(pilot, lambda: "PIN for Morgan Manager" in _text(app, "#manager-pin-who"), "the manager")
        assert _visible(app, "#manager-pin-approve") and _visible(app, "#manager-pin-input")
        await pilot.press(*"123456", "enter")  # Alex's own PIN is not a manager's
        await wait_until(pilot, lambda: "Wrong PIN for Morgan Manager: 4 tries left" in
                         _text(app, "#manager-pin-message"), "refused")
        await pilot.press("escape")  # cancelled: nothing opens
        await _screen(pilot, "board")
        await pilot.press("ctrl+k")
        await _screen(pilot, "manager-pin", "#manager-pin-input")
        await wait_until(pilot, lambda: "PIN for Morgan Manager" in _text(app, "#manager-pin-who"), "the manager")
        await pilot.press(*"654321", "enter")
        await _screen(pilot, "operators")
        assert app.screen.manager.name == "Morgan Manager" and app.actor.name == "Alex Attendant"
    [approved] = _audit(demo_db, "operator.approved")
    assert (approved.actor, approved.after["for"], approved.after["requested_by"]) == (
        "Morgan Manager", "operators.manage", "Alex Attendant")
    assert len(_audit(demo_db, "operator.approval_failed")) == 1


async def test_the_manager_pin_modal_shows_a_lockout_and_refuses_the_locked_managers_pin(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(signin_settings(settings, attempts=2), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+k")
        await _screen(pilot, "manager-pin", "#manager-pin-input")
        await wait_until(pilot, lambda: "PIN for Morgan Manager" in _text(app, "#manager-pin-who"), "the manager")
        await pilot.press(*"000000", "enter")
        await wait_until(pilot, lambda: "1 try left" in _text(app, "#manager-pin-message"), "one left")
        await pilot.press(*"000000", "enter")
        await wait_until(pilot, lambda: "locked out for" in _text(app, "#manager-pin-message"), "locked out")
        await wait_until(pilot, lambda: "(locked)" in " ".join(str(o.prompt) for o in
                                                             app.screen.query_one("#manager-pin-list").options),
                         "the lockout in the list")
        await pilot.press(*"654321", "enter")  # the right PIN, but Morgan is locked out
        await wait_until(pilot, lambda: "is locked out after 2 wrong PINs" in _text(app, "#manager-pin-message"),
                         "refused while locked")
        assert app.screen.id == "manager-pin"
    assert _audit(demo_db, "operator.approved") == []
    assert len(_audit(demo_db, "operator.approval_failed")) == 2 and len(_audit(demo_db, "operator.locked_out")) == 1
