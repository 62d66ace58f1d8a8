"""Technician commands: `doctor` and `hardware ...` (test one device at a time, on site or over SSH).

Heavy imports stay inside the commands; helpers from clarity_tui.cli are imported
lazily too, because clarity_tui.cli imports this module while it loads.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from typing import Any

import click


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clarity_tui.cli import friendly_errors

        return friendly_errors(fn)(*args, **kwargs)

    return wrapper


def _settings(ctx: click.Context, **overrides: Any) -> Any:
    from clarity_tui.cli import _settings as load

    return load(ctx, **overrides)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


# --- doctor ----------------------------------------------------------------------------


def check_database(settings: Any) -> Check:
    from db import migrate
    from db.engine import make_engine
    from db.errors import DatabaseProblem

    url = settings.resolved_database_url()
    shown = url.split("@")[-1] if "@" in url else url
    try:
        engine = make_engine(url)
    except Exception as exc:  # noqa: BLE001 - a bad URL
        return Check("database", False, f"{shown}: {exc}")
    try:
        revision = migrate.check_revision(engine)
    except DatabaseProblem as exc:
        return Check("database", False, f"{shown}: {exc}")
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if revision is None:
        return Check("database", False, f"{shown}: empty (no schema): run `clarity-tui db upgrade`.")
    if revision != head:
        return Check("database", False, f"{shown}: schema {revision}, this version needs {head}: run `clarity-tui db upgrade`.")
    return Check("database", True, f"{shown}: schema {revision} (head)")


async def _check_devices(settings: Any) -> list[Check]:
    from clarity_tui.devices import DEVICE_LABELS, build_devices
    from hardware.plate_reader.http_receiver import HttpPlateReader

    devices = build_devices(settings)
    checks = []
    for kind, device in devices.items():
        label = f"{DEVICE_LABELS[kind].lower()} ({device.driver_name})"
        if isinstance(device, HttpPlateReader):
            checks.append(await asyncio.to_thread(_check_receiver, label, device))
            continue
        error = await devices._open(device)  # noqa: SLF001 - same open path as the app
        status = device.status
        if error or not status.ok:
            checks.append(Check(label, False, error or status.reason or status.state.value))
        else:
            checks.append(Check(label, True, f"{device.port_description}: {status.state.value}"))
        await device.close()
    return checks


def _check_receiver(label: str, reader: Any) -> Check:
    """The webhook port is either free (we can listen) or held by a running Clarity that answers its health check."""
    import urllib.request

    from hardware.base import DeviceError

    try:
        reader.receiver.start()
    except DeviceError as exc:
        url = f"http://{reader.host}:{reader.port}/"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback health check
                body = json.loads(response.read())
            if body.get("status") == "ok":
                return Check(label, True, f"{url}: a running receiver answers ({body.get('accepted', 0)} reads so far)")
        except (OSError, ValueError):
            pass
        return Check(label, False, str(exc))
    reader.receiver.stop()
    return Check(label, True, f"{reader.port_description}: port free, ready to listen")


def check_gateway(settings: Any, timeout: float = 5.0) -> Check:
    payments = settings.payments
    if payments.gateway != "stripe":
        return Check("payment gateway", True, f"{payments.gateway}: nothing to reach")
    if not payments.stripe.api_key:
        return Check("payment gateway", False, "stripe: payments.stripe.api_key is not set.")
    import stripe

    from hardware.card_reader.stripe_terminal import make_stripe_client

    client = make_stripe_client(payments.stripe.api_key, payments.stripe.api_base, timeout=timeout)
    where = payments.stripe.api_base or "api.stripe.com"
    try:
        client.v1.customers.list({"limit": 1})
    except stripe.AuthenticationError:
        return Check("payment gateway", False, f"stripe at {where}: the API key was rejected; check payments.stripe.api_key.")
    except stripe.APIConnectionError:
        return Check("payment gateway", False, f"stripe at {where}: unreachable; check the internet connection.")
    except stripe.StripeError as exc:
        return Check("payment gateway", False, f"stripe at {where}: {exc.user_message or exc}")
    return Check("payment gateway", True, f"stripe at {where}: reachable, key accepted")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_friendly
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the database, every configured device and the payment gateway. Exits 1 on any failure."""
    settings = _settings(ctx)
    checks = [check_database(settings), *asyncio.run(_check_devices(settings)), check_gateway(settings)]
    ok = all(c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            click.echo(f"{'OK  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
        click.echo("all good" if ok else "problems found: see FAIL lines")
    sys.exit(0 if ok else 1)


# --- hardware ----------------------------------------------------------------------------


@click.group()
def hardware() -> None:
    """Test one device at a time; list drivers; receive camera webhooks."""


@hardware.command("drivers")
def hardware_drivers() -> None:
    """List the drivers for each device kind (built in and from plug-ins)."""
    from hardware.registry import KINDS, available_drivers

    drivers = available_drivers()
    for kind in KINDS:
        for key in sorted(k for k in drivers if k.startswith(kind + ".")):
            click.echo(f"{key:32} {drivers[key]}")


@hardware.group("test")
def hardware_test() -> None:
    """Exercise one device."""


def _fail(message: str, code: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "error": code, "message": message}))
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@hardware_test.command("signature-pad")
@click.option("--port", help="pyserial URL (/dev/ttyUSB0, socket://host:port, loop://); default: the settings.")
@click.option("--json", "as_json", is_flag=True, help='Print {"strokes": raw, "normalised": [...]} as JSON.')
@click.option("--idle", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Finish this many seconds after the pen lifts (there is no Agree button here).")
@click.option("--timeout", type=click.FloatRange(min=0.5), default=60.0, show_default=True, help="Give up after this many seconds.")
@click.option("--model", help="Pad model for the coordinate range (e.g. T-S460, T-LBK462).")
@click.pass_context
@_friendly
def test_signature_pad(ctx: click.Context, port: str | None, as_json: bool, idle: float, timeout: float,
                       model: str | None) -> None:
    """Capture one signature and print its strokes."""
    from clarity_tui.config import DeviceConfig
    from hardware.base import DeviceError
    from hardware.registry import create_device

    settings = _settings(ctx)
    config = settings.hardware.signature_pad
    options = dict(config.options)
    if model:
        options["model"] = model
    if port and config.driver == "simulated" and not port.startswith("loop://"):
        config = DeviceConfig(driver="serial", port=port, options=options)
    else:
        config = DeviceConfig(driver=config.driver, port=port or config.port, options=options)

    async def run() -> Any:
        pad = create_device("signature_pad", config)
        await pad.open()
        try:
            if not as_json:
                click.echo(f"Sign on the pad at {pad.port_description} (finishes {idle:g} s after the pen lifts)…", err=True)
            return await pad.capture(idle_seconds=idle, timeout=timeout)  # type: ignore[attr-defined]
        finally:
            await pad.close()

    try:
        signature = asyncio.run(run())
    except DeviceError as exc:
        _fail(str(exc), exc.code, as_json)
        return
    if as_json:
        click.echo(json.dumps(signature.to_json()))
        return
    click.echo(f"{len(signature.strokes)} strokes, {signature.point_count} points, {signature.duration_ms} ms ({signature.model})")
    for i, stroke in enumerate(signature.strokes, 1):
        raw = stroke.raw
        click.echo(f"  stroke {i}: {len(raw)} points from {raw[0]} to {raw[-1]}")


@hardware_test.command("card-reader")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--outcome", help="Simulated reader only: approve, decline, insufficient_funds, expired_card, timeout, "
              "card_removed, offline, busy.")
