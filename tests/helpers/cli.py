"""The clarity-tui command line as an operator runs it: `python -m clarity_tui ARGS`, in its own process.

The process is forked from a warm interpreter (tests/helpers/forked.py): the same `__main__`, arguments,
environment, exit status and output, without a second of imports per command. `fresh=True` starts a new
interpreter instead, for a test about what the start-up itself does."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import forked


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            fresh: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if fresh:
        return subprocess.run([sys.executable, "-m", "clarity_tui", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env)
    return forked.run(["-m", "clarity_tui", *args], capture_output=True, text=True, timeout=timeout, env=full_env)
