"""Pilot steps on the customer record screen: open a record, move between tabs, read a table."""

from __future__ import annotations

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, TabbedContent

from clarity_tui.screens.customer_record import CustomerRecordScreen
from tests.helpers.ui import wait_until


def record_screen(app: App) -> CustomerRecordScreen:
    assert isinstance(app.screen, CustomerRecordScreen), app.screen
    return app.screen


async def open_record(pilot: Pilot, customer_id: int) -> CustomerRecordScreen:
    pilot.app.push_screen(CustomerRecordScreen(customer_id))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CustomerRecordScreen) and pilot.app.screen.record is not None,
                     "record loaded")
    return record_screen(pilot.app)


async def to_tab(pilot: Pilot, tab: str) -> None:
    screen = record_screen(pilot.app)
    for _ in range(8):
        if screen.query_one(TabbedContent).active == tab:
            return
        await pilot.press("f6")
        await pilot.pause()
    raise AssertionError(f"never reached {tab}")


def rows(screen: Screen, table_id: str) -> list[list[str]]:
    table = screen.query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
