"""`clarity-tui support | audit | report`: remote support over SSH, the audit trail, the end-of-shift report."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click


def ssh_identity(env: dict[str, str] | None = None) -> tuple[str, str]:
    """(user, terminal label) for a support session: the SSH user and the client's address.

    Outside SSH (a technician trying it locally) the OS user is recorded, at terminal 'support:local'."""
    env = dict(os.environ if env is None else env)
    user = env.get("USER") or env.get("LOGNAME")
    if not user:
        import getpass

        user = getpass.getuser()
    connection = env.get("SSH_CONNECTION", "").split()
    terminal = f"ssh:{connection[0]}" if connection else "support:local"
    return user, terminal


def shell_actor(terminal: str | None) -> Any:
    """Who runs `audit` and `report` on this machine: the OS user, as the site's owner (a manager's
    reading rights). Whoever can run the CLI here can read the database itself (the SQLite file, or
    the URL in the settings), so a PIN on a read would only pretend; remote support never gets this
    far (its sshd ForceCommand runs `clarity-tui support`, where the support role is checked)."""
    from clarity_tui.services.actor import Actor
    from db.models import Role

    user, _ = ssh_identity()
    return Actor(f"{user} (shell)", Role.MANAGER, terminal)


def register(cli: click.Group) -> None:
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    @cli.command("support")
    @click.pass_context
    @friendly_errors
    def support(ctx: click.Context) -> None:
        """Remote support (the sshd ForceCommand): the live board and customer tools under the support role.

        No PIN: the SSH user is the actor on every audit row."""
        import dataclasses

        from clarity_tui.bootconfig import resolve_boot_config
        from db.rawconnect import schema_at_head

        obj = ctx.find_root().obj or {}
        user, terminal = ssh_identity()
        boot = resolve_boot_config(obj.get("config"), obj.get("db"), obj.get("simulate") or None)
        boot = dataclasses.replace(boot, terminal_id=terminal)
        if not schema_at_head(boot.database_url):
            # Support never migrates a site's database: that is done on site (`clarity-tui db upgrade`).
            click.echo("Error: the site's database is not ready (missing or not upgraded): ask the site to run "
                       "`clarity-tui db upgrade`, then connect again.", err=True)
            sys.exit(2)
        from clarity_tui.app import ClarityApp

        app = ClarityApp(boot=boot, support_user=user)
        app.run()
        if app.boot_error:
            click.echo(f"Error: {app.boot_error}", err=True)
        if app.return_code:
            sys.exit(app.return_code)

    @cli.command("audit")
    @click.option("--since", help="From this time: 30m, 2h, 7d, 2026-11-22 or an ISO time (UTC).")
    @click.option("--until", help="Up to this time (same forms as --since).")
    @click.option("--actor", default="", help="Actor name contains this.")
    @click.option("--action", default="", help="Action contains this (e.g. operator., order.payment_failed).")
    @click.option("--entity", default="", help="Entity contains this (customer, sales_order, operator_shift…).")
    @click.option("--terminal", default="", help="Terminal contains this.")
    @click.option("--limit", type=click.IntRange(1, 100000), default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON array, with before and after.")
    @click.pass_context
    @friendly_errors
    def audit(ctx: click.Context, since: str | None, until: str | None, actor: str, action: str, entity: str,
              terminal: str, limit: int, as_json: bool) -> None:
        """Print the audit trail, newest first: who did what, where and when."""
        from clarity_tui.services.audit_query import AuditFilter, AuditQueryError, parse_since, query

        try:
            f = AuditFilter(actor=actor, action=action, entity=entity, terminal=terminal,
                            since=parse_since(since) if since else None,
                            until=parse_since(until) if until else None, limit=limit)
        except AuditQueryError as exc:
            raise click.BadParameter(str(exc)) from None
        settings = _settings(ctx)
        database = _open_db(settings)
        try:
            entries = query(database, f, actor=shell_actor(settings.terminal_id))
        finally:
            database.dispose()
        if as_json:
            # ensure_ascii: every control or format character an entry holds is a \uNNNN escape, never raw.
            click.echo(json.dumps([e.as_json() for e in entries], indent=1, ensure_ascii=True))
            return
        if not entries:
            click.echo("no audit rows match")
            return
        from clarity_tui.services.text_safe import printable

        for e in entries:  # names, plates and values came from people and files: never raw to the terminal
            what = f"{e.entity}#{e.entity_id}" if e.entity_id else e.entity
            line = (f"{e.at:%Y-%m-%d %H:%M:%S}  {e.actor} @ {e.terminal or '-'}  {e.action}  {what}  "
                    f"{e.change_summary(80)}")
            click.echo(printable(line, None))

    @cli.command("report")
    @click.option("--shift", "shift_id", type=int, help="One shift (its id: see `clarity-tui audit --action operator.sign_in`).")
    @click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="One day of the site (site.timezone), every terminal; default today.")
    @click.option("--csv", "csv_file", type=click.Path(dir_okay=False, allow_dash=True), help="Also write the CSV here ('-' = stdout only).")
    @click.option("--json", "as_json", is_flag=True,
                  help="The day's lane figures as one JSON object: washes, visits, conversion, renewals, churn, commissions.")
    @click.pass_context
    @friendly_errors
    def report(ctx: click.Context, shift_id: int | None, day: Any, csv_file: str | None, as_json: bool) -> None:
        """End-of-shift report: memberships sold and migrated, promotions, declines, pending syncs."""
        import datetime as dt

        from clarity_tui.services.reports import ReportError, day_report, render_text, shift_report

        if shift_id is not None and day is not None:
            raise click.UsageError("Choose --shift or --date, not both.")
        if as_json and (shift_id is not None or csv_file):
            raise click.UsageError("--json prints a whole day's figures: use it with --date (or alone for today), "
                                   "without --shift or --csv.")
        from clarity_tui.sitetime import site_date

        settings = _settings(ctx)
        zone = settings.site.zone
        database = _open_db(settings)
        try:
            actor = shell_actor(settings.terminal_id)
            if as_json:
                from clarity_tui.services.lane_metrics import figures_for

                today = day.date() if day else site_date(dt.datetime.now(dt.UTC), zone)
                figures = figures_for(database, today, zone, actor=actor, days=1)[0]
                click.echo(json.dumps(figures.as_json(), indent=1, ensure_ascii=True))
                return
            if shift_id is not None:
                result = shift_report(database, shift_id, actor=actor)
            else:
                result = day_report(database, day.date() if day else site_date(dt.datetime.now(dt.UTC), zone), zone,
                                    actor=actor)
        except ReportError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            database.dispose()
        if csv_file == "-":
            click.echo(result.to_csv(), nl=False)
            return
        click.echo(render_text(result))
        if csv_file:
            with open(csv_file, "w", encoding="utf-8", newline="") as fh:
                fh.write(result.to_csv())
            click.echo(f"\nCSV written to {csv_file}")
