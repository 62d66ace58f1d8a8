"""Driver registry: settings and env choose drivers; entry points add third-party ones; bad config never crashes."""

from __future__ import annotations

import textwrap

import pytest

from clarity_tui.config import DeviceConfig, Settings, load_settings
from clarity_tui.devices import build_devices
from hardware.base import DeviceError, DeviceState
from hardware.registry import create_device, driver_names, load_driver
from hardware.signature_pad.simulated import SimulatedTopazPad
from hardware.signature_pad.topaz import TopazSerialPad


def test_env_overrides_the_driver_port_and_options(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    config = tmp_path / "clarity.toml"
    config.write_text(textwrap.dedent("""
        [hardware.signature_pad]
        driver = "simulated"
        port = "loop://"
        options = { model = "T-LBK462" }
    """))
    monkeypatch.setenv("CLARITY_HARDWARE__SIGNATURE_PAD__DRIVER", "serial")
    monkeypatch.setenv("CLARITY_HARDWARE__SIGNATURE_PAD__PORT", "/dev/ttyUSB3")
    settings = load_settings(config)
    pad = build_devices(settings).signature_pad
    assert type(pad) is TopazSerialPad
    assert pad.port == "/dev/ttyUSB3" and pad.baudrate == 19200
    assert pad.model.name == "T-LBK462"


def test_defaults_are_all_simulated() -> None:
    devices = build_devices(Settings())
    assert [d.driver_name for _, d in devices.items()] == ["simulated", "simulated", "simulated", "simulated"]
    assert isinstance(devices.signature_pad, SimulatedTopazPad)


def test_unknown_driver_becomes_an_unavailable_device_with_the_reason() -> None:
    settings = Settings()
    settings.hardware.card_reader = DeviceConfig(driver="ingenico")
    settings.hardware.signature_pad = DeviceConfig(driver="serial", options={"model": "T-NOPE"})
    devices = build_devices(settings)
    reader, pad = devices.card_reader, devices.signature_pad
    assert reader.status.state is DeviceState.ERROR
    assert "No card reader driver called 'ingenico'" in reader.status.reason
    assert "stripe_terminal" in reader.status.reason and reader.driver_name == "ingenico"
    assert "Unknown signature pad model 'T-NOPE'" in (pad.last_error or "")
    assert "card ERROR · pad ERROR" in devices.summary()


async def test_unavailable_devices_raise_their_reason_on_use() -> None:
    settings = Settings()
    settings.hardware.card_reader = DeviceConfig(driver="stripe_terminal")
    reader = build_devices(settings).card_reader
    with pytest.raises(DeviceError, match="Stripe Terminal reader id"):
        await reader.collect_card_to_save()


def test_third_party_driver_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A real distribution on sys.path (dist-info with entry_points.txt), found by importlib.metadata."""
    (tmp_path / "acme_pad.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass, field
        from hardware.signature_pad.simulated import SimulatedTopazPad

        @dataclass
        class AcmePad(SimulatedTopazPad):
            driver_name: str = field(init=False, default="acme")
    """))
    dist = tmp_path / "acme_pad-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pad\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text('[clarity_tui.drivers]\nsignature_pad.acme = acme_pad:AcmePad\n'
                                          'card_reader.broken = acme_pad:Nope\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme" in driver_names("signature_pad")
    pad = create_device("signature_pad", DeviceConfig(driver="acme"))
    assert pad.driver_name == "acme"
    with pytest.raises(DeviceError, match="cannot be loaded"):
        load_driver("card_reader", "broken")


def test_a_driver_of_the_wrong_kind_is_refused() -> None:
    from hardware.registry import BUILTIN_DRIVERS

    BUILTIN_DRIVERS["card_reader.pad"] = "hardware.signature_pad.simulated:SimulatedTopazPad"
    try:
        with pytest.raises(DeviceError, match="is not a CardReader"):
            load_driver("card_reader", "pad")
    finally:
        del BUILTIN_DRIVERS["card_reader.pad"]
