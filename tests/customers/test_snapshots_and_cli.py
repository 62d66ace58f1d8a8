"""Snapshots of the search and record screens at 80x24, and the support CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from clarity_tui.cli import cli
from clarity_tui.config import Settings
from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.customer_search import CustomerSearchScreen
from tests.helpers.actors import ATTENDANT
from tests.helpers.customers import add_tricky
from tests.helpers.ui import make_app, wait_until


@pytest.fixture
def snap_db(sqlite_url: str):  # noqa: ANN201
    """Fixed demo data (seeded RNG) on SQLite: snapshots must not depend on the engine."""
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo

    database = open_database(Settings(database_url=sqlite_url, terminal_id="snap-term"))
    seed_demo(database, customers=40, legacy=20)
    add_tricky(database)
    yield database
    database.dispose()


def test_search_screen_snapshot(snap_compare, sqlite_url: str, snap_db) -> None:  # noqa: ANN001
    app = make_app(Settings(database_url=sqlite_url, terminal_id="snap-term"), snap_db, fixed_clock=True, actor=ATTENDANT)

    async def run_before(pilot) -> None:  # noqa: ANN001
        app.push_screen(CustomerSearchScreen())
        await pilot.pause()
        await pilot.press(*"o'b")
        await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.term == "o'b", "results")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_record_screen_snapshot(snap_compare, sqlite_url: str, snap_db) -> None:  # noqa: ANN001
    app = make_app(Settings(database_url=sqlite_url, terminal_id="snap-term"), snap_db, fixed_clock=True, actor=ATTENDANT)

    async def run_before(pilot) -> None:  # noqa: ANN001
        app.push_screen(CustomerRecordScreen(41))  # Seán O'Brien, +44 phone
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None
                         and len(app.screen.query("#prompt-grid Select")) == 2, "record and its question prompts")
        # The record focuses the first name on open; on a loaded machine that can land after the prompts.
        await wait_until(pilot, lambda: getattr(app.focused, "id", None) == "in-first_name", "the first name focused")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_cli_search_json_and_text(demo_db, db_url: str) -> None:  # noqa: ANN001
    add_tricky(demo_db)
    runner = CliRunner()
    result = runner.invoke(cli, ["customers", "search", "o'brien", "--json", "--db", db_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["query"] == "o'brien" and data["elapsed_ms"] >= 0
    sean = next(r for r in data["results"] if r["first_name"] == "Seán")
    assert sean["last_name"] == "O'Brien" and sean["plates"] == ["AB12 CDE"] and sean["matched"] == "name"
    assert {r["last_name"] for r in data["results"]} == {"O'Brien"}
    result = runner.invoke(cli, ["--db", db_url, "customers", "search", "+44", "20", "7946", "0958"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "O'Brien" in lines[0] and lines[-1].startswith("1 match in ") and lines[-1].endswith(" ms")


def test_cli_show_text_json_and_unknown(demo_db, db_url: str) -> None:  # noqa: ANN001
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", db_url, "customers", "show", "c100000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["customer_number"], data["name"]) == ("C100000", "Ivana Zoom")
    assert all(set(card) == {"brand", "last4", "default"} for card in data["cards"])
    result = runner.invoke(cli, ["--db", db_url, "customers", "show", "C100000"])
    assert result.exit_code == 0 and result.output.startswith("C100000  Ivana Zoom")
    result = runner.invoke(cli, ["--db", db_url, "customers", "show", "C999999"])
    assert result.exit_code == 1 and "no customer number 'C999999'" in result.output
