"""Legacy POS commands: `legacy import`, `legacy export-migrated`, `legacy find`."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    @cli.group("legacy")
    def legacy() -> None:
        """Members of the old POS: import them, find them, export the migrated ones."""

    @legacy.command("import")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--mapping", "mapping_file", default=None,
                  help="Mapping TOML (column names, plan names, date order), or a built-in: generic, sitewatch.")
    @click.option("--dry-run", is_flag=True, help="Check and count everything; write nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary (and rejected rows) as JSON.")
    @click.pass_context
    @friendly_errors
    def legacy_import(ctx: click.Context, file: str, mapping_file: str | None, dry_run: bool, as_json: bool) -> None:
        """Import (or re-import) a legacy member export (CSV). Safe to run again: it resumes and updates.

        Rejected rows are listed with their line number and reason; the exit code is then 1 (a --dry-run
        only reports them: 0)."""
        from clarity_tui.services.actor import Actor
        from clarity_tui.services.legacy import LegacyImporter, LegacyImportError, load_mapping

        settings = _settings(ctx)
        try:
            mapping = load_mapping(mapping_file)
        except LegacyImportError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        db = _open_db(settings)
        try:
            importer = LegacyImporter(db, mapping, actor=Actor.system("legacy-import", settings.terminal_id),
                                      phone_region=settings.site.phone_region)
            result = importer.run(file, dry_run=dry_run)
        except LegacyImportError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        if as_json:
            click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        else:
            for r in result.rejected:
                click.echo(f"line {r.line}: {r.legacy_id or '(no id)'}: {r.reason}", err=True)
            prefix = "dry run: " if dry_run else ""
            click.echo(f"{prefix}{result.summary_line()} ({mapping.name}, source '{mapping.source_system}')")
        if result.rejected and not dry_run:
            sys.exit(1)

    @legacy.command("export-migrated")
    @click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Only members migrated on or after this date (YYYY-MM-DD).")
    @click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Write the CSV here (default: standard output).")
    @click.pass_context
    @friendly_errors
    def legacy_export(ctx: click.Context, since: dt.datetime | None, output: str | None) -> None:
        """Migrated legacy ids with their new billing dates (CSV): stop billing them in the old POS."""
        from clarity_tui.services.legacy import export_migrated, write_export_csv

        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            rows = export_migrated(db, since=since.date() if since else None)
        finally:
            db.dispose()
        if output:
            try:
                with open(output, "w", encoding="utf-8", newline="") as fh:
                    write_export_csv(rows, fh)
            except OSError as exc:
                click.echo(f"Error: cannot write {output} ({exc.strerror or exc}): choose another --output.", err=True)
                sys.exit(2)
            click.echo(f"{len(rows)} migrated member(s) written to {output}", err=True)
        else:
            write_export_csv(rows, sys.stdout)

    @legacy.command("find")
    @click.argument("text")
    @click.pass_context
    @friendly_errors
    def legacy_find(ctx: click.Context, text: str) -> None:
        """Find legacy members by plate (tolerates camera misreads) or phone, best match first, with their
        legacy status and last billing date (a cancelled or terminated member needs a manager to migrate)."""
        from clarity_tui.payments.simulated import SimulatedGateway
        from clarity_tui.services.actor import Actor
        from clarity_tui.services.migration import MigrationError, MigrationService

        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            service = MigrationService(db, SimulatedGateway(db), Actor.system("cli"),
                                       phone_region=settings.site.phone_region)
            found = service.search(text)
        except MigrationError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        if not found:
            click.echo(f"No legacy member matches '{text}'.")
            sys.exit(1)
        for c in found:
            state = "  MIGRATED" if c.migrated else ""
            click.echo(f"{c.score:.1f}  {c.legacy_id:<12} {c.label} · {c.standing}  ({c.match}){state}")
