"""Child processes a test drives: wait for the file a child writes to say where it is."""

from __future__ import annotations

import subprocess
from pathlib import Path


def wait_for_file(path: Path, proc: subprocess.Popen) -> str:
    """Wait until the child writes `path` (it holds there), failing fast if it exited instead; its text."""
    while not path.exists():
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the child exited before {path.name}: {stderr}")
        try:
            proc.wait(timeout=0.01)  # the child's exit ends this wait early
        except subprocess.TimeoutExpired:
            pass
    return path.read_text()
