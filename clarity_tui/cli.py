"""`clarity-tui`: the command line. Thin: heavy imports happen inside commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

import click

from clarity_tui import __version__


def known_problem(exc: BaseException) -> str | None:
    """The one-line message for a known problem (bad settings or scenario; a database that is
    unreachable, damaged, another program's, full...), or None for anything else (a bug: let it show).

    The one place the CLI turns exceptions into one-line errors: friendly_errors (per command) and
    OneLineErrors (every command, and the app's exit) both use it; db.errors.as_problem does the databases."""
    from clarity_tui.config import ConfigError
    from clarity_tui.simulator.scenario import ScenarioError
    from db.errors import as_problem

    if isinstance(exc, (ConfigError, ScenarioError)):
        return str(exc)
    problem = as_problem(exc)
    return str(problem) if problem is not None else None


def _fail_one_line(message: str) -> NoReturn:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(2)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known problems become one line on stderr and exit code 2: never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            message = known_problem(exc)
            if message is None:
                raise
            _fail_one_line(message)

    return wrapper


def _settings(ctx: click.Context, **overrides: Any):
    from clarity_tui.config import load_settings

    obj = ctx.find_root().obj or {}
    values = {"database_url": obj.get("db"), "simulate": obj.get("simulate") or None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(obj.get("config"), **values)


def _open_db(settings):
    from clarity_tui.services.bootstrap import open_database

    return open_database(settings)


class OneLineErrors(click.Group):
    """A mistyped command or value is one line on stderr and exit code 2, like every other refusal
    (click's default prints the usage block first)."""

    _modules_registered = False

    def _register_command_modules(self) -> None:
        if not OneLineErrors._modules_registered:
            import importlib

            for name in COMMAND_MODULES:
                importlib.import_module(name).register(self)
            OneLineErrors._modules_registered = True  # only once all registered: a failed import is retried

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._register_command_modules()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._register_command_modules()
        return super().list_commands(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Abort:  # Ctrl+C at a prompt, or a prompt whose input ended (a script)
            click.echo("Error: aborted, nothing was changed (a prompt got no answer).", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:
            # Commands without @friendly_errors, and errors raised outside them: the same one line.
            message = known_problem(exc)
            if message is None:
                raise
            _fail_one_line(message)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=OneLineErrors, invoke_without_command=True)
@click.option("--db", "db_url", envvar="CLARITY_DATABASE_URL", help="Database URL (sqlite:///path or postgresql://...).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="CLARITY_CONFIG", help="Settings TOML file.")
@click.option("--simulate", is_flag=True, help="Simulator mode: demo database, simulated devices and gateway.")
@click.option("--scenario", type=click.Path(dir_okay=False), help="Scenario TOML for simulator mode.")
@click.version_option(__version__, prog_name="clarity-tui")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, config_file: str | None, simulate: bool, scenario: str | None) -> None:
    """Clarity TUI: the lane point-of-sale kiosk. With no command, opens the lanes board."""
    ctx.obj = {"db": db_url, "config": config_file, "simulate": simulate or scenario is not None}
    if ctx.invoked_subcommand is None:
        ctx.invoke(run_app, scenario=scenario)


def _skip_final_collection() -> None:
    """At the interpreter's exit, freeze the heap first: its last collections would walk every object the
    app ever loaded (~250 ms once booted, issue 17) only to free memory the process is returning anyway.
    Files, the database and the logs are closed explicitly before (run_app, the app's unmount, logging)."""
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however many apps this process runs (tests)
    atexit.register(gc.freeze)


@friendly_errors
def run_app(scenario: str | None = None) -> None:
    ctx = click.get_current_context()
    obj = ctx.find_root().obj or {}
    from clarity_tui.bootconfig import resolve_boot_config
    from db.rawconnect import schema_at_head

    boot = resolve_boot_config(obj.get("config"), obj.get("db"), obj.get("simulate") or None)
    if scenario is None and schema_at_head(boot.database_url):
        # Fast path: paint the board first, load settings/ORM/devices right after (clarity_tui/boot.py).
        from clarity_tui.app import ClarityApp

        # Operators sign in with a PIN (issue 8); the pad appears over the first board.
        app = ClarityApp(boot=boot, require_signin=True)
    else:
        # First run (schema to create or upgrade) or a scenario file: load everything up front,
        # so problems are reported before the screen opens.
        settings = _settings(ctx)
        from clarity_tui.simulator.scenario import load_scenario

        loaded = load_scenario(scenario) if settings.simulate else None
        db = _open_db(settings)
        if settings.simulate:
            from clarity_tui.seeding.demo import seed_demo
            from clarity_tui.simulator.scenario import Scenario

            seed_demo(db, gateway=settings.payments.gateway == "simulated")
            loaded = loaded or Scenario.demo()
        from clarity_tui.app import ClarityApp

        app = ClarityApp(settings=settings, db=db, scenario=loaded, require_signin=settings.ui.require_signin)
    _skip_final_collection()
    app.run()
    if app.services is not None:
        app.services.db.dispose()  # closed now (SQLite checkpoints its WAL), not left to the exit's collector
    if app.boot_error:
        click.echo(f"Error: {app.boot_error}", err=True)
    if app.return_code:
        sys.exit(app.return_code)


@cli.command()
@click.option("--scenario", type=click.Path(dir_okay=False),
              help="Scenario TOML (arrivals, mix, the lane day), or a shipped one by name: busy_day, rush_hour.")
@click.option("--headless", is_flag=True, help="No screen: run the lane's day, then print its figures as JSON.")
@click.option("--duration", type=float, default=None, help="With --headless: stop after this many seconds.")
@click.pass_context
@friendly_errors
def simulate(ctx: click.Context, scenario: str | None, headless: bool, duration: float | None) -> None:
    """Run the site in simulator mode (vehicles arrive at the lanes).

    Headless, the lane's whole day runs (clarity_tui/simulator/headless.py): members' visits, single washes,
    "Join today", the tunnel and the billing clock; at the end its figures are printed as JSON (the shape of
    `report --json`, over the days the billing clock covered)."""
    ctx.find_root().obj["simulate"] = True
    if not headless:
        run_app(scenario=scenario)
        return
    import asyncio
    import json

    from clarity_tui.seeding.demo import seed_demo
    from clarity_tui.simulator.headless import run_headless
    from clarity_tui.simulator.scenario import load_scenario
    from clarity_tui.wiring import Services

    settings = _settings(ctx)
    loaded = load_scenario(scenario)
    db = _open_db(settings)
    seed_demo(db, gateway=settings.payments.gateway == "simulated")
    try:
        day = asyncio.run(run_headless(Services(settings, db), loaded, duration))
    except KeyboardInterrupt:
        click.echo(f"simulated site at {settings.resolved_database_url()}", err=True)
        return
    finally:
        db.dispose()
    click.echo(json.dumps(day.figures, indent=2))
    click.echo(f"simulated site at {settings.resolved_database_url()}; the lane day: "
               + ", ".join(f"{k} {v}" for k, v in sorted(day.tally.items())), err=True)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
@friendly_errors
def db_upgrade(ctx: click.Context) -> None:
    """Upgrade the schema to the newest migration."""
    from db import migrate
    from db.engine import make_engine

    settings = _settings(ctx)
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate.upgrade(engine)
        click.echo(f"schema at {migrate.current_revision(engine)} (head {migrate.head_revision()})")
    finally:
        engine.dispose()


@db.command("current")
@click.pass_context
@friendly_errors
def db_current(ctx: click.Context) -> None:
    """Show the schema revision of the database."""
    from db import migrate
    from db.engine import make_engine

    settings = _settings(ctx)
    engine = make_engine(settings.resolved_database_url())
    try:
        click.echo(f"{migrate.check_revision(engine) or 'empty'} (head {migrate.head_revision()})")
    finally:
        engine.dispose()


@cli.group()
def demo() -> None:
    """Demo and benchmark data."""


@demo.command("seed")
@click.option("--customers", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--legacy", type=click.IntRange(min=0), default=None, help="Legacy members (default: customers / 2 for small seeds).")
@click.option("--db", "db_url", help="Database URL (overrides the global --db).")
@click.pass_context
@friendly_errors
def demo_seed(ctx: click.Context, customers: int, legacy: int | None, db_url: str | None) -> None:
    """Create demo data. Small counts make the demo site; large ones use the bulk loader."""
    import time

    settings = _settings(ctx, database_url=db_url)
    database = _open_db(settings)
    started = time.perf_counter()
    try:
        if customers <= 5000:
            from clarity_tui.seeding.demo import seed_demo

            # With the simulated gateway the members are real subscriptions there, so `payments clock
            # advance` renews them.
            summary = seed_demo(database, customers=customers, legacy=legacy if legacy is not None else customers // 2,
                                gateway=settings.payments.gateway == "simulated")
            click.echo(f"demo data: {summary.customers} customers, {summary.legacy_members} legacy members"
                       f"{'' if summary.created else ' (already there)'}")
        else:
            from clarity_tui.seeding.bulk import bulk_seed

            result = bulk_seed(database, customers=customers, legacy=legacy if legacy is not None else 0)
            click.echo(f"bulk data: {result.customers} customers, {result.vehicles} vehicles, "
                       f"{result.memberships} memberships, {result.legacy} legacy members")
    finally:
        database.dispose()
    click.echo(f"took {time.perf_counter() - started:.1f} s")


# Command groups that live in their own modules (each exposes register(cli)): imported when a command is
# looked up or listed (OneLineErrors), so the bare `clarity-tui` (the lanes board) skips them (issue 17).
COMMAND_MODULES = ("clarity_tui.cli_hardware", "clarity_tui.cli_payments", "clarity_tui.cli_customers",
                   "clarity_tui.cli_site", "clarity_tui.cli_legacy", "clarity_tui.cli_operators",
                   "clarity_tui.cli_menu", "clarity_tui.cli_commissions")


def main() -> None:
    cli(prog_name="clarity-tui")


if __name__ == "__main__":
    main()
