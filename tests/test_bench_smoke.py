"""Every benchmark runs end to end in its tiny smoke mode and reports the documented figures.

No timing is asserted (targets are measured by `./dev bench`, never in tests): only that each
figure is there and is a positive number, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bench import positive, run_bench, scratch_databases

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_list_names_every_benchmark() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["startup", "latency", "seed", "search", "load",
                                                                         "legacy_import", "money_race", "billing_sync"]


def test_unknown_benchmark_is_a_clear_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown benchmark(s) nope" in proc.stderr


def test_startup_smoke() -> None:
    report = run_bench("startup", "--smoke")
    assert report["mode"] == "smoke"
    result = report["benchmarks"]["startup"]
    assert result["repetitions"] == 2
    assert "clarity-tui --db URL" in result["path"] and result["lanes"] > 0
    assert result["measured_as"].startswith("spawn -> exit of whole processes")
    for section, event in (("first_paint", "paint"), ("fully_booted", "booted")):
        figures = result[section]
        for key in ("bare_wall_ms", "clarity_wall_ms", "bare_user_cpu_ms", "clarity_user_cpu_ms", "bare_peak_rss_kb",
                    "clarity_peak_rss_kb", f"clarity_spawn_to_{event}_ms"):
            spread = figures[key]
            assert all(positive(spread[k]) for k in ("median", "min", "max")), (section, key)
            assert spread["min"] <= spread["median"] <= spread["max"], (section, key)
        for judged in ("wall", "peak_rss"):
            verdict = figures[judged]
            assert positive(verdict["ratio_median"]) and positive(verdict["target_ratio"]), (section, judged)
            assert verdict["ratio_min"] <= verdict["ratio_median"] <= verdict["ratio_max"], (section, judged)
            assert verdict["meets_target"] == (verdict["ratio_median"] <= verdict["target_ratio"]), (section, judged)
        assert positive(figures["user_cpu_ratio_median"])
    assert [result[s]["wall"]["target_ratio"] for s in ("first_paint", "fully_booted")] == [1.4, 3.0]
    assert [result[s]["peak_rss"]["target_ratio"] for s in ("first_paint", "fully_booted")] == [1.3, 2.2]
    assert isinstance(result["meets_targets"], bool)
    # Events happen in order within the booted runs; the first paint loads none of the database stack.
    booted = result["fully_booted"]
    assert booted["clarity_spawn_to_booted_ms"]["median"] <= booted["clarity_spawn_to_orm_paint_ms"]["median"]
    assert result["first_paint"]["heavy_libraries_loaded"] == []
    assert "sqlalchemy" in booted["heavy_libraries_loaded"]
    assert positive(result["orm_floor"]["peak_rss_kb_median"]) and positive(result["orm_floor"]["ratio_vs_bare"])
    # The ten costliest imports of the Clarity paint child, from `python -X importtime`.
    imports = result["top_imports"]
    assert len(imports) == 10
    assert all(row["module"] and positive(row["cumulative_ms"]) for row in imports)
    assert [row["cumulative_ms"] for row in imports] == sorted((row["cumulative_ms"] for row in imports), reverse=True)


def test_latency_smoke_on_sqlite_and_postgres() -> None:
    before = scratch_databases("latency")
    result = run_bench("latency", "--smoke")["benchmarks"]["latency"]
    assert result["samples_per_backend"] == 3
    assert result["vehicles_on_board"] == 30
    for backend, target in (("sqlite", 50.0), ("postgres", 50.0)):
        figures = result[backend]
        assert figures["n"] == 3 and figures["missed"] == 0, figures
        # Every sample landed on a board holding the 30 vehicles (29 before its arrival).
        assert 29 <= figures["on_board_min"] <= figures["on_board_max"] <= 30, figures
        for key in ("p50_ms", "p95_ms", "min_ms", "max_ms", "mean_ms"):
            assert positive(figures[key]), (backend, key)
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
        assert figures["target_p95_ms"] == target
        assert isinstance(figures["meets_target"], bool)
    assert scratch_databases("latency") <= before  # the benchmark dropped its scratch databases


def test_seed_smoke_on_sqlite_and_postgres() -> None:
    before = scratch_databases("seed")
    result = run_bench("seed", "--smoke")["benchmarks"]["seed"]
    assert result["customers"] == 2000
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        for key in ("seconds", "customers_per_s", "vehicles", "memberships", "payment_methods", "one_million_seconds"):
            assert positive(figures[key]), (backend, key)
        assert figures["one_million_is"] == "extrapolated"
        assert isinstance(figures["meets_target"], bool)
    assert scratch_databases("seed") <= before  # the benchmark dropped its scratch databases


def test_only_the_chosen_backend_runs() -> None:
    result = run_bench("seed", "--smoke", "--backend", "sqlite")["benchmarks"]["seed"]
    assert "sqlite" in result and "postgres" not in result


def test_search_smoke_on_sqlite_and_postgres() -> None:
    before = scratch_databases("search")
    result = run_bench("search", "--smoke")["benchmarks"]["search"]
    assert result["customers"] == 3000 and result["queries"] == 20 and result["naive_queries"] == 5
    assert result["target_p95_ms"] == 5.0 and result["target_speedup"] == 30.0
    assert "run_search" in result["timed"] and "search_json" in result["timed"]
    kinds = {"last_prefix", "full_name", "phone_4", "phone_7", "phone_10", "email_prefix", "customer_number",
             "plate_dash", "plate_space", "plate_misread"}
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        assert figures["database"].startswith(("seeded", "reused")), figures["database"]
        for side, n in (("cold", 20), ("warm", 20), ("naive_like", 5)):
            assert figures[side]["n"] == n, (backend, side)
            for key in ("p50_ms", "p95_ms", "max_ms", "mean_ms"):
                assert positive(figures[side][key]), (backend, side, key)
            assert figures[side]["p50_ms"] <= figures[side]["p95_ms"] <= figures[side]["max_ms"]
        for side in ("cold_by_kind", "warm_by_kind"):
            assert set(figures[side]) == kinds, (backend, side)
            assert all(positive(v["p50_ms"]) and positive(v["p95_ms"]) for v in figures[side].values())
        for key in ("speedup_p50", "speedup_p95", "speedup_same_terms_p50"):
            assert positive(figures[key]), (backend, key)
        # Sampled from the data: exact kinds find their customer at this size.
        for kind in ("full_name", "customer_number", "plate_dash", "plate_space", "phone_10"):
            assert figures["found_rate_by_kind"][kind] == 1.0, (backend, kind)
        for key in ("meets_p95_target_cold", "meets_p95_target_warm", "meets_p95_target", "meets_speedup_target",
                    "meets_speedup_target_on_p95", "meets_target"):
            assert isinstance(figures[key], bool), (backend, key)
    assert scratch_databases("search") <= before  # the benchmark dropped its scratch database


def test_money_race_smoke_on_sqlite_and_postgres() -> None:
    """Correctness, not timing: after the races and the SIGKILLs (and one restart), no charge is
    doubled, lost or stranded, and no car has two open sessions or two current memberships."""
    before = scratch_databases("money_race")
    result = run_bench("money_race", "--smoke")["benchmarks"]["money_race"]
    assert result["pairs"] >= 1 and result["pending_orders"] > 0 and result["crashing_sales"] > 0
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        for key in ("orders", "gateway_charges", "double_charges", "lost_charges", "stranded_charges",
                    "max_open_sessions_per_car", "max_current_memberships_per_car", "gateway_calls",
                    "gateway_calls_per_step", "key_in_use_409s", "replays_per_s"):
            assert key in figures, (backend, key)
        assert positive(figures["orders"]) and positive(figures["gateway_charges"]), backend
        money = {k: figures[k] for k in ("double_charges", "lost_charges", "stranded_charges")}
        assert money == {"double_charges": 0, "lost_charges": 0, "stranded_charges": 0}, (backend, figures["examples"])
        identity = {k: figures[k] for k in ("max_open_sessions_per_car", "max_current_memberships_per_car")}
        assert identity == {"max_open_sessions_per_car": 1, "max_current_memberships_per_car": 1}, (backend, figures)
        assert figures["phases"]["crashes"]["exits"].get("sigkill", 0) > 0, backend  # the crashes happened
    assert scratch_databases("money_race") <= before  # the benchmark dropped its scratch databases


def test_billing_sync_smoke_on_sqlite_and_postgres() -> None:
    result = run_bench("billing_sync", "--smoke")["benchmarks"]["billing_sync"]
    for backend in ("sqlite", "postgres"):
        figures = result[backend]
        assert figures["gateway"]["renewals"] > 0 and figures["events_handled"].get("processed", 0) > 0
        assert figures["idle_pass_s"] > 0 and figures["ratio_sync_to_idle"] is not None
        assert figures["sessions_on_board"] > 0
