"""Legacy member import speed (issues 6 and 17): rows per second importing a 100,000-row export.

Targets: 100,000 rows in <= 10 s (issue 6), and >= 30,000 rows/s for the first import and for the
re-import alike (issue 17), on SQLite and PostgreSQL. The anchor is measured in the same run: a plain
`csv` + `phonenumbers` + `executemany` pipeline over the same rows into a bare SQLite table (no checks),
so a figure taken on a busy machine can still be read against it.
The export is generated (seeded RNG) in the SiteWatch-style layout the shipped mapping reads:
quoted "Last, First" names, formatted phones, 1-2 plates, MM/DD/YYYY dates, CRLF, a BOM.
A second run of the same file (everything unchanged) is timed too: that is what resuming
an interrupted import costs.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Options, benchmark
from bench._support import scratch_database

TARGET_ROWS = 100_000
TARGET_SECONDS = 10.0
TARGET_ROWS_PER_S = 30_000  # issue 17, first import and re-import
HEADER = ["Member #", "Member Name", "Cell Phone", "Email", "License Plate", "Plate 2", "Vehicle", "Club Plan",
          "Status", "Next Bill Date", "Sign Up Date"]
FIRST = ["Ivana", "José", "Zoë", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sofía", "Chloé", "Ava", "Lucas"]
LAST = ["Zoom", "García", "O'Brien", "Nguyen", "Smith", "Müller", "Johnson", "Brown", "Lee", "Patel", "Kim"]
PLANS = ["Basic Club", "Deluxe Club", "Ultimate Club", "Works Unlimited"]
CARS = ["Silver Toyota Camry", "Blue Honda Civic", "Black Ford F-150", "White Tesla Model 3", "Red Mazda CX-5"]


def write_sample_csv(path: Path, rows: int, seed: int = 11) -> Path:
    """A SiteWatch-style member report with `rows` distinct members."""
    rng = random.Random(seed)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(HEADER)
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            plate = "".join(rng.choice(letters) for _ in range(3)) + f"{i % 10000:04d}"
            plate2 = f"{rng.choice(letters)}{rng.choice(letters)}{i:06d}"[-7:] if rng.random() < 0.2 else ""
            area = rng.choice(["512", "737", "210", "214"])
            phone = f"({area}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
            nb = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2027"
            joined = f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(2015, 2025)}"
            w.writerow([f"SW{100000 + i}", f"{last}, {first}", phone, f"member{i}@example.com", plate, plate2,
                        rng.choice(CARS), rng.choice(PLANS), "Active", nb, joined])
    return path


def plain_pipeline_rows_per_s(path: Path, directory: Path) -> float:
    """The issue's anchor: csv + phonenumbers (parse, validate, E.164) + one executemany into SQLite."""
    return plain_pipeline(path, directory)[0]


def plain_pipeline(path: Path, directory: Path) -> tuple[float, float]:
    """The anchor's rows/s, and the CPU seconds it took (on a shared machine the steadier of the two)."""
    import sqlite3

    import phonenumbers

    started, cpu = time.perf_counter(), time.process_time()
    con = sqlite3.connect(directory / "plain.db")
    con.execute("CREATE TABLE m (legacy_id TEXT PRIMARY KEY, name TEXT, phone TEXT, email TEXT, plate TEXT, "
                "plan TEXT, next_bill TEXT)")
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for r in reader:
            number = phonenumbers.parse(r[2], "US")
            phone = (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                     if phonenumbers.is_valid_number(number) else None)
            rows.append((r[0], r[1], phone, r[3], r[4], r[7], r[9]))
    with con:
        con.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.close()
    seconds = time.perf_counter() - started
    return (len(rows) / seconds if seconds else 0.0), time.process_time() - cpu


@benchmark("legacy_import", "legacy member CSV import: rows/s for 100,000 rows (SQLite and PostgreSQL); re-import")
def run(options: Options) -> dict[str, Any]:
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from clarity_tui.services.legacy import LegacyImporter, load_mapping

    rows = options.pick(full=TARGET_ROWS, quick=TARGET_ROWS, smoke=500)
    out: dict[str, Any] = {"rows": rows, "target_rows": TARGET_ROWS, "target_seconds": TARGET_SECONDS,
                           "target_rows_per_s": TARGET_ROWS_PER_S}
    with tempfile.TemporaryDirectory(prefix="clarity-bench-legacy-") as tmp:
        path = write_sample_csv(Path(tmp) / "members.csv", rows)
        plain, plain_cpu = plain_pipeline(path, Path(tmp))
        out["plain_pipeline_rows_per_s"] = round(plain)
        out["plain_pipeline_cpu_seconds"] = round(plain_cpu, 2)
        for backend in options.backends:
            with scratch_database(backend, options.pg_admin_url, "legacy") as url:
                db = open_database(Settings(database_url=url, terminal_id="bench"))
                try:
                    seed_demo(db, customers=0, legacy=0)
                    importer = LegacyImporter(db, load_mapping("sitewatch"))
                    started, cpu = time.perf_counter(), time.process_time()
                    first = importer.run(path)
                    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
                    # A new importer, as a second `legacy import` run would be (nothing kept from the first).
                    importer = LegacyImporter(db, load_mapping("sitewatch"))
                    started, cpu = time.perf_counter(), time.process_time()
                    again = importer.run(path)
                    again_seconds, again_cpu = time.perf_counter() - started, time.process_time() - cpu
                finally:
                    db.dispose()
            rate = first.imported / seconds if seconds else 0.0
            again_rate = again.read / again_seconds if again_seconds else 0.0
            at_target = TARGET_ROWS / rate if rate else float("inf")
            out[backend] = {
                "seconds": round(seconds, 2), "rows_per_s": round(rate), "imported": first.imported,
                "rejected": first.rejected_count, "reimport_seconds": round(again_seconds, 2),
                "reimport_rows_per_s": round(again_rate), "reimport_unchanged": again.unchanged,
                # This process's CPU time: on a shared machine, wall time also holds the other processes' turns.
                "cpu_seconds": round(cpu_seconds, 2), "reimport_cpu_seconds": round(again_cpu, 2),
                "vs_plain_pipeline": round(rate / plain, 2) if plain else None,
                "reimport_vs_plain_pipeline": round(again_rate / plain, 2) if plain else None,
                "target_rows_seconds": round(at_target, 2),
                "target_rows_seconds_is": "measured" if rows == TARGET_ROWS else "extrapolated",
                "target_rows_per_s": TARGET_ROWS_PER_S,
                "meets_target": at_target <= TARGET_SECONDS and min(rate, again_rate) >= TARGET_ROWS_PER_S,
                "meets_target_issue6_seconds": at_target <= TARGET_SECONDS,
                "meets_target_rows_per_s": rate >= TARGET_ROWS_PER_S,
                "meets_target_reimport_rows_per_s": again_rate >= TARGET_ROWS_PER_S,
            }
    return out
