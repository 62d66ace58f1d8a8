"""`clarity-tui plans sync` / `payments replay` / `payments check`."""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from db.models import Plan, Promotion
from tests.payments.conftest import API_KEY


import pytest


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch) -> None:  # noqa: ANN001
    # The root conftest points CLARITY_CONFIG at a missing file, which the CLI (rightly) refuses;
    # XDG_CONFIG_HOME is already a temp dir, so the default (absent) file is used instead.
    monkeypatch.delenv("CLARITY_CONFIG")


def test_plans_sync_stripe(localstripe, demo_db, monkeypatch) -> None:
    monkeypatch.setenv("CLARITY_PAYMENTS__GATEWAY", "stripe")
    monkeypatch.setenv("CLARITY_PAYMENTS__STRIPE__API_KEY", API_KEY)
    monkeypatch.setenv("CLARITY_PAYMENTS__STRIPE__API_BASE", localstripe.url)
    result = CliRunner().invoke(cli, ["--db", demo_db.url, "plans", "sync"])
    assert result.exit_code == 0, result.output
    assert "with the stripe gateway" in result.output
    with demo_db.read() as s:
        plans = {p.code: p.gateway_price_id for p in s.exec(select(Plan))}
        coupons = {p.code: p.gateway_coupon_id for p in s.exec(select(Promotion).where(Promotion.active))}
    assert plans["BASIC"] == "clarity-basic-1999-month"
    assert sorted(p["id"] for p in localstripe.list("plans")) == sorted(plans.values())
    assert coupons["SAVE20"] == "clarity-save20"
    # Running it again is harmless.
    assert CliRunner().invoke(cli, ["--db", demo_db.url, "plans", "sync"]).exit_code == 0
    assert len(localstripe.list("plans")) == len(plans)
    check = CliRunner().invoke(cli, ["--db", demo_db.url, "payments", "check"])
    assert check.exit_code == 0 and "reachable" in check.output
    replay = CliRunner().invoke(cli, ["--db", demo_db.url, "payments", "replay"])
    assert replay.exit_code == 0 and "0 step(s) still pending" in replay.output


def test_wrong_key_is_one_clear_line(localstripe, demo_db, monkeypatch) -> None:
    monkeypatch.setenv("CLARITY_PAYMENTS__GATEWAY", "stripe")
    monkeypatch.setenv("CLARITY_PAYMENTS__STRIPE__API_KEY", "oops")
    monkeypatch.setenv("CLARITY_PAYMENTS__STRIPE__API_BASE", localstripe.url)
    result = CliRunner().invoke(cli, ["--db", demo_db.url, "payments", "check"])
    assert result.exit_code == 2 and "api_key" in result.output and "Traceback" not in result.output


def test_plans_sync_simulated(demo_db) -> None:
    result = CliRunner().invoke(cli, ["--db", demo_db.url, "plans", "sync"])
    assert result.exit_code == 0, result.output
    assert "with the simulated gateway" in result.output
