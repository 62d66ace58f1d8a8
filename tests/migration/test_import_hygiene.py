"""The migration's headless parts never import Textual: the CLI and imports run without a screen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADLESS = ["clarity_tui.services.legacy", "clarity_tui.services.migration", "clarity_tui.messaging",
            "clarity_tui.messaging.simulated", "clarity_tui.messaging.twilio", "clarity_tui.cli_legacy"]


def test_headless_migration_modules_never_import_textual() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {HEADLESS!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []
