"""Type-ahead (issue 14, item 2): keys sent as one burst, as tmux or SSH deliver them, reach the widget
that would have had focus had they been typed slowly, and leave the same database state.

Each test drives two databases of the same kind (SQLite), seeded alike: one with the keys
pressed slowly (Pilot's `press`, which waits for the app after each key), one with the same keys handed
to the driver in one burst (tests/helpers/burst.py). The sale flow's bursts are in tests/sale/test_typeahead_sale.py.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from textual.widgets import Static

from clarity_tui.config import Settings
from clarity_tui.screens.customer_record import CustomerRecordScreen
from db.models import Customer
from tests.helpers.burst import burst, slow, text
from tests.helpers.db_state import db_state, diff
from tests.helpers.lanes import Legacy, seed_legacy
from tests.helpers.migration_ui import migration_app
from tests.helpers.ui import at, devices_ready, focus_bubble, make_app, wait_until

async def _press(pilot: Any, mode: str, keys: list[str]) -> None:
    if mode == "burst":
        burst(pilot, keys)
    else:
        await slow(pilot, keys)


async def _board(pilot: Any) -> None:
    from clarity_tui.screens.board import BoardScreen

    await wait_until(pilot, lambda: isinstance(pilot.app.screen, BoardScreen) and pilot.app.screen.is_mounted, "the board")
    await pilot.pause()


def _saved(app: Any) -> bool:
    """The record is on screen with its customer, and no save is running or refused."""
    screen = app.screen
    if not isinstance(screen, CustomerRecordScreen) or screen.customer_id is None:
        return False
    errors = screen.query("#general-error")
    return bool(errors) and str(errors.first(Static).render()) == "" \
        and not any(w.group == "record-save" and not w.is_finished for w in app.workers)


# --- the record's General form: a new customer, Enter and Tab between the fields --------------------

NEW_CUSTOMER = ["f7", "ctrl+n", *text("Mara"), "enter", *text("Quill"), "tab", *text("5125550199"), "enter",
                *text("mara.quill@example.com"), "f2"]


async def _new_customer(settings: Settings, db: Any, mode: str) -> int:
    app = make_app(settings, db, fixed_clock=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot)
        await _press(pilot, mode, NEW_CUSTOMER)
        await wait_until(pilot, lambda: _saved(app), f"the new customer saved ({mode})", 20)
        return app.typeahead.buffered_total


async def test_record_general_form_burst(settings: Settings, demo_db, twin_settings: Settings, twin_demo_db) -> None:  # noqa: ANN001
    held = await _new_customer(settings, demo_db, "burst")
    await _new_customer(twin_settings, twin_demo_db, "slow")
    assert held > 0
    with demo_db.read() as s:
        c = s.exec(select(Customer).where(Customer.last_name == "Quill")).one()
        assert (c.first_name, c.phone_e164, c.email) == ("Mara", "+15125550199", "mara.quill@example.com")
    burst_state, slow_state = db_state(demo_db), db_state(twin_demo_db)
    assert burst_state == slow_state, diff(burst_state, slow_state)


# --- a search typed right after F7, Enter on it, then an edit in the record it opens -------------------

SEARCH_AND_EDIT = ["f7", *text("Zoom"), "enter", "end", *text("-Marie"), "f2"]


async def _search_and_edit(settings: Settings, db: Any, mode: str) -> int:
    app = make_app(settings, db, fixed_clock=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _board(pilot)
        await _press(pilot, mode, SEARCH_AND_EDIT)

        def edited() -> bool:
            with db.read() as s:
                return s.exec(select(Customer).where(Customer.customer_number == "C100000")).one().first_name \
                    == "Ivana-Marie"

        await wait_until(pilot, lambda: _saved(app) and edited(), f"Ivana's record edited ({mode})", 20)
        return app.typeahead.buffered_total


async def test_search_typed_right_after_f7(settings: Settings, demo_db, twin_settings: Settings, twin_demo_db) -> None:  # noqa: ANN001
    held = await _search_and_edit(settings, demo_db, "burst")
    await _search_and_edit(twin_settings, twin_demo_db, "slow")
    assert held > 0
    burst_state, slow_state = db_state(demo_db), db_state(twin_demo_db)
    assert burst_state == slow_state, diff(burst_state, slow_state)


# --- the migration's contact step, right after That's Me -----------------------------------------------

MIGRATE = ["enter", "f3", "f5", *text("jane.doe@example.com"), "enter"]


async def _migrate_contact(settings: Settings, legacy: Legacy, mode: str) -> int:
    app = migration_app(settings, legacy.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await focus_bubble(pilot, legacy.jane_session)
        await _press(pilot, mode, MIGRATE)
        await at(pilot, "migration-card", f"the card step after the contact ({mode})")
        return app.typeahead.buffered_total


async def test_migration_contact_burst(settings: Settings, legacy: Legacy, twin_settings: Settings,
                                      twin_demo_db) -> None:  # noqa: ANN001
    twin = seed_legacy(twin_demo_db)
    held = await _migrate_contact(settings, legacy, "burst")
    await _migrate_contact(twin_settings, twin, "slow")
    assert held > 0
    with legacy.db.read() as s:
        c = s.exec(select(Customer).where(Customer.email == "jane.doe@example.com")).one()
        assert (c.first_name, c.last_name) == ("Jane", "Doe")
    burst_state, slow_state = db_state(legacy.db), db_state(twin_demo_db)
    assert burst_state == slow_state, diff(burst_state, slow_state)

