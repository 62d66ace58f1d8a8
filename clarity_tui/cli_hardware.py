"""Technician commands: `doctor` and `hardware ...` (test one device at a time, on site or over SSH).

Heavy imports stay inside the commands; helpers from clarity_tui.cli are imported
lazily too, because clarity_tui.cli imports this module while it loads.
About 500 lines, kept whole: the doctor's checks and the `hardware test` commands share the same per-device
probes and the same lazy-import plumbing, and each command is a thin wrapper over a hardware driver.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import wraps
from typing import Any, NoReturn

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
    # ok, but worth a look: a simulated device or provider on a site that is not in simulator mode.
    warning: bool = False


# Short timeouts for the checks that reach other hosts: the doctor answers in seconds, not minutes.
DOCTOR_TIMEOUT_SECONDS = 5.0


# --- doctor ----------------------------------------------------------------------------


@dataclass
class DatabaseReport:
    checks: list[Check]
    database: Any = None  # an open db.engine.Database when the schema is usable (never upgraded here)
    fatal: str | None = None  # a DatabaseProblem: the one line every command would print (exit 2)


def _integrity(path: str) -> Check:
    """`PRAGMA quick_check` over the whole file, whatever its size (opening checks small files only)."""
    import sqlite3
    import time

    from db.errors import as_problem, corrupt
    from db.rawconnect import quick_check, read_only_uri

    started = time.perf_counter()
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            problems = quick_check(conn, 5)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database integrity", False, str(as_problem(exc, where=path) or exc))
    if problems:
        return Check("database integrity", False, str(corrupt(path, "; ".join(problems[:3]))))
    return Check("database integrity", True, f"PRAGMA quick_check: ok ({time.perf_counter() - started:.2f} s)")


def check_database(settings: Any) -> DatabaseReport:
    """The database line, and on SQLite the integrity line. A DatabaseProblem (unreachable, bad URL,
    damaged, another program's...) is `fatal`: doctor then also prints it as the one-line error."""
    import os

    from db import migrate
    from db.engine import Database, make_engine, shown_url
    from db.errors import DatabaseProblem
    from db.rawconnect import sqlite_file

    url = settings.resolved_database_url()
    shown = shown_url(url)
    path = sqlite_file(url)
    integrity: list[Check] = []
    if path and os.path.isfile(path) and os.path.getsize(path) > 0:
        integrity = [_integrity(path)]
        if not integrity[0].ok:
            return DatabaseReport([Check("database", False, f"{shown}: cannot be used (see the integrity line)"),
                                   *integrity], fatal=integrity[0].detail)
    try:
        engine = make_engine(url)
    except DatabaseProblem as exc:
        return DatabaseReport([Check("database", False, str(exc)), *integrity], fatal=str(exc))
    try:
        revision = migrate.check_revision(engine)
    except DatabaseProblem as exc:
        engine.dispose()
        return DatabaseReport([Check("database", False, str(exc)), *integrity], fatal=str(exc))
    head = migrate.head_revision()
    if revision == head:
        return DatabaseReport([Check("database", True, f"{shown}: schema {revision} (head)"), *integrity],
                              Database(engine))
    engine.dispose()
    if revision is None:
        return DatabaseReport([Check("database", False, f"{shown}: empty (no schema): run `clarity-tui db upgrade`."),
                               *integrity])
    return DatabaseReport([Check("database", False, f"{shown}: schema {revision}, this version needs {head}: run "
                                 "`clarity-tui db upgrade`."), *integrity])


def _simulated(settings: Any, check: Check, what: str) -> Check:
    """A simulated driver or provider is right in simulator mode, and a warning anywhere else."""
    if settings.simulate:
        return check
    return Check(check.name, check.ok, f"{check.detail}; WARNING: {what} is simulated but this site is not in "
                 "simulator mode: set the real one in the settings", warning=check.ok)


async def _check_devices(settings: Any) -> list[Check]:
    from clarity_tui.devices import DEVICE_LABELS, build_devices
    from hardware.plate_reader.http_receiver import HttpPlateReader
    from hardware.tunnel.base import TunnelController

    devices = build_devices(settings)
    checks = []
    for kind, device in devices.items():
        label = f"{DEVICE_LABELS[kind].lower()} ({device.driver_name})"
        if isinstance(device, HttpPlateReader):
            checks.append(await asyncio.to_thread(_check_receiver, label, device))
            continue
        if isinstance(device, TunnelController):
            checks.append(await _check_tunnel(label, device))
            if device.driver_name == "simulated":
                checks[-1] = _simulated(settings, checks[-1], "the tunnel controller")
            continue
        error = await devices._open(device)
        status = device.status
        if error or not status.ok:
            checks.append(Check(label, False, error or status.reason or status.state.value))
        else:
            checks.append(Check(label, True, f"{device.port_description}: {status.state.value}"))
        if device.driver_name == "simulated":
            checks[-1] = _simulated(settings, checks[-1], f"the {DEVICE_LABELS[kind].lower()}")
        await device.close()
    return checks


async def _check_tunnel(label: str, tunnel: Any) -> Check:
    from hardware.tunnel.base import check_controller

    ok, detail = await check_controller(tunnel)
    return Check(label, ok, detail)


def _check_receiver(label: str, reader: Any) -> Check:
    """The webhook port is either free (we can listen) or held by a running Clarity that answers its health check."""
    import urllib.request

    from hardware.base import DeviceError

    try:
        reader.receiver.start()
    except DeviceError as exc:
        url = f"http://{reader.host}:{reader.port}/"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                body = json.loads(response.read())
            if body.get("status") == "ok":
                return Check(label, True, f"{url}: a running receiver answers ({body.get('accepted', 0)} reads so far)")
        except (OSError, ValueError):
            pass
        return Check(label, False, str(exc))
    reader.receiver.stop()
    if not reader.receiver.auth.configured:
        from hardware.plate_reader.http_receiver import NO_SECRET

        return Check(label, False, f"{reader.port_description}: port free, but {NO_SECRET}")
    return Check(label, True, f"{reader.port_description}: port free, ready to listen")


def _short_timeouts(settings: Any, timeout: float) -> Any:
    copy = settings.model_copy(deep=True)
    copy.payments.stripe.timeout_seconds = min(copy.payments.stripe.timeout_seconds, timeout)
    copy.payments.stripe.max_network_retries = 0
    copy.messaging.twilio.timeout_seconds = min(copy.messaging.twilio.timeout_seconds, timeout)
    return copy


def check_gateway(settings: Any, database: Any, timeout: float = DOCTOR_TIMEOUT_SECONDS) -> Check:
    """The gateway's own reachability check: the one `clarity-tui payments check` runs."""
    from clarity_tui.payments import make_gateway
    from clarity_tui.payments.errors import GatewayUnavailable, PaymentError

    payments = settings.payments
    where = f"{payments.gateway} at {payments.stripe.api_base or 'api.stripe.com'}" if payments.gateway == "stripe" \
        else payments.gateway
    if payments.gateway != "stripe" and database is None:
        return Check("payment gateway", False, f"{where}: not checked: it keeps its data in the database, which is "
                     "not usable (see the database line).")
    try:
        gateway = make_gateway(_short_timeouts(settings, timeout), database)
        gateway.check()
    except GatewayUnavailable as exc:
        return Check("payment gateway", False, f"{where}: unreachable: {exc}")
    except PaymentError as exc:
        return Check("payment gateway", False, f"{where}: {exc}")
    detail = f"{where}: reachable, key accepted" if payments.gateway == "stripe" else f"{where}: answers"
    check = Check("payment gateway", True, detail)
    return _simulated(settings, check, "the payment gateway") if payments.gateway == "simulated" else check


def check_sms(settings: Any, timeout: float = DOCTOR_TIMEOUT_SECONDS) -> Check:
    """The SMS provider: a poll for replies (reads, sends nothing) proves the address and the credentials."""
    import datetime as dt

    from clarity_tui.messaging import MessagingError, make_sms_provider

    cfg = settings.messaging
    if cfg.provider == "simulated":
        return _simulated(settings, Check("sms provider", True, "simulated: no texts leave this terminal"),
                          "the SMS provider")
    where = f"{cfg.provider} at {cfg.twilio.api_base}"
    try:
        provider = make_sms_provider(_short_timeouts(settings, timeout))
        provider.replies(cfg.twilio.from_number, dt.datetime.now(dt.UTC))
    except MessagingError as exc:
        return Check("sms provider", False, f"{where}: {exc}")
    except ValueError as exc:  # an answer that is not the Messages API's JSON
        return Check("sms provider", False, f"{where}: answered, but not like a Messages API ({exc}): check "
                     "messaging.twilio.api_base.")
    return Check("sms provider", True, f"{where}: reachable, credentials accepted")


def check_mail(settings: Any, timeout: float = DOCTOR_TIMEOUT_SECONDS) -> Check:
    """The mail server: connect, EHLO, STARTTLS and login as configured (no message is sent)."""
    import smtplib
    import ssl

    cfg = settings.smtp
    where = f"{cfg.host}:{cfg.port}"
    if settings.simulate:  # services/mailer.make_mailer: simulator mode never sends email
        return Check("mail server", True, "simulated (simulator mode): emails are kept and logged, nothing is sent")
    if "smtp" not in settings.model_fields_set:
        return Check("mail server", True, f"not configured: password-reset emails would go to {where}; set smtp.host "
                     "(CLARITY_SMTP__HOST) to send them", warning=not settings.simulate)
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=min(cfg.timeout, timeout)) as smtp:
            smtp.ehlo()
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            smtp.noop()
    except smtplib.SMTPAuthenticationError:
        return Check("mail server", False, f"{where}: refused the login: check smtp.username / smtp.password.")
    except (OSError, smtplib.SMTPException) as exc:
        return Check("mail server", False, f"{where}: unreachable ({type(exc).__name__}: {exc}): check smtp.host / "
                     "smtp.port and that the mail server is running.")
    return Check("mail server", True, f"{where}: answers" + (" (login accepted)" if cfg.username else ""))


