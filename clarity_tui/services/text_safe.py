"""Text from the database or a file, made safe to print on a terminal (one rule for every printer).

Control characters (C0, DEL, C1) and invisible format characters (bidi overrides such as U+202E,
zero-width spaces) could move the cursor, recolour the screen or reorder what the reader sees, so
they are shown as escapes: \\xNN, or \\uNNNN above U+00FF.
"""

from __future__ import annotations

import re
import unicodedata

_ALWAYS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, limit: int | None = 80) -> str:
    """Safe to print on a terminal: control and format characters escaped, cut at `limit` characters."""
    shown = "".join(_escape(ch) if _ALWAYS.match(ch) or unicodedata.category(ch) == "Cf" else ch for ch in text)
    if limit is None or len(shown) <= limit:
        return shown
    return shown[: limit - 1] + "…"
