"""Payment commands: `plans sync`, `payments replay`, `payments check`."""

from __future__ import annotations

import sys

import click


def _gateway_and_db(ctx: click.Context):
    from clarity_tui.cli import _open_db, _settings
    from clarity_tui.payments import make_gateway

    from clarity_tui.payments.errors import PaymentError

    settings = _settings(ctx)
    db = _open_db(settings)
    try:
        return settings, db, make_gateway(settings, db)
    except PaymentError as exc:
        db.dispose()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    from clarity_tui.cli import friendly_errors

    @cli.group("plans")
    def plans() -> None:
        """Membership plans at the payment gateway."""

    @plans.command("sync")
    @click.pass_context
    @friendly_errors
    def plans_sync(ctx: click.Context) -> None:
        """Create products, prices (Stripe plans), promotion coupons and the sales tax rate at the gateway."""
        from clarity_tui.payments.errors import PaymentError
        from clarity_tui.services.billing import sync_plans

        settings, db, gateway = _gateway_and_db(ctx)
        try:
            rows = sync_plans(db, gateway, settings.payments.currency, tax=settings.billing.tax)
        except PaymentError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        for code, product, price in rows:
            click.echo(f"{code:<12} {product:<28} {price}")
        click.echo(f"Synced {len(rows)} item(s) with the {gateway.name} gateway.")

    @cli.group("payments")
    def payments() -> None:
        """Payment gateway diagnostics and the outbox."""

    @payments.command("replay")
    @click.pass_context
    @friendly_errors
    def payments_replay(ctx: click.Context) -> None:
        """Replay pending outbox steps (same idempotency keys: never charges twice)."""
        from clarity_tui.services.billing import BillingService

        settings, db, gateway = _gateway_and_db(ctx)
        try:
            service = BillingService(db, gateway, currency=settings.payments.currency)
            results = service.processor.replay_pending()
            left = service.processor.pending_count()
        finally:
            db.dispose()
        for r in results:
            click.echo(f"order {r.order_id}: {r.status}" + (f" ({r.message})" if r.message else ""))
        click.echo(f"{left} step(s) still pending.")
        if left:
            sys.exit(1)

    @payments.command("check")
    @click.pass_context
    @friendly_errors
    def payments_check(ctx: click.Context) -> None:
        """Check that the configured gateway is reachable and accepts our key."""
        from clarity_tui.payments.errors import PaymentError

        _settings_, db, gateway = _gateway_and_db(ctx)
        try:
            gateway.check()
        except PaymentError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        click.echo(f"The {gateway.name} payment gateway is reachable.")

    @payments.command("refund")
    @click.argument("order_id", type=click.IntRange(1, 2**31 - 1))
    @click.option("--amount", default=None, help="Dollars to refund, e.g. 12.50 (default: all that is left).")
    @click.option("--manager", required=True, help="The manager's name (as on the PIN pad).")
    @click.option("--pin", prompt="Manager PIN", hide_input=True, envvar="CLARITY_MANAGER_PIN",
                  help="The manager's PIN (prompted; or CLARITY_MANAGER_PIN).")
    @click.pass_context
    @friendly_errors
    def payments_refund(ctx: click.Context, order_id: int, amount: str | None, manager: str, pin: str) -> None:
        """Refund an order through the outbox (its own key; never more than was paid). Managers only."""
        from clarity_tui.payments.errors import PaymentError
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.membership_actions import ActionRefused, MembershipActions
        from clarity_tui.services.operators import OperatorService, SignInError
        from clarity_tui.services.permissions import PermissionDenied

        from clarity_tui.services.membership_actions import dollars_to_cents

        cents = None
        if amount is not None:
            cents = dollars_to_cents(amount)
            if cents is None:
                click.echo(f"Error: --amount {amount!r} is not an amount of money: write it like 12.50.", err=True)
                sys.exit(2)
        settings, db, gateway = _gateway_and_db(ctx)
        try:
            operators = OperatorService(db, settings.terminal_id or "cli")
            match = [c for c in operators.choices() if c.name.casefold() == manager.casefold()]
            if not match:
                raise ActionRefused(f"No operator is named {manager!r}: use the name shown on the PIN pad.")
            signed = operators.sign_in(match[0].id, pin)
            try:
                outcome = MembershipActions(BillingService(db, gateway, signed.actor,
                                                           currency=settings.payments.currency)).refund(
                    signed.actor, order_id, cents, reason="refund from the command line")
            finally:
                operators.sign_out(signed.shift_id, "cli")
        except (ActionRefused, PermissionDenied, SignInError, PaymentError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        finally:
            db.dispose()
        click.echo(outcome.message if outcome.queued else f"Refund of order {order_id} sent to the {gateway.name} gateway.")

    from clarity_tui.cli_billing import register_billing

    register_billing(payments)
    from clarity_tui.cli_sim_clock import register_clock

    register_clock(payments)