def check_crash_log() -> Check:
    """Where the lane app logs an error it recovered from (clarity_tui/crash_log.py); a crash is a warning."""
    from clarity_tui.crash_log import crash_log_summary

    count, detail = crash_log_summary()
    return Check("crash log", True, detail, warning=count > 0)


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A dependency check never stops the others: an unexpected error is that check's FAIL line."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        return Check(name, False, f"unexpected error: {type(exc).__name__}: {exc}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_friendly
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the database (and its integrity), every device, the payment gateway, the SMS provider and the
    mail server. Exits 1 on any failure, 2 when the database cannot be used at all (one line on stderr)."""
    settings = _settings(ctx)
    report = check_database(settings)
    try:
        checks = [*report.checks, *asyncio.run(_check_devices(settings)),
                  _guarded("payment gateway", lambda: check_gateway(settings, report.database)),
                  _guarded("sms provider", lambda: check_sms(settings)),
                  _guarded("mail server", lambda: check_mail(settings)),
                  _guarded("crash log", check_crash_log)]
    finally:
        if report.database is not None:
            report.database.dispose()
    ok = all(c.ok for c in checks)
    warnings = any(c.warning for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "warnings": warnings, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            click.echo(f"{'FAIL' if not c.ok else 'WARN' if c.warning else 'OK  '}  {c.name}: {c.detail}")
        click.echo("problems found: see FAIL lines" if not ok else
                   "all good, with warnings: see WARN lines" if warnings else "all good")
    if report.fatal:
        from clarity_tui.cli import _fail_one_line

        _fail_one_line(report.fatal)
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


def _fail(message: str, code: str, as_json: bool) -> NoReturn:
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
    from hardware.signature_pad.base import SignaturePad

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
        assert isinstance(pad, SignaturePad)  # the registry checks each driver's base class
        await pad.open()
        try:
            if not as_json:
                click.echo(f"Sign on the pad at {pad.port_description} (finishes {idle:g} s after the pen lifts)…", err=True)
            return await pad.capture(idle_seconds=idle, timeout=timeout)
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
        reader.set_outcome(outcome)

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
    from hardware.plate_reader.http_receiver import NO_SECRET, PlateWebhookReceiver, parse_listen_address, receiver_options

    settings = _settings(ctx)
    options = dict(settings.hardware.plate_reader.options)
    conf_host, conf_port = parse_listen_address(settings.hardware.plate_reader.port, str(options.pop("host", "127.0.0.1")))
    try:
        limits = receiver_options(options)  # the camera secrets, allow-list and limits
    except ValueError as exc:
        _fail(f"hardware.plate_reader.options: {exc}", "config", False)
        return
    db = _open_db(settings)

    def show(event: Any, session_id: int | None) -> None:
        click.echo(f"{event.plate} at {event.lane} ({event.confidence:.0%}): session {session_id}")

    receiver = PlateWebhookReceiver(plate_recorder(db, settings.terminal_id), host or conf_host,
                                    conf_port if port is None else port, on_event=show, **limits)
    try:
        receiver.start()
    except DeviceError as exc:
        db.dispose()
        _fail(str(exc), exc.code, False)
        return
    cameras = ", ".join(f"{lane.camera_id} -> {lane.name}" for lane in settings.site.lanes if lane.camera_id)
    click.echo(f"listening on {receiver.url} (cameras: {cameras or 'none mapped'}); Ctrl-C stops", err=True)
    if not receiver.auth.configured:
        click.echo(f"WARNING: {NO_SECRET}", err=True)
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
