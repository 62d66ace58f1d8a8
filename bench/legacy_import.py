"""Legacy member import speed (issue 6): rows per second importing a 100,000-row export.

Target: 100,000 rows in <= 10 s (`clarity-tui legacy import`), on SQLite and PostgreSQL.
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


@benchmark("legacy_import", "legacy member CSV import: rows/s for 100,000 rows (SQLite and PostgreSQL); re-import")
def run(options: Options) -> dict[str, Any]:
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from clarity_tui.services.legacy import LegacyImporter, load_mapping

    rows = options.pick(full=TARGET_ROWS, quick=TARGET_ROWS, smoke=500)
    out: dict[str, Any] = {"rows": rows, "target_rows": TARGET_ROWS, "target_seconds": TARGET_SECONDS}
    with tempfile.TemporaryDirectory(prefix="clarity-bench-legacy-") as tmp:
        path = write_sample_csv(Path(tmp) / "members.csv", rows)
        for backend in options.backends:
            with scratch_database(backend, options.pg_admin_url, "legacy") as url:
                db = open_database(Settings(database_url=url, terminal_id="bench"))
                try:
                    seed_demo(db, customers=0, legacy=0)
                    importer = LegacyImporter(db, load_mapping("sitewatch"))
                    started = time.perf_counter()
                    first = importer.run(path)
                    seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    again = importer.run(path)
                    again_seconds = time.perf_counter() - started
                finally:
                    db.dispose()
            rate = first.imported / seconds if seconds else 0.0
            at_target = TARGET_ROWS / rate if rate else float("inf")
            out[backend] = {
                "seconds": round(seconds, 2), "rows_per_s": round(rate), "imported": first.imported,
                "rejected": first.rejected_count, "reimport_seconds": round(again_seconds, 2),
                "reimport_unchanged": again.unchanged,
                "target_rows_seconds": round(at_target, 2),
                "target_rows_seconds_is": "measured" if rows == TARGET_ROWS else "extrapolated",
                "meets_target": at_target <= TARGET_SECONDS,
            }
    return out
