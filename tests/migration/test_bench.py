"""The legacy import benchmark runs end to end in smoke mode (no timing asserted: figures only)."""

from __future__ import annotations

import pytest

from tests.helpers.bench import positive, run_bench

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_legacy_import_smoke_on_sqlite_and_postgres() -> None:
    result = run_bench("legacy_import", "--smoke")["benchmarks"]["legacy_import"]
    assert result["rows"] == 500 and result["target_rows"] == 100_000
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        assert figures["imported"] == 500 and figures["rejected"] == 0 and figures["reimport_unchanged"] == 500
        for key in ("seconds", "rows_per_s", "reimport_seconds", "target_rows_seconds"):
            assert positive(figures[key]), (backend, key, figures)
        assert isinstance(figures["meets_target"], bool)
