"""`clarity-tui commissions list|set|clear` (issue 18 item 6), on SQLite and PostgreSQL: a manager's rates,
approved with their PIN, audited; every refusal one line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from sqlmodel import col, select

from clarity_tui import cli_commissions
from clarity_tui.cli import cli
from db.engine import Database
from db.models import AuditLog, CommissionRate

pytestmark = pytest.mark.both_databases  # the rates' partial unique index differs between the two

MORGAN_PIN = "654321"  # the demo seed's manager (clarity_tui/seeding/demo.py)


@pytest.fixture(autouse=True)
def _commands_registered() -> None:
    """The group as `clarity-tui` has it once cli.py lists the module (COMMAND_MODULES)."""
    if "commissions" not in cli.list_commands(click_context()):
        cli_commissions.register(cli)


def click_context():  # click's own Context
    import click

    return click.Context(cli)


def run(db_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, "commissions", *args], input=input)


def refused(result: Result, text: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.output


def rates(db: Database) -> list[tuple[str, int | None, int, str | None]]:
    with db.read() as s:
        return [(r.kind, r.plan_id, r.amount_cents, r.set_by) for r in s.exec(select(CommissionRate)
                                                                              .order_by(col(CommissionRate.id)))]


def test_list_shows_the_settings_then_a_managers_rate_wins(demo_db: Database, db_url: str) -> None:
    listed = run(db_url, "list")
    assert listed.exit_code == 0, listed.output
    assert "A refund within 30 days of the sale takes the commission back." in listed.stdout
    shown = [" ".join(line.split()) for line in listed.stdout.splitlines()]
    assert "sale every plan $5.00 settings" in shown and "upgrade every plan $0.00 settings" in shown

    done = run(db_url, "set", "sale", "7.50", "--plan", "deluxe", "--manager", "Morgan Manager",
               "--manager-pin", MORGAN_PIN)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "Commission per sale on DELUXE: $7.50."
    assert [(k, amount, by) for k, _, amount, by in rates(demo_db)] == [("sale", 750, "Morgan Manager")]
    as_json = json.loads(run(db_url, "list", "--json").stdout)
    assert {"kind": "sale", "plan": "DELUXE", "amount_cents": 750, "source": "manager",
            "set_by": "Morgan Manager"} in as_json
    with demo_db.read() as s:
        trail = s.exec(select(AuditLog).where(AuditLog.action == "commission_rate.set")).one()
    assert trail.actor == "Morgan Manager" and trail.after == {"kind": "sale", "plan": "DELUXE", "amount_cents": 750}

    # The PIN can be prompted (hidden); "0" means the site pays nothing for migrations.
    zero = run(db_url, "set", "migration", "0", "--manager", "morgan manager", input=f"{MORGAN_PIN}\n")
    assert zero.exit_code == 0 and MORGAN_PIN not in zero.output
    assert ("migration", None, 0, "Morgan Manager") in rates(demo_db)

    cleared = run(db_url, "clear", "sale", "--plan", "DELUXE", "--manager", "Morgan Manager",
                  "--manager-pin", MORGAN_PIN)
    assert cleared.exit_code == 0 and "the settings apply" in cleared.stdout
    again = run(db_url, "clear", "sale", "--plan", "DELUXE", "--manager", "Morgan Manager",
                "--manager-pin", MORGAN_PIN)
    assert again.exit_code == 0 and "already apply" in again.stdout
    assert [k for k, *_ in rates(demo_db)] == ["migration"]


def test_every_refusal_is_one_line_and_changes_nothing(demo_db: Database, db_url: str) -> None:
    approve = ["--manager", "Morgan Manager", "--manager-pin", MORGAN_PIN]
    refused(run(db_url, "set", "sale", "5"), "needs a manager: give --manager NAME")
    refused(run(db_url, "set", "sale", "5", "--manager", "Morgan Manager", "--manager-pin", "000000"), "PIN")
    refused(run(db_url, "set", "sale", "5", "--manager", "Alex Attendant", "--manager-pin", "123456"),
            "No active manager is named 'Alex Attendant'")
    refused(run(db_url, "set", "sale", "five", *approve), "'five' is not an amount: give dollars and cents")
    refused(run(db_url, "set", *approve, "--", "sale", "-5"), "'-5' is not an amount")
    refused(run(db_url, "set", "sale", "2000", *approve), "from 0 to 100000 cents ($1,000.00)")
    refused(run(db_url, "set", "sale", "5", "--plan", "gold", *approve), "There is no plan 'GOLD': choose one of")
    refused(run(db_url, "set", "bonus", "5", *approve), "bonus")
    assert rates(demo_db) == []
    with demo_db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.entity == "commission_rate",
                                             AuditLog.action.startswith("commission_rate."))).first() is None
