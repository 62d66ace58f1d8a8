"""A bad row is rejected on its own, never its batch; a bad mapping file is one line and exit 2.

Issue 15: a legacy id longer than its column (64) aborted its whole batch, and every re-run
failed the same way; a NUL byte aborted a PostgreSQL import with a psycopg dump; bad mapping
files (an integer column name, an unknown encoding, a non-UTF-8 file) gave tracebacks.
Every import here runs on SQLite and PostgreSQL (the `demo_db` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.services.legacy import importer as legacy_import
from clarity_tui.services.legacy import LegacyImporter, load_mapping
from clarity_tui.services.legacy.parsers import LIMITS
from db.models import LegacyMember, LegacyMemberPlate
from tests.helpers.migration import write
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

HEADER = "Member #,Member Name,Cell Phone,License Plate,Club Plan,Status,Next Bill Date,Notes\r\n"
LONG_ID = "R" + "9" * 69  # 70 characters: a shifted column pasted into the id


def good(n: int) -> str:
    return f'R{n},"Good, Row{n}",(512) 555-01{n:02d},GOOD{n},Basic Club,Active,12/01/2027,fine\r\n'


# Lines 2..: good rows around one row per problem. The bad cells sit in different columns.
ROWS = [
    good(1),                                                                           # line 2
    f'{LONG_ID},"Long, Id",(512) 555-0190,LONG1,Basic Club,Active,12/01/2027,\r\n',    # line 3
    'R3,"Nul, Byte",(512) 555-0191,NUL1,Basic Club,Active,12/01/2027,"a\x00b"\r\n',   # line 4: NUL in Notes
    good(4),                                                                           # line 5
    'R5,"Esc\x1b[31m, Red",(512) 555-0192,ESC1,Basic Club,Active,12/01/2027,\r\n',    # line 6: ESC in the name
    'R6,"Bell, Ring",(512) 555-0193,BEL1,Basic Club,Active\x07,12/01/2027,\r\n',      # line 7: BEL in Status
    f'R7,"{"L" * 81}, Long",(512) 555-0194,LNG7,Basic Club,Active,12/01/2027,\r\n',   # line 8: last name > 80
    f'R8,"Stat, Long",(512) 555-0195,STA8,Basic Club,{"x" * 25},12/01/2027,\r\n',     # line 9: status > 24
    'R\x009,"Nul, Id",(512) 555-0196,NUL9,Basic Club,Active,12/01/2027,\r\n',         # line 10: NUL in the id
    good(10),                                                                          # line 11
    '"R11\nB",Line Break,(512) 555-0197,LBR11,Basic Club,Active,12/01/2027,\r\n',      # lines 12-13: LF in the id
]
TEXT = HEADER + "".join(ROWS)


def stored(db) -> dict[str, LegacyMember]:  # noqa: ANN001
    with db.read() as s:
        return {m.legacy_id: m for m in s.exec(select(LegacyMember).where(LegacyMember.source_system == "sitewatch",
                                                                           LegacyMember.legacy_id.like("R%")))}


def test_bad_rows_are_rejected_alone_with_reasons_and_a_rerun_is_idempotent(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    path = write(tmp_path, TEXT)
    importer = LegacyImporter(demo_db, load_mapping("sitewatch"))
    result = importer.run(path)  # one batch: before, the long id stopped all of it
    assert (result.read, result.imported, result.rejected_count) == (11, 3, 8)
    reasons = {r.line: r.reason for r in result.rejected}
    assert "legacy id is 70 characters long: the most is 64" in reasons[3]
    assert "column 'Notes' holds a NUL byte" in reasons[4]
    assert "column 'Member Name' holds a control character (U+001B)" in reasons[6]
    assert "column 'Status' holds a control character (U+0007)" in reasons[7]
    assert "last name is 81 characters long: the most is 80" in reasons[8]
    assert "status is 25 characters long: the most is 24" in reasons[9]
    assert "column 'Member #' holds a NUL byte" in reasons[10]
    assert "legacy id holds a line break" in reasons[12]
    # What is reported is safe to print: no raw control characters, the long id cut short.
    by_line = {r.line: r for r in result.rejected}
    assert by_line[10].legacy_id == "R\\x009" and "\x1b" not in json.dumps([r.as_dict() for r in result.rejected])
    assert len(by_line[3].legacy_id) <= 80
    assert set(stored(demo_db)) == {"R1", "R4", "R10"}
    again = importer.run(path)
    assert (again.imported, again.updated, again.unchanged, again.rejected_count) == (0, 0, 3, 8)
    assert [r.as_dict() for r in again.rejected] == [r.as_dict() for r in result.rejected]


def test_limits_come_from_the_models() -> None:
    table = LegacyMember.__table__  # type: ignore[attr-defined]
    assert LIMITS["legacy_id"] == table.c.legacy_id.type.length == 64
    assert LIMITS["last_name"] == table.c.last_name.type.length
    assert LIMITS["plate_raw"] == LegacyMemberPlate.__table__.c.plate_raw.type.length  # type: ignore[attr-defined]


def test_a_row_the_database_still_refuses_is_retried_alone(demo_db, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Defence in depth: a row the validation lets through but the database refuses (here a plan id
    that does not exist, refused by the foreign key on both databases) is rejected on its own;
    the rest of its batch goes in, and a re-run makes progress instead of failing the same way."""
    real_load = LegacyImporter._load_plans

    def with_a_ghost_plan(self) -> None:  # noqa: ANN001
        real_load(self)
        self._plans["ghost club"] = 987654  # known to the importer, not to the database

    monkeypatch.setattr(LegacyImporter, "_load_plans", with_a_ghost_plan)
    text = HEADER + good(1) + 'R2,"Ghost, Plan",(512) 555-0180,GHOST2,Ghost Club,Active,12/01/2027,\r\n' + good(3)
    importer = LegacyImporter(demo_db, load_mapping("sitewatch"))
    result = importer.run(write(tmp_path, text))
    assert (result.imported, result.rejected_count, result.batches_committed) == (2, 1, 1)
    refused = result.rejected[0]
    assert (refused.line, refused.legacy_id) == (3, "R2") and "the database refused the row" in refused.reason
    assert "INSERT" not in refused.reason and "[SQL" not in refused.reason
    assert set(stored(demo_db)) == {"R1", "R3"}
    again = importer.run(write(tmp_path, text))
    assert (again.imported, again.unchanged, again.rejected_count) == (0, 2, 1)


