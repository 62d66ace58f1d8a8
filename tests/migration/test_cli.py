"""`clarity-tui legacy ...` as an operator runs it: real processes on SQLite."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlmodel import select

from db.models import LegacyMember
from tests.helpers.migration import SITEWATCH, service, to_signed, write
from tests.helpers.lanes import NEXT_BILL, Legacy
from tests.helpers.cli import run_cli


def test_import_json_dry_run_and_resume(demo_db, settings, tmp_path: Path) -> None:  # noqa: ANN001
    path = write(tmp_path, SITEWATCH)
    dry = run_cli("--db", settings.database_url, "legacy", "import", str(path), "--mapping", "sitewatch",
                  "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert (summary["dry_run"], summary["read"], summary["imported"], summary["rejected"]) == (True, 10, 4, 6)
    assert {r["line"] for r in summary["rejections"]} == {4, 5, 6, 7, 8, 9}
    with demo_db.read() as s:
        assert s.exec(select(LegacyMember).where(LegacyMember.legacy_id == "SW1")).first() is None
    real = run_cli("--db", settings.database_url, "legacy", "import", str(path), "--mapping", "sitewatch")
    assert real.returncode == 1  # some rows were rejected: a script can tell
    assert "read 10, imported 4, updated 0, unchanged 0, rejected 6" in real.stdout
    assert "line 4: SW3: phone:" in real.stderr and "Traceback" not in real.stderr
    again = run_cli("--db", settings.database_url, "legacy", "import", str(path), "--mapping", "sitewatch")
    assert "imported 0, updated 0, unchanged 4, rejected 6" in again.stdout
    found = run_cli("--db", settings.database_url, "legacy", "find", "A8C 1234")  # camera read of ABC-1234
    assert found.returncode == 0 and "SW1" in found.stdout and "look-alike" in found.stdout


def test_import_errors_are_one_clear_line(demo_db, settings, tmp_path: Path) -> None:  # noqa: ANN001
    missing = run_cli("--db", settings.database_url, "legacy", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
    bad_mapping = run_cli("--db", settings.database_url, "legacy", "import", str(write(tmp_path, SITEWATCH)),
                          "--mapping", str(tmp_path / "none.toml"))
    assert bad_mapping.returncode == 2 and "Mapping file" in bad_mapping.stderr and "Traceback" not in bad_mapping.stderr
    wrong_layout = run_cli("--db", settings.database_url, "legacy", "import", str(write(tmp_path, SITEWATCH)),
                           "--mapping", "generic")
    assert wrong_layout.returncode == 2 and "No legacy id column" in wrong_layout.stderr


def test_export_migrated(legacy: Legacy, settings, tmp_path: Path) -> None:  # noqa: ANN001
    svc = service(legacy.db)
    assert svc.pay(to_signed(svc, legacy)).ok
    out = run_cli("--db", settings.database_url, "legacy", "export-migrated")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    with legacy.db.read() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
    assert [(r["legacy_id"], r["new_next_billing_on"], r["migrated_by"]) for r in rows] == \
        [(jane.legacy_id, NEXT_BILL.isoformat(), "Alex Attendant")]
    target = tmp_path / "migrated.csv"
    later = run_cli("--db", settings.database_url, "legacy", "export-migrated", "--since", "2099-01-01", "-o", str(target))
    assert later.returncode == 0 and list(csv.reader(io.StringIO(target.read_text()))) == [[
        "source_system", "legacy_id", "legacy_next_bill_on", "new_next_billing_on", "customer_number", "migrated_at",
        "migrated_by", "terminal", "subscription_id"]]
