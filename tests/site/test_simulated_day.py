"""A headless simulated day (issue 18 item 8): `clarity-tui simulate --headless --duration 60` in its own process,
on SQLite and PostgreSQL, produces every figure the issue lists above zero, in the shape of `report --json`."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import run_cli

pytestmark = pytest.mark.both_databases

# The issue's figures: the lane's (item 7's report), the lifecycle's renewals and failures, and churn.
EVERY_FIGURE = ("retail_washes", "member_visits", "limit_refusals", "memberships_sold", "conversion_rate",
                "upsell_credits", "renewals", "renewal_failures", "churn_voluntary", "churn_card_failure")


def test_a_headless_day_produces_every_figure(db_url: str) -> None:
    # The shipped busy_day scenario, by name. The duration is the command's own: it runs the day for 60 s,
    # then prints the figures and exits.
    result = run_cli("--db", db_url, "simulate", "--headless", "--duration", "60", "--scenario", "busy_day",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    zero = [name for name in EVERY_FIGURE if not figures[name]]
    assert zero == [], f"figures at zero: {zero}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert figures["commissions"] and all(cents > 0 for cents in figures["commissions"].values())
    assert figures["sales_by_operator"] == {"Alex Attendant": figures["memberships_sold"]}
    assert figures["upsell_credits"] <= figures["memberships_sold"]
    assert figures["conversion_rate"] == round(figures["memberships_sold"] / figures["retail_washes"], 4)
    assert figures["through"] > figures["day"]  # the billing clock ran ahead: its days are in the figures
    # The same figures as the day report's JSON (added up over the days the run covered).
    report = run_cli("--db", db_url, "report", "--date", figures["day"], "--json")
    assert report.returncode == 0, report.stderr
    assert set(figures) - set(json.loads(report.stdout)) == {"through"}
