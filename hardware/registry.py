"""Driver registry: "<kind>.<driver>" -> "module:Class", imported only when chosen (python-can style).

Third-party packages add drivers through the `clarity_tui.drivers` entry point
group, e.g. in their pyproject.toml:

    [project.entry-points."clarity_tui.drivers"]
    "signature_pad.wacom" = "clarity_wacom.pad:WacomPad"

A driver class is built with `from_config(port, options, **context)` when it has
one, else `cls(**options)`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Protocol

from hardware.base import Device, DeviceError

ENTRY_POINT_GROUP = "clarity_tui.drivers"
KINDS = ("card_reader", "signature_pad", "plate_reader", "tunnel")

BUILTIN_DRIVERS: dict[str, str] = {
    "card_reader.simulated": "hardware.card_reader.simulated:SimulatedCardReader",
    "card_reader.stripe_terminal": "hardware.card_reader.stripe_terminal:StripeTerminalReader",
    "signature_pad.serial": "hardware.signature_pad.topaz:TopazSerialPad",
    "signature_pad.topaz": "hardware.signature_pad.topaz:TopazSerialPad",
    "signature_pad.simulated": "hardware.signature_pad.simulated:SimulatedTopazPad",
    "plate_reader.simulated": "hardware.plate_reader.simulated:SimulatedPlateReader",
    "plate_reader.http": "hardware.plate_reader.http_receiver:HttpPlateReader",
    "tunnel.simulated": "hardware.tunnel.simulated:SimulatedTunnel",
    "tunnel.modbus_tcp": "hardware.tunnel.modbus_tcp:ModbusTcpTunnel",
}

# Which ABC each kind's drivers must implement ("module:Class", imported lazily too).
KIND_BASES: dict[str, str] = {
    "card_reader": "hardware.card_reader.base:CardReader",
    "signature_pad": "hardware.signature_pad.base:SignaturePad",
    "plate_reader": "hardware.plate_reader.base:PlateReader",
    "tunnel": "hardware.tunnel.base:TunnelController",
}


class DeviceConfigLike(Protocol):
    driver: str
    port: str | None
    options: dict[str, Any]


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def available_drivers() -> dict[str, str]:
    """Every known "<kind>.<name>" -> "module:Class": built-ins, then entry points (which may add, not replace)."""
    drivers = dict(BUILTIN_DRIVERS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        drivers.setdefault(ep.name, ep.value)
    return drivers


def driver_names(kind: str) -> list[str]:
    prefix = f"{kind}."
    return sorted(key[len(prefix):] for key in available_drivers() if key.startswith(prefix))


def load_driver(kind: str, name: str) -> type[Device]:
    if kind not in KINDS:
        raise DeviceError(f"Unknown device kind '{kind}': use one of {', '.join(KINDS)}.", code="config")
    target = available_drivers().get(f"{kind}.{name}")
    if target is None:
        raise DeviceError(f"No {kind.replace('_', ' ')} driver called '{name}': use one of "
                          f"{', '.join(driver_names(kind))} (hardware.{kind}.driver).", code="config")
    try:
        cls = _import(target)
    except (ImportError, AttributeError) as exc:
        raise DeviceError(f"The {kind.replace('_', ' ')} driver '{name}' ({target}) cannot be loaded: {exc}.",
                          code="config") from exc
    base = _import(KIND_BASES[kind])
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise DeviceError(f"The driver '{name}' ({target}) is not a {base.__name__}.", code="config")
    return cls


def create_device(kind: str, config: DeviceConfigLike, **context: Any) -> Device:
    """Build (not open) the device a settings section asks for. Raises DeviceError with the fix."""
    cls = load_driver(kind, config.driver)
    options = dict(config.options or {})
    factory = getattr(cls, "from_config", None)
    try:
        if factory is not None:
            return factory(config.port, options, **context)
        return cls(**options)
    except DeviceError:
        raise
    except (TypeError, ValueError) as exc:
        raise DeviceError(f"Bad settings for the {kind.replace('_', ' ')} driver '{config.driver}': {exc}.",
                          code="config") from exc
