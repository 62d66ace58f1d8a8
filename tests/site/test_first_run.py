"""A new site starts with no operators and asks for its first manager (issue 15, item 1).

The demo operators (Morgan Manager 654321…) exist only in demo and simulator databases."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from clarity_tui.screens.signin import SignInScreen
from clarity_tui.services.operator_admin import OperatorAdmin, OperatorAdminError
from db.models import AuditLog, Operator, Role
from tests.helpers.signin import message
from tests.helpers.ui import wait_until


def _operators(db) -> list[tuple[str, str]]:  # noqa: ANN001
    with db.read() as s:
        return [(o.name, o.role) for o in s.exec(select(Operator).order_by(Operator.id))]


def _app(settings):  # noqa: ANN001, ANN202
    """The app as `clarity-tui` starts it on a site (the fast path: not simulator mode, PIN pad on)."""
    from clarity_tui.app import ClarityApp
    from clarity_tui.bootconfig import resolve_boot_config

    return ClarityApp(boot=resolve_boot_config(None, settings.resolved_database_url(), None), require_signin=True)


def _form_error(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one(".form-error").render())


async def _form(pilot, what: str) -> None:  # noqa: ANN001
    """The first-manager form is on screen, its name field focused (ready for keys)."""
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.id == "first-manager" and app.screen.query("#op-name")
                     and app.screen.focused is app.screen.query_one("#op-name"), what)


async def _type(pilot, text: str) -> None:  # noqa: ANN001
    await pilot.press(*["space" if c == " " else c for c in text])


def test_a_site_database_has_no_operators_and_a_demo_database_has_the_demo_ones(db, db_url: str) -> None:  # noqa: ANN001
    # Opening (and creating) the site's database adds lanes, never operators.
    assert _operators(db) == []
    assert OperatorAdmin(db, "t").needs_first_manager()
    run = CliRunner().invoke(cli, ["--db", db_url, "operators", "list"])
    assert run.exit_code == 0 and "No operators yet" in run.stdout
    # `demo seed` makes a demo database: the demo operators, with their README PINs.
    seeded = CliRunner().invoke(cli, ["--db", db_url, "demo", "seed", "--customers", "3"])
    assert seeded.exit_code == 0, seeded.output
    assert sorted(_operators(db)) == [("Alex Attendant", "attendant"), ("Morgan Manager", "manager"),
                                      ("Sam Support", "support"), ("Taylor Tech", "technician")]
    # ...and then the site is set up: no "first manager" may be added without a manager.
    assert not OperatorAdmin(db, "t").needs_first_manager()
    with pytest.raises(OperatorAdminError, match="already has operators"):
        OperatorAdmin(db, "t").add_first_manager("Eve Intruder", "480917")


def test_an_ssh_support_account_does_not_count_as_set_up(db) -> None:  # noqa: ANN001
    from clarity_tui.services.operators import OperatorService

    OperatorService(db, "ssh:10.0.0.9").start_support("helpdesk")
    assert OperatorAdmin(db, "t").needs_first_manager()
    row = OperatorAdmin(db, "t").add_first_manager("Pat Lee", "480917")
    assert (row.name, row.role) == ("Pat Lee", "manager")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_first_run_asks_for_the_first_manager_on_the_screen_and_signs_them_in(db, settings) -> None:  # noqa: ANN001
    app = _app(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _form(pilot, "the first-manager form at first run")
        form = app.screen
        save = form.query_one("#form-save")
        assert save.region.bottom <= 24 and save.region.right <= 80  # fits 80x24
        await _type(pilot, "Pat Lee")
        await pilot.press("enter", *"123456", "enter", *"123456", "enter")
        await wait_until(pilot, lambda: "run of digits" in _form_error(app), "a trivial PIN refused")
        await pilot.press(*"480917", "enter", *"480971", "enter")
        await wait_until(pilot, lambda: "not the same" in _form_error(app), "two different PINs refused")
        assert app.screen is form and _operators(db) == []
        await pilot.press(*"480917", "enter", *"480917", "enter")
        await wait_until(pilot, lambda: app.actor.name == "Pat Lee" and not isinstance(app.screen, SignInScreen),
                         "the first manager signed in")
        assert app.actor.role == Role.MANAGER and app.actor.operator_id is not None
    assert _operators(db) == [("Pat Lee", "manager")]
    with db.read() as s:
        actions = [(a.action, a.actor) for a in s.exec(select(AuditLog).order_by(AuditLog.id))
                   if a.action.startswith("operator.")]
    assert actions[:2] == [("operator.created", "Pat Lee"), ("operator.sign_in", "Pat Lee")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_first_run_form_closes_with_esc_and_f2_brings_it_back(db, settings) -> None:  # noqa: ANN001
    app = _app(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _form(pilot, "the first-manager form")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "the pad")
        pad = app.screen
        await wait_until(pilot, lambda: "operators add NAME --role manager" in message(pad), "how to set up")
        await pilot.press("f2")
        await _form(pilot, "the form again")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_site_set_up_meanwhile_refuses_a_second_first_manager_and_the_pad_lists_it(db, settings) -> None:  # noqa: ANN001
    app = _app(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _form(pilot, "the first-manager form")
        # Meanwhile the site is set up from the command line.
        OperatorAdmin(db, "cli").add_first_manager("Robin Boss", "583920")
        await _type(pilot, "Eve Early")
        await pilot.press("enter", *"480917", "enter", *"480917", "enter")
        await wait_until(pilot, lambda: "already has operators" in _form_error(app), "refused")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen) and
                         [c.name for c in app.screen._choices] == ["Robin Boss"], "the pad lists the manager")
        assert app.screen.query_one("#signin-operators").option_count == 1
    assert _operators(db) == [("Robin Boss", "manager")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_site_set_up_from_the_cli_shows_up_on_the_pad(db, settings) -> None:  # noqa: ANN001
    app = _app(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await _form(pilot, "the first-manager form")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, SignInScreen), "the pad")
        result = CliRunner().invoke(cli, ["--db", settings.resolved_database_url(), "operators", "add", "Robin Boss",
                                          "--role", "manager", "--pin", "583920"])
        assert result.exit_code == 0, result.output
        await wait_until(pilot, lambda: [c.name for c in app.screen._choices] == ["Robin Boss"],  # type: ignore[attr-defined]
                         "the new manager on the pad (change feed)")
        await pilot.press(*"583920")
        await wait_until(pilot, lambda: app.actor.name == "Robin Boss", "signed in")
