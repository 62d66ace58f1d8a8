"""`payments clock advance DAYS`: the simulated gateway's billing clock (issue 13), like a Stripe test clock.

Moves the simulated gateway's time forward and runs what the billing engine would have run meanwhile
(renewals, failed renewals and their retries, cancellations, pause ends; see payments/sim_clock.py). The
share of renewals whose card fails is `billing.simulated_failure_rate` (settings TOML, or
CLARITY_BILLING__SIMULATED_FAILURE_RATE). Only the simulated gateway has this clock: with Stripe, use a
test clock in the Stripe Dashboard.
"""

from __future__ import annotations

import json
import math
import sys
from typing import NoReturn

import click

MAX_DAYS = 3660.0  # ten years in one go is plenty; more is a typo


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def register_clock(payments_group: click.Group) -> None:
    """Add `clock advance` under the `payments` group."""
    from clarity_tui.cli import friendly_errors

    @payments_group.group("clock")
    def clock() -> None:
        """The simulated gateway's billing clock (like Stripe's test clocks)."""

    # A negative number ("-3") reaches the check below (one clear line) instead of "no such option".
    @clock.command("advance", context_settings={"ignore_unknown_options": True})
    @click.argument("days", type=str)
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option("--seed", type=int, default=None,
                  help="Seed for which renewals fail (the same seed and subscriptions fail the same way).")
    @click.pass_context
    @friendly_errors
    def clock_advance(ctx: click.Context, days: str, as_json: bool, seed: int | None) -> None:
        """Move the simulated billing clock DAYS forward (e.g. 31, or 0.5): renewals, retries, cancellations."""
        from clarity_tui.cli import _settings

        try:
            value = float(days)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not 0 < value <= MAX_DAYS:
            _fail(f"DAYS must be a number of days above 0 and at most {MAX_DAYS:g}, such as 31 (got {days!r}).")
        settings = _settings(ctx)
        if settings.payments.gateway != "simulated":
            _fail(f"The billing clock belongs to the simulated gateway; this site uses the {settings.payments.gateway} "
                  "gateway (use a test clock in the Stripe Dashboard instead).")
        from clarity_tui.cli_payments import _gateway_and_db
        from clarity_tui.payments.errors import PaymentError
        from clarity_tui.payments.simulated import SimulatedGateway

        settings, db, gateway = _gateway_and_db(ctx)
        try:
            if not isinstance(gateway, SimulatedGateway):
                _fail(f"The {gateway.name} payment gateway has no billing clock.")
            report = gateway.advance_clock(value, failure_rate=settings.billing.simulated_failure_rate, seed=seed)
        except PaymentError as exc:
            _fail(str(exc))
        finally:
            db.dispose()
        counts = {k: getattr(report, k) for k in ("renewals", "failures", "retries", "recovered", "cancelled",
                                                   "expired", "resumed", "events")}
        if as_json:
            click.echo(json.dumps({"now": report.now.isoformat(), "days": value,
                                   "failure_rate": settings.billing.simulated_failure_rate, **counts}))
            return
        click.echo(f"Billing clock advanced {value:g} day(s); the simulated date is now "
                   f"{report.now:%Y-%m-%d %H:%M} UTC.")
        click.echo(f"Renewals {report.renewals} (failed {report.failures}), retries {report.retries} "
                   f"(recovered {report.recovered}), cancelled {report.cancelled}, expired {report.expired}, "
                   f"resumed {report.resumed}; {report.events} event(s).")
