"""Fields in 16 colours (issue 14): under TEXTUAL_COLOR_SYSTEM=standard, and TERM=linux, every field has a
visible edge and the focused one stands out (app.tcss): a filled field, whatever its height or border.
Snapshots of two forms at 80x24 (compact fields in a grid; one-line fields of the walk-up form), and
the styles themselves: the fill is not the screen's, and focus changes it.

Update after an intended visual change with: ./dev test tests/site/test_sixteen_colours.py --snapshot-update
"""

from __future__ import annotations

import pytest
from sqlmodel import select
from textual.color import Color
from textual.widgets import Input

from clarity_tui.screens.customer_record import CustomerRecordScreen
from db.models import Customer
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, make_app, wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'site.db'}"


@pytest.fixture
def sixteen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")


@pytest.fixture
def linux_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "linux")


def _ivana_id(db) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Customer.id).where(Customer.customer_number == "C100000")).one()


def _record_app(settings, db):  # noqa: ANN001, ANN202
    return make_app(settings, db, fixed_clock=True)


def _open_record(customer_id: int):  # noqa: ANN202
    async def run(pilot) -> None:  # noqa: ANN001
        app = pilot.app
        app.push_screen(CustomerRecordScreen(customer_id))
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None
                         and app.focused is app.screen.query_one("#in-first_name"), "the record, first name focused")
        await pilot.pause()
    return run


async def _walk_up_form(pilot) -> None:  # noqa: ANN001
    app = pilot.app
    await devices_ready(pilot)
    await open_session(pilot, Keys(pilot), app._test_session)  # noqa: SLF001
    await pilot.press("f2")
    await at(pilot, "plan-select")
    await pilot.press("1")
    await at(pilot, "customer-quick")
    await pilot.press(*"Dana")
    await wait_until(pilot, lambda: app.screen.query_one("#f-first_name", Input).value == "Dana", "typed")
    await pilot.pause()


def test_record_form_sixteen_colours(demo_db, settings, snap_compare, sixteen) -> None:  # noqa: ANN001
    assert snap_compare(_record_app(settings, demo_db), terminal_size=(80, 24), run_before=_open_record(_ivana_id(demo_db)))


def test_record_form_linux_console(demo_db, settings, snap_compare, sixteen, linux_console) -> None:  # noqa: ANN001
    assert snap_compare(_record_app(settings, demo_db), terminal_size=(80, 24), run_before=_open_record(_ivana_id(demo_db)))


def test_walk_up_form_sixteen_colours(lanes: Lanes, settings, snap_compare, sixteen) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    app._test_session = lanes.unknown  # type: ignore[attr-defined]  # noqa: SLF001
    assert snap_compare(app, terminal_size=(80, 24), run_before=_walk_up_form)


def _edge(widget) -> Color:  # noqa: ANN001
    """What marks a field's edge in 16 colours: its fill (a border may be none, or one row high)."""
    return widget.styles.background


async def test_every_field_has_an_edge_and_focus_changes_it(demo_db, settings, sixteen) -> None:  # noqa: ANN001
    app = _record_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_record(_ivana_id(demo_db))(pilot)
        assert app.theme == "ansi-dark"
        screen = app.screen
        first, last = screen.query_one("#in-first_name", Input), screen.query_one("#in-last_name", Input)
        black = Color.parse("ansi_black")
        default = Color.parse("ansi_default")
        blurred, focused = _edge(last), _edge(first)
        assert blurred not in (black, default) and focused not in (black, default), (blurred, focused)
        assert blurred != focused
        await pilot.press("tab")
        await wait_until(pilot, lambda: app.focused is not first, "focus moved on")
        assert _edge(first) == blurred


async def test_a_one_line_field_has_an_edge_and_focus_changes_it(lanes: Lanes, settings, sixteen) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    app._test_session = lanes.unknown  # type: ignore[attr-defined]  # noqa: SLF001
    async with app.run_test(size=(80, 24)) as pilot:
        await _walk_up_form(pilot)
        screen = app.screen
        first, last = screen.query_one("#f-first_name", Input), screen.query_one("#f-last_name", Input)
        assert app.focused is first
        black, default = Color.parse("ansi_black"), Color.parse("ansi_default")
        assert _edge(last) not in (black, default) and _edge(first) not in (black, default)
        assert _edge(first) != _edge(last)
