"""The clarity-tui command line, run in a fresh interpreter as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "clarity_tui", *args], capture_output=True, text=True, timeout=timeout, env=full_env)
