"""`clarity-tui operators list|add|disable|set-pin|unlock`: the site's operators (people with a PIN).

Once the site has an operator, every change needs a manager: `--manager NAME` and their PIN
(`--manager-pin`, or CLARITY_MANAGER_PIN, or prompted). The PIN check is the PIN pad's own: wrong
PINs count toward that manager's lockout. Only a site with no PIN operators at all may add its first
manager without one: `clarity-tui operators add "Pat Lee" --role manager`.

New PINs are prompted twice (hidden), or come from `--pin` / CLARITY_NEW_PIN for scripts; the PIN
policy refuses short and trivial ones. Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

ROLE_CHOICES = ["attendant", "manager", "support", "technician"]


def _fail(message: object) -> NoReturn:
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


def _new_pin(pin: str | None) -> str:
    if pin is None:
        pin = click.prompt("New PIN", hide_input=True, confirmation_prompt="Repeat the new PIN")
    return pin.strip()


def register(cli: click.Group) -> None:
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    manager_options = [
        click.option("--manager", "manager", default=None, help="The approving manager's name (as on the PIN pad)."),
        click.option("--manager-pin", "manager_pin", default=None, envvar="CLARITY_MANAGER_PIN",
                     help="The manager's PIN (prompted, hidden; or CLARITY_MANAGER_PIN)."),
    ]

    def with_manager(fn: Any) -> Any:
        for option in reversed(manager_options):
            fn = option(fn)
        return fn

    def _context(ctx: click.Context) -> tuple[Any, Any, str]:
        settings = _settings(ctx)
        return settings, _open_db(settings), settings.terminal_id or "cli"

    def _approve(settings: Any, db: Any, terminal: str, manager: str | None, manager_pin: str | None, action: str,
                 entity_id: Any = None) -> Any:
        """The approving manager as an Actor (their PIN checked by the one PIN check), or exit 2."""
        from clarity_tui.services.pin_check import LockoutPolicy, PinService

        if not manager:
            _fail("Managing operators needs a manager: give --manager NAME (their PIN is prompted, "
                  "or set CLARITY_MANAGER_PIN).")
        pins = PinService(db, terminal, policy=LockoutPolicy.from_settings(settings))
        manager_id = pins.manager_by_name(manager)
        if manager_pin is None:
            manager_pin = click.prompt("Manager PIN", hide_input=True)
        return pins.approve_manager(manager_id, manager_pin.strip(), action=action, entity="operator",
                                    entity_id=entity_id)

    def _manage(ctx: click.Context, name: str, manager: str | None, manager_pin: str | None, action: str,
                change: Any, ask_first: Any = None) -> Any:
        """Find the operator, ask what the change needs, have a manager approve, then change: the row."""
        from clarity_tui.services.operator_admin import OperatorAdmin

        settings, db, terminal = _context(ctx)
        try:
            admin = OperatorAdmin(db, terminal)
            target = admin.find(name)
            extra = () if ask_first is None else (ask_first(),)
            by = _approve(settings, db, terminal, manager, manager_pin, action, target.id)
            return change(admin, by, target.id, *extra)
        finally:
            db.dispose()

    def _guarded(fn: Any) -> Any:
        """Every refusal the services know is one line and exit 2."""
        from functools import wraps

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from clarity_tui.services.operator_admin import OperatorAdminError
            from clarity_tui.services.permissions import PermissionDenied
            from clarity_tui.services.pin_check import SignInError, WeakPin

            try:
                return fn(*args, **kwargs)
            except (OperatorAdminError, PermissionDenied, SignInError, WeakPin) as exc:
                _fail(exc)

        return wrapper

    @cli.group("operators")
    def operators() -> None:
        """The people who sign in at the terminals: add, list, disable, set a PIN, unlock."""

    @operators.command("list")
    @click.option("--all", "include_disabled", is_flag=True, help="Include disabled operators.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    @friendly_errors
    def operators_list(ctx: click.Context, include_disabled: bool, as_json: bool) -> None:
        """List the operators (name, role, status). Support accounts over SSH are not listed."""
        from clarity_tui.services.operator_admin import OperatorAdmin
        from db.models import utcnow

        _settings_, db, terminal = _context(ctx)
        try:
            rows = OperatorAdmin(db, terminal).list(include_disabled=include_disabled)
        finally:
            db.dispose()
        now = utcnow()
        if as_json:
            click.echo(json.dumps([{"id": r.id, "name": r.name, "role": r.role, "active": r.active,
                                    "locked_until": r.locked_until.isoformat() if r.locked_until and r.locked(now) else None}
                                   for r in rows], indent=1, ensure_ascii=False))
            return
        if not rows:
            click.echo('No operators yet: add the first manager with `clarity-tui operators add "NAME" --role manager`.')
            return
        for r in rows:
            click.echo(f"{r.id:>4}  {r.name[:32]:<32} {r.role:<11} {r.status(now)}")

    @operators.command("add")
    @click.argument("name")
    @click.option("--role", type=click.Choice(ROLE_CHOICES), required=True, help="What the operator may do.")
    @click.option("--pin", default=None, envvar="CLARITY_NEW_PIN",
                  help="The new operator's PIN (prompted twice, hidden; or CLARITY_NEW_PIN).")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def operators_add(ctx: click.Context, name: str, role: str, pin: str | None, manager: str | None,
                      manager_pin: str | None) -> None:
        """Add an operator with a PIN. The site's first operator is a manager, added without --manager."""
        from clarity_tui.services.operator_admin import OperatorAdmin, clean_name
        from clarity_tui.services.pin_check import require_good_pin

        clean_name(name)
        settings, db, terminal = _context(ctx)
        try:
            admin = OperatorAdmin(db, terminal)
            first = admin.needs_first_manager()
            if first and role != "manager":
                _fail('The site has no operators yet: add its first manager first '
                      '(clarity-tui operators add "NAME" --role manager).')
            new_pin = _new_pin(pin)
            require_good_pin(new_pin)  # before a manager's PIN is spent on it
            if first:
                row = admin.add_first_manager(name, new_pin)
            else:
                by = _approve(settings, db, terminal, manager, manager_pin, "operators.add")
                row = admin.add(by, name, role, new_pin)
        finally:
            db.dispose()
        click.echo(f"Added {row.name} ({row.role})" + (": the site's first manager." if first else "."))

    @operators.command("disable")
    @click.argument("name")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def operators_disable(ctx: click.Context, name: str, manager: str | None, manager_pin: str | None) -> None:
        """Disable an operator: they can no longer sign in (their history stays)."""
        row = _manage(ctx, name, manager, manager_pin, "operators.disable", lambda admin, by, target: admin.disable(by, target))
        click.echo(f"Disabled {row.name}: they can no longer sign in.")

    @operators.command("set-pin")
    @click.argument("name")
    @click.option("--pin", default=None, envvar="CLARITY_NEW_PIN",
                  help="The new PIN (prompted twice, hidden; or CLARITY_NEW_PIN).")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def operators_set_pin(ctx: click.Context, name: str, pin: str | None, manager: str | None,
                          manager_pin: str | None) -> None:
        """Set an operator's new PIN (it also lifts a lockout)."""
        from clarity_tui.services.pin_check import require_good_pin

        def ask_first() -> str:
            new_pin = _new_pin(pin)
            require_good_pin(new_pin)
            return new_pin

        row = _manage(ctx, name, manager, manager_pin, "operators.set_pin",
                      lambda admin, by, target, new_pin: admin.set_pin(by, target, new_pin), ask_first=ask_first)
        click.echo(f"New PIN set for {row.name}.")

    @operators.command("unlock")
    @click.argument("name")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def operators_unlock(ctx: click.Context, name: str, manager: str | None, manager_pin: str | None) -> None:
        """Lift an operator's PIN lockout."""
        row = _manage(ctx, name, manager, manager_pin, "operators.unlock", lambda admin, by, target: admin.unlock(by, target))
        click.echo(f"Unlocked {row.name}.")
