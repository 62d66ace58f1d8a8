"""`clarity-tui plans sync` / `payments replay` / `payments check`."""

from __future__ import annotations

from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from db.models import Plan, Promotion
from tests.helpers.localstripe import API_KEY


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
    # The family plan's extra vehicle has a recurring price of its own (issue 12).
    assert sorted(p["id"] for p in localstripe.list("plans")) == sorted([*plans.values(), "clarity-family-extra-1500-month"])
    assert coupons["SAVE20"] == "clarity-save20"
    # Running it again is harmless.
    assert CliRunner().invoke(cli, ["--db", demo_db.url, "plans", "sync"]).exit_code == 0
    assert len(localstripe.list("plans")) == len(plans) + 1
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


def test_payments_refund_is_a_managers_with_its_own_key_and_never_more_than_paid(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.payments.cards import CardToken
    from clarity_tui.payments.simulated import SimulatedGateway, sim_token
    from clarity_tui.services.billing import BillingService
    from db.models import SalesOrder, SimGatewayObject
    from tests.helpers.orders import new_order

    billing = BillingService(demo_db, SimulatedGateway(demo_db))
    order_id = new_order(demo_db, "BASIC")
    billing.attach_card_token(order_id, CardToken(sim_token("ok"), "visa", "4242", 12, 2030))
    assert billing.start_sale(order_id).completed

    def refund(*args: str, pin: str = "654321"):  # noqa: ANN202
        return CliRunner().invoke(cli, ["--db", demo_db.url, "payments", "refund", str(order_id), *args],
                                  env={"CLARITY_MANAGER_PIN": pin})

    attendant = refund("--amount", "5", "--manager", "Alex Attendant", pin="123456")
    assert attendant.exit_code == 2 and "refund" in attendant.output.lower() and "Traceback" not in attendant.output
    bad = refund("--amount", "five", "--manager", "Morgan Manager")
    assert bad.exit_code == 2 and "write it like 12.50" in bad.output
    too_much = refund("--amount", "999", "--manager", "Morgan Manager")
    assert too_much.exit_code == 2 and "more than was paid" in too_much.output
    wrong_pin = refund("--amount", "5", "--manager", "Morgan Manager", pin="000000")
    assert wrong_pin.exit_code == 2 and "Traceback" not in wrong_pin.output
    ok = refund("--amount", "5.00", "--manager", "Morgan Manager")
    assert ok.exit_code == 0, ok.output
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
        assert order.refunded_cents == 500
        assert s.get(SimGatewayObject, order.gateway_payment_id).data["refunded"] == 500