def test_a_lost_database_still_stops_the_import_in_one_line(demo_db, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Only refusals are retried row by row: a disk or connection failure stops, and says so once."""

    def gone(conn, table, rows):  # noqa: ANN001, ANN202
        raise OSError("disk I/O error")

    monkeypatch.setattr(legacy_import, "_insert_many", gone)
    with pytest.raises(legacy_import.LegacyImportError) as err:
        LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, HEADER + good(1)))
    assert "stopped at the batch starting on line 2: disk I/O error." in str(err.value)
    assert "\n" not in str(err.value)


def test_the_cli_imports_the_good_rows_and_lists_the_rejected(demo_db, settings, tmp_path: Path) -> None:  # noqa: ANN001
    path = write(tmp_path, TEXT)
    out = run_cli("--db", settings.database_url, "legacy", "import", str(path), "--mapping", "sitewatch")
    assert out.returncode == 1, out.stderr  # rows were rejected: a script can tell
    assert "read 11, imported 3, updated 0, unchanged 0, rejected 8" in out.stdout
    assert "Traceback" not in out.stderr and "psycopg" not in out.stderr and "\x1b" not in out.stderr
    assert "line 4: R3: column 'Notes' holds a NUL byte" in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.startswith("line ")]) == 8  # one line each
    again = run_cli("--db", settings.database_url, "legacy", "import", str(path), "--mapping", "sitewatch", "--json")
    summary = json.loads(again.stdout)
    assert (summary["imported"], summary["unchanged"], summary["rejected"]) == (0, 3, 8)


# --- mapping files ------------------------------------------------------------------------------

GOOD_COLUMNS = '[columns]\nlegacy_id = "Member #"\nphone = "Cell Phone"\n'

BAD_MAPPINGS = {
    "integer column name": ("[columns]\nlegacy_id = 5\n", "[columns] legacy_id = 5"),
    "integer in a list": ('[columns]\nlegacy_id = ["Member #", 7]\n', "[columns] legacy_id = 7"),
    "unknown encoding": ('[mapping]\nencoding = "klingon"\n' + GOOD_COLUMNS, "encoding 'klingon'"),
    "not a text encoding": ('[mapping]\nencoding = "rot13"\n' + GOOD_COLUMNS, "encoding 'rot13'"),
    "encoding as a number": ("[mapping]\nencoding = 8\n" + GOOD_COLUMNS, "encoding = 8"),
    "non-UTF-8 file": (b'[mapping]\nname = "Caf\xe9"\n' + GOOD_COLUMNS.encode(), "is not UTF-8 text"),
    "no columns": ('[mapping]\nname = "x"\n', "has no [columns] table"),
    "columns not a table": ('columns = "Member #"\n', "[columns] must be a table"),
    "no legacy id": ('[columns]\nphone = "Cell Phone"\n', "no [columns] legacy_id"),
    "empty column list": ("[columns]\nlegacy_id = []\n", "empty list"),
    "plans not a table": ("plans = [1, 2]\n" + GOOD_COLUMNS, "[plans] must be a table"),
    "plan code a number": (GOOD_COLUMNS + '[plans]\n"Basic Club" = 1\n', "[plans] 'Basic Club' = 1"),
    "bad TOML": ("[columns\nlegacy_id = 'x'\n", "is not valid TOML"),
    "two-character delimiter": ('[mapping]\ndelimiter = ";;"\n' + GOOD_COLUMNS, "delimiter ';;'"),
    "source system too long": (f'[mapping]\nsource_system = "{"s" * 41}"\n' + GOOD_COLUMNS,
                               "source_system of 41 characters: the most is 40"),
    "a directory": (None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_MAPPINGS))
def test_a_bad_mapping_file_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    content, needle = BAD_MAPPINGS[case]
    mapping = tmp_path / "mapping.toml"
    if content is None:
        mapping.mkdir()
    else:
        mapping.write_bytes(content if isinstance(content, bytes) else content.encode())
    data = write(tmp_path, HEADER + good(1))
    from clarity_tui.cli import cli

    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'unused.db'}", "legacy", "import", str(data),
                                      "--mapping", str(mapping)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "unused.db").exists()  # nothing was opened, nothing was written


def test_a_bad_mapping_file_in_a_real_process(tmp_path: Path) -> None:
    mapping = tmp_path / "int.toml"
    mapping.write_text("[columns]\nlegacy_id = 5\n")
    out = run_cli("--db", f"sqlite:///{tmp_path / 'unused.db'}", "legacy", "import",
                  str(write(tmp_path, HEADER + good(1))), "--mapping", str(mapping))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("Error: The mapping file")
