"""The legacy import's fast paths (issue 17) give what the plain paths gave: the same stored rows whatever
the batch size, rejects per line, a re-import that changes nothing, and a resume after a real SIGKILL.

No timing here: the figures live in `./dev bench legacy_import`.
"""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import select

from clarity_tui.services.identity import InvalidPhone, normalize_phone
from clarity_tui.services.legacy import LegacyImporter, MemberRow, RowProblem, import_phone, load_mapping, split_plates
from clarity_tui.services.legacy.parsers import COMPARED
from db.models import LegacyMember, metadata
from tests.helpers import forked
from tests.helpers.legacy_sample import HEADER, sample, stored
from tests.helpers.migration import write

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
def test_batches_of_any_size_store_what_the_parser_read_and_a_reimport_is_a_no_op(demo_db, tmp_path: Path) -> None:
    path = write(tmp_path, sample(300))
    small = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=7)
    small._load_plans()
    parsed = list(small.rows(path))
    expected = {r.legacy_id: r.fingerprint() for r in parsed if isinstance(r, MemberRow)}
    expected_rejects = [(r.line, r.legacy_id, r.reason) for r in parsed if not isinstance(r, MemberRow)]
    assert expected and expected_rejects  # the sample has both

    first = small.run(path)
    assert (first.imported, first.updated, first.unchanged) == (len(expected), 0, 0)
    assert [(r.line, r.legacy_id, r.reason) for r in first.rejected] == expected_rejects
    assert stored(demo_db) == expected

    again = LegacyImporter(demo_db, load_mapping("sitewatch")).run(path)  # one big batch this time
    assert (again.imported, again.updated, again.unchanged) == (0, 0, len(expected))
    assert [(r.line, r.reason) for r in again.rejected] == [(line, reason) for line, _, reason in expected_rejects]
    assert stored(demo_db) == expected


def test_members_sharing_a_phone_each_get_it_and_a_bad_shared_phone_rejects_each_line(demo_db, tmp_path: Path) -> None:
    text = (HEADER + 'T1,"Doe, Jo",(512) 555-0143,,JOE1,,Basic Club,Active,12/01/2027\r\n'
            'T2,"Doe, Al",(512) 555-0143,,AL2,,Basic Club,Active,12/01/2027\r\n'
            'T3,"Roe, Bo",1.55E+10,,BO3,,Basic Club,Active,12/01/2027\r\n'
            'T4,"Roe, Cy",1.55E+10,,CY4,,Basic Club,Active,12/01/2027\r\n')
    result = LegacyImporter(demo_db, load_mapping("sitewatch")).run(write(tmp_path, text))
    assert result.imported == 2 and [(r.line, r.legacy_id) for r in result.rejected] == [(4, "T3"), (5, "T4")]
    assert result.rejected[0].reason == result.rejected[1].reason and "phone" in result.rejected[0].reason
    assert {k: v[0][COMPARED.index("phone_e164")] for k, v in stored(demo_db).items()} == \
        {"T1": "+15125550143", "T2": "+15125550143"}


def test_a_reimport_compares_raw_by_value_not_by_its_stored_text(demo_db, tmp_path: Path) -> None:
    path = write(tmp_path, sample(20))
    importer = LegacyImporter(demo_db, load_mapping("sitewatch"))
    first = importer.run(path)
    lm = metadata.tables["legacy_member"]
    with demo_db.write() as s:  # the same values in another key order: another text, the same JSON
        for member_id, raw in s.connection().execute(sa_select(lm.c.id, lm.c.raw)).all():
            s.connection().execute(lm.update().where(lm.c.id == member_id).values(raw=dict(reversed(raw.items()))))
    again = importer.run(path)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, first.imported)
    n = int(sorted(stored(demo_db))[0][1:])
    changed = path.read_text("utf-8").replace(f'\nT{n},"Doe{n}, Jo"', f'\nT{n},"Doe{n}, Joan"')
    third = importer.run(write(tmp_path, changed, "changed.csv"))
    assert (third.updated, third.unchanged) == (1, first.imported - 1)


@pytest.mark.parametrize("region", ["US", "CA", "GB"])
def test_the_compiled_phone_check_agrees_with_phonenumbers(region: str) -> None:
    rng = random.Random(region)
    for _ in range(4000):
        digits = str(rng.randint(2, 9)) + "".join(rng.choice("0123456789") for _ in range(9))
        text = rng.choice(["{d}", "({a}) {b}-{c}", "1-{a}-{b}-{c}"]).format(d=digits, a=digits[:3], b=digits[3:6],
                                                                          c=digits[6:])
        assert _outcome(import_phone, text, region) == _outcome(normalize_phone, text, region), text


def _outcome(fn, *args):
    try:
        return fn(*args)
    except (InvalidPhone, RowProblem) as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("cell", ["abc123", "A", "AB", "ABCDEFGHIJ", "ABCDEFGHIJK", "x1", "ÄB12", "AB 12", "a-b-1",
                                  "ABCDEFGHIJKLMNOP", "12"])
def test_a_plain_plate_cell_gives_what_the_full_check_gives(cell: str) -> None:
    # A trailing ";" takes the cell through the full check (it is split first, then validated).
    assert _outcome(split_plates, [cell]) == _outcome(split_plates, [cell + ";"])


KILLED_CHILD = """
import os, signal, sys
from clarity_tui.config import Settings
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.legacy import LegacyImporter, importer, load_mapping

real, calls = importer._insert_many, []
def killing(conn, table, rows):
    calls.append(table.name)
    if len(calls) == 5:  # the third batch's members: after two committed batches (members + plates each)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(conn, table, rows)
importer._insert_many = killing
db = open_database(Settings(database_url=sys.argv[1], terminal_id="kill-test"))
LegacyImporter(db, load_mapping("sitewatch"), batch_size=100).run(sys.argv[2])
"""


def test_an_import_killed_mid_file_resumes_where_it_stopped(demo_db, settings, tmp_path: Path) -> None:
    from bench.legacy_import import write_sample_csv

    path = write_sample_csv(tmp_path / "members.csv", 450)
    killed = forked.run(["-c", KILLED_CHILD, settings.database_url, str(path)], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with demo_db.read() as s:
        assert len(s.exec(select(LegacyMember).where(LegacyMember.legacy_id.like("SW1%"))).all()) == 200
    resumed = LegacyImporter(demo_db, load_mapping("sitewatch"), batch_size=100).run(path)
    assert (resumed.read, resumed.imported, resumed.unchanged, resumed.rejected_count) == (450, 250, 200, 0)
    again = LegacyImporter(demo_db, load_mapping("sitewatch")).run(path)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 450)
    assert json.dumps(again.as_dict()["rejections"]) == "[]"
