"""hardware/ (and db/) never import Textual: they run in the CLI, the simulator and on headless hosts."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import hardware

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> list[str]:
    pkg = __import__(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if ".migrations" in info.name:
            continue
        names.append(info.name)
    return names


def test_hardware_and_db_modules_never_import_textual() -> None:
    modules = _modules("hardware") + _modules("db") + ["clarity_tui.devices", "clarity_tui.cli_hardware"]
    assert "hardware.signature_pad.topaz" in modules and "hardware.card_reader.stripe_terminal" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


def test_every_builtin_driver_is_importable() -> None:
    from hardware.registry import BUILTIN_DRIVERS, load_driver

    for key in BUILTIN_DRIVERS:
        kind, name = key.split(".", 1)
        assert load_driver(kind, name).__name__ in BUILTIN_DRIVERS[key]
    assert hardware.__doc__
