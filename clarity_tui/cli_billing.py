"""Billing lifecycle commands (issue 13): `payments status` and `payments sync`."""

from __future__ import annotations

import json
import sys
import time

import click


def register_billing(payments: click.Group) -> None:
    from clarity_tui.cli import friendly_errors

    @payments.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts and monitoring).")
    @click.pass_context
    @friendly_errors
    def payments_status(ctx: click.Context, as_json: bool) -> None:
        """The billing sync: the last event processed, the lag, and members by standing."""
        from clarity_tui.cli import _open_db, _settings
        from clarity_tui.services.billing_status import billing_status

        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            status = billing_status(db, settings)
        finally:
            db.dispose()
        if as_json:
            click.echo(json.dumps(status, indent=2))
            return
        last = status["last_event"]
        lag = status["sync_lag_seconds"]
        click.echo(f"Gateway: {status['gateway']}   last sync: "
                   + ("never" if lag is None else f"{lag:.0f} s ago") + (" (STALE)" if status["stale"] else ""))
        if status["last_error"]:
            click.echo(f"Last error: {status['last_error']}")
        click.echo("Last event: " + ("none" if last is None else f"{last['id']} {last['type']} ({last['outcome']})"))
        click.echo("Members: " + ", ".join(f"{k} {v}" for k, v in status["members"].items()))
        click.echo("Payments: " + ", ".join(f"{k} {v}" for k, v in status["payments"].items()))

    @payments.command("sync")
    @click.option("--once", is_flag=True, help="One pass, then exit (otherwise: every billing.sync_every_seconds).")
    @click.pass_context
    @friendly_errors
    def payments_sync(ctx: click.Context, once: bool) -> None:
        """Pull the gateway's events and reconcile memberships (one leader per site database)."""
        from clarity_tui.cli_payments import _gateway_and_db
        from clarity_tui.messaging import make_sms_provider
        from clarity_tui.services.billing_pass import run_billing_pass
        from clarity_tui.sitetime import site_date
        from db.models import utcnow

        settings, db, gateway = _gateway_and_db(ctx)
        messaging = make_sms_provider(settings)
        try:
            while True:
                result = run_billing_pass(db, gateway, settings, today=site_date(utcnow(), settings.site.zone),
                                          terminal=settings.terminal_id, messaging=messaging)
                report = result.sync
                if not report.leader:
                    click.echo("Another terminal is syncing this site's database: nothing to do here.")
                elif report.error:
                    click.echo(f"Error: the billing sync failed: {report.error}", err=True)
                    if once:
                        sys.exit(2)
                else:
                    events = ", ".join(f"{k} {v}" for k, v in sorted(report.events.items())) or "no new events"
                    extra = f"; reconciled {report.reconciled_due} due ({report.fallback})" if report.fallback else ""
                    click.echo(f"Synced: {events}{extra}; {len(result.date_changes)} date change(s)"
                               + (f"; {result.dunning.sent} text(s) sent" if result.dunning is not None else ""))
                if once:
                    return
                time.sleep(settings.billing.sync_every_seconds)
        except KeyboardInterrupt:
            return
        finally:
            db.dispose()
