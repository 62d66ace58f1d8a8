"""The import's raw write path (issue 17): rows carried as the databases store them, compared with what is
stored in one tuple, batches written inline or by a writer thread, garbage collection paused.

No timing here: the figures live in `./dev bench legacy_import`.
"""

from __future__ import annotations

import csv
import gc
import io
import json
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.services.legacy import LegacyImporter, LegacyImportError, MemberRow, load_mapping
from clarity_tui.services.legacy import importer as legacy_import
from clarity_tui.services.legacy.parsers import RowParser
from db.models import LegacyMember, LegacyMemberPlate
from tests.helpers.migration import write
from tests.helpers.legacy_sample import HEADER, sample, stored

pytestmark = pytest.mark.both_databases


def parsed(text: str) -> list:
    importer = LegacyImporter(None, load_mapping("sitewatch"))
    importer._plans = {"basic": 1, "gold": 2}
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    parser = RowParser(importer.mapping, importer._header_index(header), [h.strip() for h in header], "US",
                       importer._plans)
    return list(parser.rows(reader))


@pytest.mark.parametrize("name", ['Doe, "Jo"', "Zoë, Ångström", "Back\\slash, Al", "Tab\there, Bo", "Ünï, 😀"])
def test_raw_is_the_json_text_json_dumps_gives(name: str) -> None:
    cells = ["T1", name, "(512) 555-0143", "", "ABC1", "", "Basic Club", "Active", "12/01/2027"]
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(cells)
    (row,) = parsed(HEADER + line.getvalue())
    assert isinstance(row, MemberRow)
    header = HEADER.strip().split(",")
    assert row.params[2] == json.dumps({h: c for h, c in zip(header, cells, strict=True) if c != ""})
    assert row.values["raw"]["Member Name"] == name and row.values["next_bill_on"].isoformat() == "2027-12-01"


def test_a_header_naming_a_column_twice_keeps_the_dicts_own_rule() -> None:
    header = "Member #,Member Name,Cell Phone,Club Plan,Notes,Notes\r\n"
    (row,) = parsed(header + 'T1,"Doe, Jo",(512) 555-0143,Basic Club,first,second\r\n')
    assert json.loads(row.params[2])["Notes"] == "second"
    assert row.params[2] == json.dumps({"Member #": "T1", "Member Name": "Doe, Jo", "Cell Phone": "(512) 555-0143",
                                        "Club Plan": "Basic Club", "Notes": "second"})


@pytest.mark.parametrize("pipelined", [False, True])
def test_inline_and_pipelined_writes_store_the_same_and_reimport_unchanged(demo_db, tmp_path: Path,
                                                                             pipelined: bool) -> None:
    path = write(tmp_path, sample(120))
    first = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=9, pipelined=pipelined).run(path)
    assert first.imported > 0 and first.rejected_count > 0 and first.batches_committed == -(-first.imported // 9)
    probe = LegacyImporter(demo_db, load_mapping("sitewatch"))
    probe._load_plans()
    assert stored(demo_db) == {r.legacy_id: r.fingerprint() for r in probe.rows(path) if isinstance(r, MemberRow)}
    again = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=9, pipelined=pipelined).run(path)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, first.imported)
    assert [r.as_dict() for r in again.rejected] == [r.as_dict() for r in first.rejected]


def test_a_member_migrated_while_its_batch_is_compared_is_kept_with_its_plates(demo_db, tmp_path: Path,
                                                                               monkeypatch) -> None:
    text = HEADER + "".join(f'T{i},"Doe{i}, Jo",(512) 555-01{i:02d},,ABC{i},,Basic Club,Active,12/01/2027\r\n'
                            for i in range(1, 4))
    LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, text))
    changed = text.replace("ABC", "XYZ")  # every member changes plate
    real_compare = LegacyImporter._compare

    def then_a_lane_migrates_t2(self, stm, cur, batch, counts):
        found = real_compare(self, stm, cur, batch, counts)
        # In the batch's own transaction: on PostgreSQL a lane's UPDATE could commit here, as nothing is locked
        # until the update; SQLite's write lock excludes it, so this is the same interleaving on both.
        cur.execute(f"UPDATE legacy_member SET migrated_at = {stm.mark} WHERE legacy_id = {stm.mark}",
                    ("2026-12-01 00:00:00" if stm.sqlite else "2026-12-01T00:00:00Z", "T2"))
        return found

    monkeypatch.setattr(LegacyImporter, "_compare", then_a_lane_migrates_t2)
    result = LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, changed, "changed.csv"))
    assert (result.updated, result.kept_migrated, result.unchanged) == (2, 1, 0)
    with demo_db.read() as s:
        members = {m.legacy_id: m.id for m in s.exec(select(LegacyMember).where(LegacyMember.legacy_id.like("T%")))}
        plates = {p.legacy_member_id: p.plate_normalized for p in s.exec(select(LegacyMemberPlate))}
    assert {k: plates[v] for k, v in members.items()} == {"T1": "XYZ1", "T2": "ABC2", "T3": "XYZ3"}


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_writer_failure_stops_the_import_names_what_is_saved_and_collection_comes_back(
        demo_db, tmp_path: Path, monkeypatch, pipelined: bool) -> None:
    from bench.legacy_import import write_sample_csv

    path = write_sample_csv(tmp_path / "members.csv", 50)
    real_insert, calls = legacy_import._insert_many, []

    def fails_on_the_third_batch(conn, table, rows):
        calls.append(table.name)
        if len(calls) == 5:  # batches 1 and 2: members + plates each
            raise OSError("disk I/O error")
        return real_insert(conn, table, rows)

    monkeypatch.setattr(legacy_import, "_insert_many", fails_on_the_third_batch)
    assert gc.isenabled()
    with pytest.raises(LegacyImportError) as err:
        LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=10, pipelined=pipelined).run(path)
    assert "2 batch(es) up to line 21 are saved" in str(err.value)
    assert gc.isenabled()  # paused for the import only, whatever way it ended
    assert len(calls) == 5  # nothing written after the failure
    with demo_db.read() as s:
        assert len(s.exec(select(LegacyMember).where(LegacyMember.legacy_id.like("SW1%"))).all()) == 20
    monkeypatch.setattr(legacy_import, "_insert_many", real_insert)
    resumed = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=10, pipelined=pipelined).run(path)
    assert (resumed.imported, resumed.unchanged) == (30, 20)


def test_by_default_postgresql_writes_on_the_writer_thread_and_sqlite_inline(demo_db, tmp_path: Path,
                                                                            monkeypatch) -> None:
    # PostgreSQL's writes are mostly the server's work, so the next batch is parsed meanwhile; SQLite's driver
    # takes the GIL back for every row, so a thread there only queues behind the parser.
    import threading

    from bench.legacy_import import write_sample_csv

    path = write_sample_csv(tmp_path / "members.csv", 30)
    real_insert, writers = legacy_import._insert_many, set()

    def noting_the_thread(conn, table, rows):
        writers.add(threading.current_thread().name)
        return real_insert(conn, table, rows)

    monkeypatch.setattr(legacy_import, "_insert_many", noting_the_thread)
    result = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=10).run(path)
    assert result.imported == 30
    assert writers == ({"MainThread"} if demo_db.is_sqlite else {"legacy-import-writer"})
