"""`clarity-tui menu list|set|retire|include` (issue 18 item 1), through click's CliRunner on the real root
command: the same parsing, PIN prompt and one-line errors as a manager gets. Every change needs a manager's
PIN; every refusal is one line on stderr with exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner, Result
from sqlmodel import col, select

from clarity_tui import cli_menu
from clarity_tui.cli import cli
from db.engine import Database
from db.models import AuditLog

pytestmark = pytest.mark.both_databases  # the menu every terminal sells from

MANAGER_PIN = "654321"  # the demo's Morgan Manager


@pytest.fixture(autouse=True)
def menu_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The `menu` group on the root command, as `clarity_tui.cli.COMMAND_MODULES` registers it."""
    cli.list_commands(click.Context(cli))  # the root registers its command modules first
    if "menu" not in cli.commands:
        probe = click.Group()
        cli_menu.register(probe)
        monkeypatch.setitem(cli.commands, "menu", probe.commands["menu"])
    yield


def run(db_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, "menu", *args], input=input)


def refused(result: Result, text: str) -> None:
    """Exit 2, one line on stderr that says `text`, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"Error: {text}", result.stderr
    assert "Traceback" not in result.output


def audits(db: Database, action: str) -> list[AuditLog]:
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))


def test_menu_list_shows_packages_then_extras_and_json(demo_db: Database, db_url: str) -> None:
    listed = run(db_url, "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["BASIC", "DELUXE", "ULTIMATE", "TIRE_SHINE", "CERAMIC", "UNDERBODY"]
    assert "$  20.00" in lines[2] and "plans FAMILY,ULTIMATE" in lines[2]
    as_json = json.loads(run(db_url, "list", "--json").stdout)
    assert as_json[3] == {"code": "TIRE_SHINE", "name": "Tire shine", "kind": "extra", "price_cents": 300,
                          "tunnel_code": 0, "active": True, "plans": ["DELUXE", "FAMILY", "ULTIMATE"]}


def test_a_manager_sets_retires_and_includes_items_with_their_pin(demo_db: Database, db_url: str) -> None:
    added = run(db_url, "set", "wax", "--name", "Hot wax", "--kind", "extra", "--price", "$4.50", "--tunnel-code", "5",
                "--plan", "ULTIMATE", "--manager", "morgan manager", input=f"{MANAGER_PIN}\n")
    assert added.exit_code == 0, added.output
    assert MANAGER_PIN not in added.output  # the PIN prompt is hidden
    assert "WAX" in added.stdout and "$   4.50" in added.stdout and "plans ULTIMATE" in added.stdout
    (approval,) = [a for a in audits(demo_db, "operator.approved") if (a.after or {}).get("for") == "menu.set"]
    assert approval.actor == "Morgan Manager"
    (item_set,) = audits(demo_db, "menu.item_set")
    assert item_set.actor == "Morgan Manager" and (item_set.after or {})["price_cents"] == 450

    included = run(db_url, "include", "WAX", "deluxe", "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN)
    assert included.stdout.strip() == "Hot wax (WAX) is included in: DELUXE, ULTIMATE."
    removed = run(db_url, "include", "WAX", "ULTIMATE", "--remove", "--manager", "Morgan Manager",
                  "--manager-pin", MANAGER_PIN)
    assert removed.stdout.strip() == "Hot wax (WAX) is included in: DELUXE."

    retired = run(db_url, "retire", "DELUXE", "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN)
    assert retired.stdout.strip() == "Retired Deluxe wash (DELUXE): it is no longer sold."
    assert "DELUXE " not in run(db_url, "list").stdout
    assert "(retired)" in run(db_url, "list", "--all").stdout


def test_every_refusal_is_one_line_and_exit_2(demo_db: Database, db_url: str) -> None:
    refused(run(db_url, "retire", "BASIC"), "Changing the wash menu needs a manager: give --manager NAME (their PIN "
                                            "is prompted, or set CLARITY_MANAGER_PIN).")
    refused(run(db_url, "retire", "BASIC", "--manager", "Alex Attendant", "--manager-pin", "123456"),
            "No active manager is named 'Alex Attendant': use the name shown on the PIN pad.")
    wrong = run(db_url, "retire", "BASIC", "--manager", "Morgan Manager", "--manager-pin", "000000")
    assert wrong.exit_code == 2 and len(wrong.stderr.strip().splitlines()) == 1
    refused(run(db_url, "retire", "GOLD", "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN),
            "There is no menu item GOLD: use one of BASIC, DELUXE, ULTIMATE, TIRE_SHINE, CERAMIC, UNDERBODY.")
    refused(run(db_url, "set", "WAX", "--name", "Hot wax", "--kind", "extra", "--price", "4.555",
                "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN),
            "'4.555' is not a price: give dollars and cents (at most 2 decimals, not negative), e.g. 15.00.")
    refused(run(db_url, "set", "WAX", "--name", "Hot wax", "--kind", "extra", "--price", "four",
                "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN),
            "'four' is not a price: give dollars and cents, e.g. 15.00.")
    refused(run(db_url, "set", "hot wax", "--name", "Hot wax", "--kind", "extra", "--price", "4",
                "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN),
            "'hot wax' is not a menu code: use up to 32 letters, digits, '-' or '_' (e.g. TIRE_SHINE).")
    refused(run(db_url, "include", "CERAMIC", "GOLD", "--manager", "Morgan Manager", "--manager-pin", MANAGER_PIN),
            "There is no plan GOLD: use one of the plan codes (BASIC, DELUXE, FAMILY, ULTIMATE).")
    assert audits(demo_db, "menu.item_set") == [] and audits(demo_db, "menu.item_retired") == []
