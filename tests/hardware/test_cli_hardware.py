"""Technician CLI: doctor, hardware test signature-pad / card-reader, listen-plates (real subprocesses and ports)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from clarity_tui.cli import cli
from hardware.signature_pad.simulated import TcpPadServer, synth_signature
from hardware.signature_pad.topaz import denormalise, resolve_model
from tests.helpers import forked
from tests.helpers.modbus_server import modbus_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site_env(migrated_sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    """Env for the CLI: an upgraded SQLite site (a copy of the migrated template: what `clarity-tui db upgrade`
    makes, tests/test_cli.py runs that command) and an empty settings file."""
    config = tmp_path / "clarity.toml"
    config.write_text("")
    return {**os.environ, "CLARITY_DATABASE_URL": migrated_sqlite_url, "CLARITY_CONFIG": str(config),
            "CLARITY_HARDWARE__CARD_READER__OPTIONS": '{"delay": 0.01}'}


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return forked.run(["-m", "clarity_tui", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                      timeout=timeout)


def test_doctor_all_good_with_simulated_devices(site_env: dict[str, str]) -> None:
    result = run(site_env, "doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == [
        "database", "database integrity", "card reader (simulated)", "signature pad (simulated)",
        "plate camera (simulated)", "tunnel controller (simulated)", "payment gateway", "sms provider", "mail server",
        "crash log"]


def test_doctor_fails_on_a_missing_pad_port_and_an_unreachable_gateway(site_env: dict[str, str]) -> None:
    env = {**site_env, "CLARITY_HARDWARE__SIGNATURE_PAD__DRIVER": "serial",
           "CLARITY_HARDWARE__SIGNATURE_PAD__PORT": "/dev/clarity-no-pad",
           "CLARITY_PAYMENTS__GATEWAY": "stripe", "CLARITY_PAYMENTS__STRIPE__API_KEY": "sk_test_doctor",
           "CLARITY_PAYMENTS__STRIPE__API_BASE": "http://127.0.0.1:9"}
    result = run(env, "doctor", "--json")
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["database"]["ok"]
    assert not checks["signature pad (serial)"]["ok"]
    assert "Signature pad not found at /dev/clarity-no-pad" in checks["signature pad (serial)"]["detail"]
    assert not checks["payment gateway"]["ok"] and "unreachable" in checks["payment gateway"]["detail"]
    text = run(env, "doctor")
    assert text.returncode == 1 and "FAIL  signature pad (serial)" in text.stdout


def test_doctor_reports_a_faulted_or_unreachable_tunnel_controller(site_env: dict[str, str]) -> None:
    """Against pymodbus's own server: ready passes; a fault (status register) and a stopped controller fail,
    each saying what the controller said and where."""
    options = {"timeout_seconds": 1.0, "gate_coils": {"Lane 1": 0}, "package_register": 1, "start_coil": 16,
               "status_register": 9}
    with modbus_server() as server:
        env = {**site_env, "CLARITY_HARDWARE__TUNNEL__DRIVER": "modbus_tcp",
               "CLARITY_HARDWARE__TUNNEL__PORT": server.address,
               "CLARITY_HARDWARE__TUNNEL__OPTIONS": json.dumps(options)}
        name = "tunnel controller (modbus_tcp)"
        ready = {c["name"]: c for c in json.loads(run(env, "doctor", "--json").stdout)["checks"]}[name]
        assert ready == {"name": name, "ok": True, "detail": f"modbus://{server.address}/1: ready", "warning": False}
        server.set_holding(9, 2)
        faulted = run(env, "doctor")
        assert faulted.returncode == 1
        assert (f"FAIL  {name}: modbus://{server.address}/1: FAULT: Tunnel controller fault (register 40010): "
                "status value 2: cars are queued until it is fixed") in faulted.stdout
    stopped = run(env, "doctor")
    assert stopped.returncode == 1
    assert f"FAIL  {name}: Tunnel controller offline (register 40010): no connection to {server.address}" \
        in stopped.stdout


def test_doctor_fails_on_an_empty_database(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("")
    env = {**os.environ, "CLARITY_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "CLARITY_CONFIG": str(config)}
    result = run(env, "doctor")
    assert result.returncode == 1
    assert "FAIL  database" in result.stdout and "clarity-tui db upgrade" in result.stdout


def test_signature_pad_capture_over_socket_prints_raw_and_normalised_json(site_env: dict[str, str]) -> None:
    with TcpPadServer(seed=21, speed=20, start_delay=0.5) as pad:
        result = run(site_env, "hardware", "test", "signature-pad", "--port", pad.url, "--json", "--idle", "0.5",
                     "--timeout", "60")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    model = resolve_model({})
    expected = [[list(denormalise(model, x, y)) for x, y, _ in stroke] for stroke in synth_signature(21)]
    assert out["strokes"] == expected
    assert len(out["normalised"]) == 4 and all(len(p) == 3 for s in out["normalised"] for p in s)
    assert all(0 <= x <= 1 and 0 <= y <= 1 for s in out["normalised"] for x, y, _ in s)


def test_signature_pad_on_the_simulated_loop_port_in_process(site_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CLARITY_DATABASE_URL", "CLARITY_CONFIG"):
        monkeypatch.setenv(key, site_env[key])
    monkeypatch.setenv("CLARITY_HARDWARE__SIGNATURE_PAD__OPTIONS", '{"speed": 20, "start_delay": 0.05, "seed": 4}')
    result = CliRunner().invoke(cli, ["hardware", "test", "signature-pad", "--port", "loop://", "--idle", "0.3"])
    assert result.exit_code == 0, result.output
    assert "4 strokes" in result.output and "(T-S460)" in result.output


def test_signature_pad_missing_port_is_a_clear_error(site_env: dict[str, str]) -> None:
    result = run(site_env, "hardware", "test", "signature-pad", "--port", "/dev/clarity-no-pad", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "offline"


def test_card_reader_test_approve_and_decline(site_env: dict[str, str]) -> None:
    ok = run(site_env, "hardware", "test", "card-reader", "--json")
    assert ok.returncode == 0, ok.stderr
    card = json.loads(ok.stdout)["card"]
    assert card["payment_method_id"].startswith("pm_sim_") and card["last4"] == "4242"
    assert set(card) == {"payment_method_id", "brand", "last4", "exp_month", "exp_year"}
    charged = run(site_env, "hardware", "test", "card-reader", "--amount", "1299")
    assert charged.returncode == 0 and "charged 1299 usd: pi_sim_" in charged.stdout
    declined = run(site_env, "hardware", "test", "card-reader", "--json", "--outcome", "insufficient_funds")
    assert declined.returncode == 1
    assert json.loads(declined.stdout) == {"ok": False, "error": "insufficient_funds",
                                           "message": "Card declined for insufficient funds: ask for another card."}


def test_listen_plates_records_webhooks(site_env: dict[str, str]) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    secret = "cli-camera-secret-lane3-0123456789"
    env = {**site_env, "CLARITY_HARDWARE__PLATE_READER__OPTIONS": json.dumps({"secrets": {"cam-lane3": secret}})}
    proc = forked.popen(["-m", "clarity_tui", "hardware", "listen-plates", "--port", str(port), "--duration", "60"],
                        env=env, cwd=ROOT, stdout=forked.PIPE, stderr=forked.PIPE, text=True)
    head: list[str] = []  # stderr up to "listening on ...": the port is open
    try:
        assert proc.stderr is not None
        while not (head and head[-1].startswith("listening on ")):
            line = proc.stderr.readline()
            assert line, "listen-plates ended before listening: " + "".join(head)
            head.append(line)
        body = json.dumps({"data_type": "alpr_group", "camera_id": "cam-lane3", "best_plate_number": "CLI123",
                           "best_confidence": 88.0}).encode()
        # The camera's token in the URL, for cameras that cannot set headers.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/plate/{secret}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
        assert reply["camera_id"] == "cam-lane3" and reply["session_id"] > 0
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    err = "".join(head) + err
    assert "CLI123 at cam-lane3 (88%)" in out
    assert secret not in out + err  # the URL's token is never logged


def test_doctor_fails_a_camera_webhook_without_a_secret(site_env: dict[str, str]) -> None:
    env = {**site_env, "CLARITY_HARDWARE__PLATE_READER__DRIVER": "http",
           "CLARITY_HARDWARE__PLATE_READER__PORT": "127.0.0.1:0"}
    result = run(env, "doctor", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    camera = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["plate camera (http)"]
    assert not camera["ok"] and "No camera secret is configured" in camera["detail"]
    secured = run({**env, "CLARITY_HARDWARE__PLATE_READER__OPTIONS": '{"secret": "doctor-camera-secret-0123456789"}'},
                  "doctor", "--json")
    camera = {c["name"]: c for c in json.loads(secured.stdout)["checks"]}["plate camera (http)"]
    assert camera["ok"] and "ready to listen" in camera["detail"]