@click.option("--amount", type=click.IntRange(min=1), help="Charge this many cents instead of saving the card.")
@click.pass_context
@_friendly
def test_card_reader(ctx: click.Context, as_json: bool, outcome: str | None, amount: int | None) -> None:
    """Read one card: save it (no charge), or charge --amount cents. Prints the token, never the number."""
    from clarity_tui.devices import build_devices
    from hardware.base import DeviceError
    from hardware.card_reader.simulated import SimulatedCardReader

    settings = _settings(ctx)
    reader = build_devices(settings).card_reader
    if outcome:
        if not isinstance(reader, SimulatedCardReader):
            _fail("--outcome only applies to the simulated card reader.", "config", as_json)
        reader.set_outcome(outcome)  # type: ignore[union-attr]

    async def run() -> Any:
        await reader.open()
        try:
            if not as_json:
                click.echo(f"Present a card on {reader.port_description}…", err=True)
            if amount:
                return await reader.collect_payment(amount, "usd", description="clarity-tui hardware test")
            return await reader.collect_card_to_save()
        finally:
            await reader.close()

    try:
        result = asyncio.run(run())
    except DeviceError as exc:
        _fail(str(exc), exc.code, as_json)
        return
    card = result.card if amount else result
    if as_json:
        payload: dict[str, Any] = {"ok": True, "card": asdict(card)}
        if amount:
            payload.update(payment_id=result.payment_id, amount_cents=result.amount_cents, currency=result.currency)
        click.echo(json.dumps(payload))
        return
    click.echo(f"{card.display}  token {card.payment_method_id}")
    if amount:
        click.echo(f"charged {result.amount_cents} {result.currency}: {result.payment_id}")


@hardware.command("listen-plates")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, help="Port (default: the settings, else 8088).")
@click.option("--host", default=None, help="Interface (default 127.0.0.1; 0.0.0.0 for cameras on the network).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.pass_context
@_friendly
def listen_plates(ctx: click.Context, port: int | None, host: str | None, duration: float | None) -> None:
    """Receive camera webhooks (OpenALPR/Rekor alpr_group JSON) and create sessions on the mapped lanes."""
    import threading

    from clarity_tui.cli import _open_db
    from clarity_tui.devices import plate_recorder
    from hardware.base import DeviceError
    from hardware.plate_reader.http_receiver import PlateWebhookReceiver, parse_listen_address

    settings = _settings(ctx)
    conf_host, conf_port = parse_listen_address(settings.hardware.plate_reader.port)
    db = _open_db(settings)

    def show(event: Any, session_id: int | None) -> None:
        click.echo(f"{event.plate} at {event.lane} ({event.confidence:.0%}): session {session_id}")

    receiver = PlateWebhookReceiver(plate_recorder(db, settings.terminal_id), host or conf_host,
                                    conf_port if port is None else port, on_event=show)
    try:
        receiver.start()
    except DeviceError as exc:
        db.dispose()
        _fail(str(exc), exc.code, False)
        return
    cameras = ", ".join(f"{lane.camera_id} -> {lane.name}" for lane in settings.site.lanes if lane.camera_id)
    click.echo(f"listening on {receiver.url} (cameras: {cameras or 'none mapped'}); Ctrl-C stops", err=True)
    try:
        threading.Event().wait(duration)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        db.dispose()
    click.echo(f"stopped: {receiver.accepted} accepted, {receiver.rejected} rejected", err=True)


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(doctor)
    cli.add_command(hardware)
