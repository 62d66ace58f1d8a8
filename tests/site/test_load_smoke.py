"""The load benchmark in its smoke mode: eight real terminal processes, SQLite and PostgreSQL.

Counts, never timings: every reported commit is in the database, nothing else is, and no
terminal saw "database is locked" or any other error.
"""

from __future__ import annotations

import pytest

from tests.helpers.bench import run_bench, scratch_databases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_eight_terminals_lose_nothing_and_never_see_a_lock() -> None:
    # Only this benchmark's scratch databases: other benchmarks may run on the same server meanwhile.
    before = scratch_databases("load")
    report = run_bench("load", "--smoke")
    result = report["benchmarks"]["load"]
    assert result["terminals"] == 8 and result["seconds_per_run"] == 2.0
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        for key in ("writes", "sessions", "orders", "writes_per_s", "write_p50_ms", "write_p95_ms"):
            assert key in figures, (backend, key)
        assert figures["sessions"] > 0 and figures["orders"] > 0, figures
        assert figures["write_n"] == figures["writes"] >= figures["sessions"] + figures["orders"]
        assert figures["lost_writes"] == 0 and figures["unreported_rows"] == 0, figures
        assert figures["locked_errors"] == 0 and figures["other_errors"] == 0, figures["error_samples"]
        assert figures["meets_target"] is True
    after = scratch_databases("load")
    assert after <= before  # the benchmark dropped its scratch databases
