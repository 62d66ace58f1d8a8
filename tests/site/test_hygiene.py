"""The site services run headless (CLI, SSH) without Textual; the PIN pad loads without the ORM,
so it can appear with the first paint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(prefixes)!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_site_services_and_cli_never_import_textual() -> None:
    modules = ["clarity_tui.services.operators", "clarity_tui.services.reports", "clarity_tui.services.audit_query",
               "clarity_tui.cli_site"]
    assert _loaded(modules, ("textual",)) == []


def test_the_pin_pad_and_site_screens_load_without_the_orm() -> None:
    modules = ["clarity_tui.screens.signin", "clarity_tui.screens.shift", "clarity_tui.screens.audit",
               "clarity_tui.screens.report"]
    assert _loaded(modules, ("sqlalchemy", "sqlmodel", "pydantic", "alembic")) == []
