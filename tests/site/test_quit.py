"""Ctrl+Q on a real terminal ends the app at once: the type-ahead gate does not hold the exit.

Found by the SSH support tests: the app left the screen only after the gate's MAX_HOLD (15 s), because the
gate kept waiting for an exiting app to settle. The app runs here on a pseudo-terminal, as over SSH; a
marker file records each time the gate gave up waiting, and the test waits for the exit itself (no clock).
"""

from __future__ import annotations

import os
import pty
import re
import select
import time
from pathlib import Path

from tests.helpers import forked

ROOT = Path(__file__).resolve().parents[2]
SAFETY_SECONDS = 180  # only so that a broken app fails the test instead of hanging the run

# The app as `clarity-tui ARGS` runs it, with the gate's give-up recorded in a file.
RUN_APP = """
import runpy, sys
from clarity_tui import typeahead
marker, args = sys.argv[1], sys.argv[2:]
real_give_up = typeahead.KeyGate._give_up
def recorded_give_up(self):
    with open(marker, "a") as f:
        f.write("gave up\\n")
    real_give_up(self)
typeahead.KeyGate._give_up = recorded_give_up
sys.argv = ["clarity_tui", *args]
runpy.run_module("clarity_tui", run_name="__main__")
"""



def screen_text(raw: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?<>=$]*[a-zA-Z~]|\x1b\][^\x07]*\x07|\x1b[()][AB0]|\x1b[=>]", "",
                  raw.decode(errors="replace"))


def read(fd: int, seen: bytearray, until: str | None) -> bool:
    """Read the terminal until `until` shows (None: until the app closes it); False if it closed first."""
    deadline = time.monotonic() + SAFETY_SECONDS
    while until is None or until not in screen_text(bytes(seen)):
        if time.monotonic() > deadline or not select.select([fd], [], [], 1)[0]:
            if time.monotonic() > deadline:
                return False
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the app exited and the terminal closed
            return until is None
        if not chunk:
            return until is None
        seen.extend(chunk)
    return True


def test_ctrl_q_exits_without_the_gate_giving_up(demo_db, settings, tmp_path) -> None:  # noqa: ANN001
    """`clarity-tui support` (what the SSH support tests run): the live board, then Ctrl+Q."""
    marker = tmp_path / "gave-up"
    fd, terminal = pty.openpty()
    try:
        proc = forked.popen(["-c", RUN_APP, str(marker), "--db", settings.resolved_database_url(), "support"],
                            stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"})
    finally:
        os.close(terminal)
    seen = bytearray()
    try:
        assert read(fd, seen, "Lane 1"), screen_text(bytes(seen))[-2000:]
        os.write(fd, b"\x11")  # Ctrl+Q
        assert read(fd, seen, None), "the app did not exit"
        assert proc.wait(timeout=SAFETY_SECONDS) == 0, screen_text(bytes(seen))[-2000:]
    finally:
        proc.kill()
        os.close(fd)
    assert not marker.exists(), "the type-ahead gate held the exit until it gave up"
