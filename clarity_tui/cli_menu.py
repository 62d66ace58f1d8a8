"""`clarity-tui menu list|set|retire|include`: the wash menu (packages, extras, and the plans that include them).

Every change needs a manager: `--manager NAME` and their PIN (`--manager-pin`, or CLARITY_MANAGER_PIN, or
prompted), checked by the PIN pad's own check (wrong PINs count toward that manager's lockout). A menu set
in the settings (`[[wash.menu]]`) is applied again at every start: change it there, not here.
Errors are one line on stderr and exit code 2.

    clarity-tui menu list [--all] [--json]
    clarity-tui menu set DELUXE --name "Deluxe wash" --kind package --price 15.00 [--tunnel-code 2] [--plan ULTIMATE]
    clarity-tui menu retire DELUXE
    clarity-tui menu include TIRE_SHINE DELUXE ULTIMATE [--remove]
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from typing import Any, NoReturn

import click


def _fail(message: object) -> NoReturn:
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(2)


# Plain digits only: Decimal alone takes '1e3', '1_000', 'NaN' and non-ASCII digits as prices.
PRICE_TEXT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def price_cents(text: str) -> int:
    """'15', '15.5', '$15.00' -> cents; one line and exit 2 for anything else."""
    from clarity_tui.services.wash_menu import MAX_PRICE_CENTS

    raw = text.strip().removeprefix("$").replace(",", "")
    if not PRICE_TEXT.fullmatch(raw):
        _fail(f"'{text}' is not a price: give dollars and cents, e.g. 15.00.")
    amount = Decimal(raw)
    if amount > Decimal(MAX_PRICE_CENTS) / 100:  # before quantize, which raises on a huge number
        _fail(f"'{text}' is more than a menu item may cost: give at most ${MAX_PRICE_CENTS // 100:,}.00.")
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        _fail(f"'{text}' is not a price: give dollars and cents (at most 2 decimals, not negative), e.g. 15.00.")
    return int(amount * 100)


def _line(item: Any) -> str:
    plans = ",".join(item.plans) or "-"
    state = "" if item.active else "  (retired)"
    return f"{item.code:<12} {item.kind:<8} {item.name[:28]:<28} ${item.price_cents / 100:>7.2f}  " \
           f"tunnel {item.tunnel_code:<5} plans {plans}{state}"


def register(cli: click.Group) -> None:
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    def with_manager(fn: Any) -> Any:
        fn = click.option("--manager-pin", "manager_pin", default=None, envvar="CLARITY_MANAGER_PIN",
                          help="The manager's PIN (prompted, hidden; or CLARITY_MANAGER_PIN).")(fn)
        return click.option("--manager", "manager", default=None,
                            help="The approving manager's name (as on the PIN pad).")(fn)

    def _guarded(fn: Any) -> Any:
        """Every refusal the services know is one line and exit 2."""
        from functools import wraps

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from clarity_tui.errors import UserFacingError

            try:
                return fn(*args, **kwargs)
            except UserFacingError as exc:  # MenuError, a wrong or locked manager PIN
                _fail(exc)

        return wrapper

    def _change(ctx: click.Context, manager: str | None, manager_pin: str | None, action: str, code: str,
                change: Any) -> Any:
        """Open the database, have a manager approve with their PIN, then make the change."""
        from clarity_tui.services.pin_check import LockoutPolicy, PinService
        from clarity_tui.services.wash_menu import WashMenu, clean_code

        code = clean_code(code)  # a bad code is refused before a manager's PIN is spent on it
        if not manager:
            _fail("Changing the wash menu needs a manager: give --manager NAME (their PIN is prompted, or set "
                  "CLARITY_MANAGER_PIN).")
        settings = _settings(ctx)
        db = _open_db(settings)
        try:
            terminal = settings.terminal_id or "cli"
            pins = PinService(db, terminal, policy=LockoutPolicy.from_settings(settings))
            manager_id = pins.manager_by_name(manager)
            pin = manager_pin if manager_pin is not None else click.prompt("Manager PIN", hide_input=True)
            by = pins.approve_manager(manager_id, pin.strip(), action=action, entity="wash_item", entity_id=code)
            return change(WashMenu(db, by), code)
        finally:
            db.dispose()

    @cli.group("menu")
    def menu() -> None:
        """The wash menu: packages and extras, their prices, and the plans that include them."""

    @menu.command("list")
    @click.option("--all", "include_retired", is_flag=True, help="Include retired items.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    @friendly_errors
    def menu_list(ctx: click.Context, include_retired: bool, as_json: bool) -> None:
        """List the menu: packages first, then extras."""
        from clarity_tui.services.wash_menu import WashMenu

        db = _open_db(_settings(ctx))
        try:
            items = WashMenu(db).items(include_retired=include_retired)
        finally:
            db.dispose()
        if as_json:
            click.echo(json.dumps([{"code": i.code, "name": i.name, "kind": i.kind, "price_cents": i.price_cents,
                                    "tunnel_code": i.tunnel_code, "active": i.active, "plans": list(i.plans)}
                                   for i in items], indent=1, ensure_ascii=False))
            return
        if not items:
            click.echo('The wash menu is empty: add a package with `clarity-tui menu set CODE --name "NAME" '
                       '--kind package --price 10.00 --manager NAME`.')
            return
        for item in items:
            click.echo(_line(item))

    @menu.command("set")
    @click.argument("code")
    @click.option("--name", required=True, help="What the attendant and the receipt call it.")
    @click.option("--kind", type=click.Choice(["package", "extra"]), required=True,
                  help="A package (a single wash) or an extra.")
    @click.option("--price", "price", required=True, help="The price in dollars, e.g. 15.00.")
    @click.option("--tunnel-code", "tunnel_code", type=int, default=0, show_default=True,
                  help="What the tunnel controller is sent (a package number, or an extra's bit).")
    @click.option("--plan", "plans", multiple=True, help="A plan code that includes it (repeat for several).")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def menu_set(ctx: click.Context, code: str, name: str, kind: str, price: str, tunnel_code: int,
                 plans: tuple[str, ...], manager: str | None, manager_pin: str | None) -> None:
        """Add an item, or change it (a retired item is sold again)."""
        cents = price_cents(price)
        item = _change(ctx, manager, manager_pin, "menu.set", code,
                       lambda m, c: m.set_item(c, name=name, kind=kind, price_cents=cents, tunnel_code=tunnel_code,
                                               plans=plans))
        click.echo(f"Set {_line(item)}")

    @menu.command("retire")
    @click.argument("code")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def menu_retire(ctx: click.Context, code: str, manager: str | None, manager_pin: str | None) -> None:
        """Stop selling an item (it stays in the history; `menu set` sells it again)."""
        item = _change(ctx, manager, manager_pin, "menu.retire", code, lambda m, c: m.retire(c))
        click.echo(f"Retired {item.name} ({item.code}): it is no longer sold.")

    @menu.command("include")
    @click.argument("code")
    @click.argument("plans", nargs=-1, required=True)
    @click.option("--remove", is_flag=True, help="The plans no longer include it.")
    @with_manager
    @click.pass_context
    @friendly_errors
    @_guarded
    def menu_include(ctx: click.Context, code: str, plans: tuple[str, ...], remove: bool, manager: str | None,
                     manager_pin: str | None) -> None:
        """The plans (by code) include the item: members on them get it at no charge."""

        def change(m: Any, c: str) -> Any:
            current = next((i for i in m.items(include_retired=True) if i.code == c), None)
            have = set(current.plans) if current is not None else set()
            named = {p.strip().upper() for p in plans}
            return m.include(c, sorted(have - named if remove else have | named))

        item = _change(ctx, manager, manager_pin, "menu.include", code, change)
        click.echo(f"{item.name} ({item.code}) is included in: {', '.join(item.plans) or 'no plan'}.")
