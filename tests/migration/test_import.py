"""Legacy import on messy files: BOM, CRLF, quotes, any column order, bad rows, re-import, dry run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.services.legacy import importer as legacy_import
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from clarity_tui.services.legacy import (
    LegacyImporter,
    LegacyImportError,
    import_email,
    import_phone,
    load_mapping,
    parse_date,
    parse_mapping,
)
from db.models import AuditLog, LegacyMember, LegacyMemberPlate, Plan, utcnow
from tests.helpers.migration import SITEWATCH, write

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

def members(db) -> dict[str, LegacyMember]:  # noqa: ANN001
    with db.read() as s:
        return {m.legacy_id: m for m in s.exec(select(LegacyMember).where(LegacyMember.source_system == "sitewatch",
                                                                           LegacyMember.legacy_id.like("SW_")))}


def plates(db, member_id: int) -> list[str]:  # noqa: ANN001
    with db.read() as s:
        return sorted(p.plate_normalized for p in s.exec(select(LegacyMemberPlate)
                                                         .where(LegacyMemberPlate.legacy_member_id == member_id)))


def test_messy_sitewatch_export(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    path = write(tmp_path, SITEWATCH)
    result = LegacyImporter(demo_db, load_mapping("sitewatch")).run(path)
    assert (result.read, result.imported, result.updated, result.unchanged) == (10, 4, 0, 0)
    reasons = {r.line: (r.legacy_id, r.reason) for r in result.rejected}
    assert reasons[4][0] == "SW3" and "spreadsheet-mangled" in reasons[4][1]
    assert reasons[5][0] == "SW4" and "email" in reasons[5][1]
    assert reasons[6][0] == "SW5" and "unknown plan 'Gold Club'" in reasons[6][1]
    assert reasons[7] == ("SW1", "duplicate legacy id SW1 (first on line 2)")
    assert reasons[8][0] == "SW6" and "neither a plate nor a phone" in reasons[8][1]
    assert reasons[9][0] == "SW7" and "does not exist" in reasons[9][1]
    assert len(result.rejected) == 6
    got = members(demo_db)
    assert set(got) == {"SW1", "SW2", "SW8", "SW9"}
    jane = got["SW1"]
    with demo_db.read() as s:
        deluxe = s.exec(select(Plan).where(Plan.code == "DELUXE")).one()
    assert (jane.first_name, jane.last_name, jane.phone_e164, jane.email) == ("Jane", "Doe", "+15125550143",
                                                                             "Jane.Doe@example.com")
    assert (jane.plan_id, jane.plan_name, jane.status) == (deluxe.id, "Deluxe Club", "active")
    # 03/04/2027 is ambiguous: the mapping's MDY decides.
    assert (jane.next_bill_on, jane.joined_on) == (dt.date(2027, 3, 4), dt.date(2019, 1, 15))
    assert jane.raw["Notes"] == 'likes "ceramic", weekly'
    assert plates(demo_db, jane.id) == ["ABC1234"]
    zoe = got["SW2"]
    assert (zoe.first_name, zoe.last_name, zoe.status) == ("Ångström", "Zoë", "suspended")
    assert plates(demo_db, zoe.id) == ["KLM111", "XYZ987"]  # duplicates across columns dropped
    assert zoe.joined_on == dt.date(2020, 11, 3)
    # A quoted name over two lines; 13/04 can only be day-first, 04/13 only month-first.
    multi = got["SW8"]
    assert multi.last_name == "Multi\nLine" and multi.next_bill_on == multi.joined_on == dt.date(2027, 4, 13)
    assert got["SW9"].status == "active" and plates(demo_db, got["SW9"].id) == []  # phone only: kept


def test_reimport_is_idempotent_updates_changes_and_never_touches_migrated(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    importer = LegacyImporter(demo_db, load_mapping("sitewatch"))
    path = write(tmp_path, SITEWATCH)
    importer.run(path)
    again = importer.run(path)
    assert (again.imported, again.updated, again.unchanged, again.rejected_count) == (0, 0, 4, 6)
    # Jane migrates on a lane; Zoë's plan and plate change in the old POS.
    with demo_db.write() as s:
        jane = s.exec(select(LegacyMember).where(LegacyMember.legacy_id == "SW1")).one()
        jane.migrated_at, jane.migrated_by = utcnow(), "Alex (attendant)"
        s.add(jane)
    changed = SITEWATCH.replace('"XYZ987;KLM 111","Blue Honda","ultimate club"', '"XYZ987","Blue Honda","Basic Club"')
    changed = changed.replace('"Jane.Doe@Example.COM"', '"new.jane@example.com"')
    third = importer.run(write(tmp_path, changed, "changed.csv"))
    assert (third.imported, third.updated, third.unchanged, third.kept_migrated) == (0, 1, 2, 1)
    got = members(demo_db)
    assert got["SW2"].plan_name == "Basic Club" and plates(demo_db, got["SW2"].id) == ["XYZ987"]
    assert got["SW1"].email == "Jane.Doe@example.com"  # migrated: never overwritten
    with demo_db.read() as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.action.like("legacy.%")))]
    assert actions.count("legacy.import") == 3 and "legacy.import_batch" in actions


def test_dry_run_writes_nothing(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    result = LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, SITEWATCH), dry_run=True)
    assert (result.dry_run, result.imported, result.rejected_count) == (True, 4, 6)
    assert members(demo_db) == {}


def test_generic_mapping_any_order_lf_cp1252_and_small_batches(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    text = ("Plan,EMAIL,next_bill_date,Member_ID,Phone,Last_Name,First_Name,Plates\n"
            "ultimate,chloe@example.com,22.11.2027,G1,512-555-0150,Béranger,Chloé,\"GEN 1, GEN-2\"\n"
            "Basic,,2027-01-05,G2,5125550151,O'Neil,Pat,GEN3\n"
            "Deluxe,,05/01/2027,G3,,Ng,Vi,GEN4\n")
    mapping = load_mapping("generic")
    result = LegacyImporter(demo_db, mapping, batch_size=1).run(write(tmp_path, text, encoding="cp1252"))
    assert (result.imported, result.rejected_count, result.batches_committed) == (3, 0, 3)
    with demo_db.read() as s:
        rows = {m.legacy_id: m for m in s.exec(select(LegacyMember).where(LegacyMember.source_system == "legacy"))}
    assert rows["G1"].first_name == "Chloé" and rows["G1"].next_bill_on == dt.date(2027, 11, 22)
    assert plates(demo_db, rows["G1"].id) == ["GEN1", "GEN2"]
    assert rows["G3"].next_bill_on == dt.date(2027, 5, 1)  # MDY (generic mapping)
    dmy = parse_mapping({**_generic_toml(), "mapping": {"date_order": "DMY", "source_system": "legacy"}})
    assert LegacyImporter(demo_db, dmy).run(write(tmp_path, text, "again.csv")).updated == 1
    with demo_db.read() as s:
        g3 = s.exec(select(LegacyMember).where(LegacyMember.legacy_id == "G3")).one()
    assert g3.next_bill_on == dt.date(2027, 1, 5)


def _generic_toml() -> dict:
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files("clarity_tui").joinpath("data", "legacy_mappings", "generic.toml")
                         .read_text("utf-8"))


def test_an_interrupted_import_keeps_its_batches_and_resumes(demo_db, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from bench.legacy_import import write_sample_csv

    path = write_sample_csv(tmp_path / "big.csv", 1200)
    importer = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=500)
    real_insert = legacy_import._insert_many
    calls = {"n": 0}

    def flaky(conn, table, rows):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:  # the second batch's members: the database goes away mid-import
            raise OSError("disk I/O error")
        return real_insert(conn, table, rows)

    monkeypatch.setattr(legacy_import, "_insert_many", flaky)
    with pytest.raises(LegacyImportError) as err:
        importer.run(path)
    assert "1 batch(es) up to line 501 are saved" in str(err.value) and "run the same command again" in str(err.value)
    with demo_db.read() as s:
        assert len(s.exec(select(LegacyMember).where(LegacyMember.legacy_id.like("SW1%"))).all()) == 500
    monkeypatch.setattr(legacy_import, "_insert_many", real_insert)
    resumed = importer.run(path)
    assert (resumed.read, resumed.imported, resumed.unchanged, resumed.batches_committed) == (1200, 700, 500, 3)


@pytest.mark.parametrize("bad", ["", "Member #,Name\r\n", "just,some,columns\r\n1,2,3\r\n"])
def test_file_level_problems_are_clear(demo_db, tmp_path: Path, bad: str) -> None:  # noqa: ANN001
    with pytest.raises(LegacyImportError) as err:
        LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, bad))
    assert "empty" in str(err.value) or "mapping" in str(err.value)


def test_mapping_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LegacyImportError, match="does not exist"):
        load_mapping(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[columns]\nphone = 'x'\n")
    with pytest.raises(LegacyImportError, match="legacy_id"):
        load_mapping(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text("[mapping]\ndate_order='XYZ'\n[columns]\nlegacy_id='id'\n")
    with pytest.raises(LegacyImportError, match="date_order"):
        load_mapping(tmp_path / "bad2.toml")


def test_dates() -> None:
    assert parse_date("03/04/2027", "MDY") == dt.date(2027, 3, 4)
    assert parse_date("03/04/2027", "DMY") == dt.date(2027, 4, 3)
    assert parse_date("25/12/2027", "MDY") == dt.date(2027, 12, 25)  # unambiguous either way
    assert parse_date("2027-12-25") == parse_date("2027/12/25") == parse_date("Dec 25, 2027") == dt.date(2027, 12, 25)
    assert parse_date("25-Dec-2027") == parse_date("12/25/27") == parse_date("12/25/2027 0:00") == dt.date(2027, 12, 25)
    assert parse_date("") is None
    for bad in ("31/02/2027", "soon", "2027-13-01", "1.5E+4"):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_fast_validation_paths_agree_with_the_validators() -> None:
    import random

    rng = random.Random(5)
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([7, 10, 10, 11])))
        text = rng.choice(["{d}", "({a}) {b}-{c}", "1 {a}.{b}.{c}", "+1 {a} {b} {c}"]).format(
            d=digits, a=digits[:3], b=digits[3:6], c=digits[6:])
        for region in ("US", "GB"):
            assert _outcome(normalize_phone, text, region) == _outcome(import_phone, text, region), text
    for text in ("Jane.Doe@Example.COM", "WWW@example.com", "a..b@example.com", "x@-bad.com", "x@localhost",
                 "user+tag@sub.example.co.uk", "ünï@example.com", "a@b", "q@bücher.de", ".a@example.com"):
        assert _outcome(normalize_email, text) == _outcome(import_email, text), text


def _outcome(fn, *args):  # noqa: ANN001, ANN202
    try:
        return fn(*args)
    except (InvalidPhone, InvalidEmail) as exc:
        return f"error: {exc}"


def test_a_row_with_missing_fields_is_rejected_not_guessed(demo_db, tmp_path: Path) -> None:  # noqa: ANN001
    text = ("Member #,Member Name,Cell Phone,License Plate,Club Plan,Next Bill Date\r\n"
            "SW50,\"Doe, Jo\",(512) 555-0143,JOE123,Basic Club,12/01/2027\r\n"
            "SW51,\"Short, Row\",(512) 555-0144\r\n"
            ",\"No, Id\",(512) 555-0145,NOID1,Basic Club,12/01/2027\r\n")
    result = LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, text))
    assert result.imported == 1
    assert [r.as_dict() for r in result.rejected] == [
        {"line": 3, "legacy_id": "SW51", "reason": "3 fields where the header has 6 (a missing quote or delimiter?)"},
        {"line": 4, "legacy_id": "", "reason": "no legacy id"}]
