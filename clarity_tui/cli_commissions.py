"""`clarity-tui commissions list|set|clear`: what operators earn per membership sold, migrated or upgraded.

A manager's rate (for one plan, or every plan) wins over the settings (`[wash.commissions]`); `clear`
hands the choice back to the settings. Changing a rate needs a manager: `--manager NAME` and their PIN
(`--manager-pin`, or CLARITY_MANAGER_PIN, or prompted), checked by the PIN pad's own check. Amounts are
dollars ("5", "5.00", "0" for none). Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

KINDS = ["sale", "migration", "upgrade"]
MAX_CENTS = 999_999  # $9,999.99


def _fail(message: object) -> NoReturn:
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


def dollars(text: str) -> int:
    """"5", "$5.5" or "0.00" as cents; exit 2 with one line for anything else."""
    from clarity_tui.services.membership_actions import cents_of_dollars

    cents = cents_of_dollars(text)
    if cents is None or cents > MAX_CENTS:
        _fail(f"{text!r} is not an amount: give dollars and cents, e.g. 5 or 5.00 (0 pays nothing).")
    return cents


def register(cli: click.Group) -> None:
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    def _refusals(fn: Any) -> Any:
        """Every refusal the services know (a bad kind or plan, a wrong PIN, no permission): one line, exit 2."""
        from functools import wraps

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from clarity_tui.errors import UserFacingError

            try:
                return fn(*args, **kwargs)
            except UserFacingError as exc:
                _fail(exc)

        return wrapper

    def _approve(settings: Any, db: Any, manager: str | None, manager_pin: str | None, action: str) -> Any:
        from clarity_tui.services.pin_check import LockoutPolicy, PinService

        if not manager:
            _fail("Changing a commission needs a manager: give --manager NAME (their PIN is prompted, or set "
                  "CLARITY_MANAGER_PIN).")
        terminal = settings.terminal_id or "cli"
        pins = PinService(db, terminal, policy=LockoutPolicy.from_settings(settings))
        manager_id = pins.manager_by_name(manager)
        if manager_pin is None:
            manager_pin = click.prompt("Manager PIN", hide_input=True)
        return pins.approve_manager(manager_id, manager_pin.strip(), action=action, entity="commission_rate")

    def _change(ctx: click.Context, manager: str | None, manager_pin: str | None, action: str, change: Any) -> Any:
        from clarity_tui.services.commissions import CommissionRates

        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            by = _approve(settings, db, manager, manager_pin, action)
            return change(CommissionRates(db, settings.wash.commissions), by)
        finally:
            db.dispose()

    manager_option = click.option("--manager", "manager", default=None,
                                  help="The approving manager's name (as on the PIN pad).")
    pin_option = click.option("--manager-pin", "manager_pin", default=None, envvar="CLARITY_MANAGER_PIN",
                              help="The manager's PIN (prompted, hidden; or CLARITY_MANAGER_PIN).")
    plan_option = click.option("--plan", "plan_code", default=None, help="One plan's code (default: every plan).")

    @cli.group("commissions")
    def commissions() -> None:
        """What operators earn per membership sold, migrated or upgraded: list, set, clear."""

    @commissions.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    @friendly_errors
    def commissions_list(ctx: click.Context, as_json: bool) -> None:
        """The rates in force: a manager's first (they win), then the settings'."""
        from clarity_tui.services.commissions import CommissionRates
        from clarity_tui.services.plan_pricing import money

        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            rates = CommissionRates(db, settings.wash.commissions).list()
        finally:
            db.dispose()
        if as_json:
            click.echo(json.dumps([{"kind": r.kind, "plan": r.plan_code, "amount_cents": r.amount_cents,
                                    "source": r.source, "set_by": r.set_by} for r in rates], indent=1))
            return
        days = settings.wash.commissions.clawback_days
        click.echo(f"A refund within {days} days of the sale takes the commission back.")
        for r in rates:
            by = f" (set by {r.set_by})" if r.set_by else ""
            click.echo(f"  {r.kind:<10} {r.plan_code or 'every plan':<12} {money(r.amount_cents):>9}  {r.source}{by}")

    @commissions.command("set")
    @click.argument("kind", type=click.Choice(KINDS, case_sensitive=False))
    @click.argument("amount")
    @plan_option
    @manager_option
    @pin_option
    @click.pass_context
    @friendly_errors
    @_refusals
    def commissions_set(ctx: click.Context, kind: str, amount: str, plan_code: str | None, manager: str | None,
                        manager_pin: str | None) -> None:
        """Set the commission for KIND (sale, migration, upgrade) to AMOUNT dollars, for --plan or every plan."""
        from clarity_tui.services.plan_pricing import money

        cents = dollars(amount)
        view = _change(ctx, manager, manager_pin, "commissions.set",
                       lambda rates, by: rates.set(kind, cents, plan_code, actor=by))
        click.echo(f"Commission per {view.kind} on {view.plan_code or 'every plan'}: {money(view.amount_cents)}.")

    @commissions.command("clear")
    @click.argument("kind", type=click.Choice(KINDS, case_sensitive=False))
    @plan_option
    @manager_option
    @pin_option
    @click.pass_context
    @friendly_errors
    @_refusals
    def commissions_clear(ctx: click.Context, kind: str, plan_code: str | None, manager: str | None,
                          manager_pin: str | None) -> None:
        """Remove a manager's rate for KIND (for --plan or every plan): the settings apply again."""
        cleared = _change(ctx, manager, manager_pin, "commissions.clear",
                          lambda rates, by: rates.clear(kind, plan_code, actor=by))
        where = plan_code.strip().upper() if plan_code else "every plan"
        click.echo(f"Cleared the manager's {kind} rate on {where}: the settings apply." if cleared
                   else f"No manager's {kind} rate on {where} was set: the settings already apply.")
