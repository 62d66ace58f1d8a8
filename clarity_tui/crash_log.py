"""The crash log: every unhandled exception in a screen or a worker, with its traceback.

One file in the platform's log directory (platformdirs `user_log_dir("clarity-tui")`, e.g.
~/.local/state/clarity-tui/log/crash.log on Linux), named in the README, on the calm error screen
the attendant sees, and by `clarity-tui doctor`. No Textual here: the CLI reads it too.

Only the formatted traceback is written, never the frames' local variables, and anything shaped
like a card number (13 to 19 digits, spaced or not) is masked before it reaches the file.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import traceback
from pathlib import Path

from clarity_tui.paths import APP_NAME

log = logging.getLogger(__name__)

CRASH_LOG_NAME = "crash.log"
ENTRY_MARK = "=== "
# 13-19 digits, optionally grouped by single spaces or dashes: a PAN. Phone numbers (10-11) pass.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def log_dir() -> Path:
    from platformdirs import user_log_path

    return user_log_path(APP_NAME, appauthor=False)


def crash_log_path() -> Path:
    return log_dir() / CRASH_LOG_NAME


def mask_card_numbers(text: str) -> str:
    return _CARD.sub("[number removed]", text)


def format_crash(error: BaseException, where: str, when: dt.datetime | None = None) -> str:
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = traceback.format_exception(type(error), error, error.__traceback__)  # no locals, ever
    return mask_card_numbers(f"{ENTRY_MARK}{stamp} · {where}\n{''.join(lines)}\n")


def record_crash(error: BaseException, where: str) -> Path:
    """Append the traceback to the crash log; returns its path. Never raises: a full disk must not
    turn a logged crash into a second one (the logging module then has the line)."""
    path = crash_log_path()
    entry = format_crash(error, where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(entry)
    except OSError as exc:
        log.error("could not write the crash log %s (%s): %s", path, exc, entry)
    return path


def crash_log_summary(path: Path | None = None) -> tuple[int, str]:
    """(how many crashes are logged, one line for doctor naming the file)."""
    path = path or crash_log_path()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0, f"{path}: no crash logged"
    except OSError as exc:
        return 0, f"{path}: cannot be read ({exc.strerror or exc})"
    entries = [line for line in text.splitlines() if line.startswith(ENTRY_MARK)]
    if not entries:
        return 0, f"{path}: no crash logged"
    last = entries[-1][len(ENTRY_MARK):].split(" · ")[0]
    plural = "es" if len(entries) != 1 else ""
    return len(entries), f"{path}: {len(entries)} crash{plural} logged, the last at {last}: send the file to support"
