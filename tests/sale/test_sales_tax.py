"""Sales tax (issue 13 item 6): the one rule, the sale at the lane (service and Pilot, SQLite),
the report, and the settings that turn it on."""

from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings as hsettings, strategies as st
from sqlmodel import select

from clarity_tui.config import Settings, TaxConfig
from clarity_tui.services import sales_tax
from clarity_tui.services.actor import Actor
from clarity_tui.services.reports import day_report, render_text
from db.models import AuditLog, Role, SalesOrder, SimGatewayObject, utcnow
from tests.helpers.lanes import Lanes
from tests.helpers.sale import EXCLUSIVE, INCLUSIVE, sale_service, sign, with_tax
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of

NONE = TaxConfig()
MANAGER = Actor("Morgan Manager", Role.MANAGER)  # reads the whole day (report.view)


def tax(behavior: str, rate: str, name: str = "Sales tax") -> TaxConfig:
    return TaxConfig(behavior=behavior, rate_percent=Decimal(rate), display_name=name)


# --- the rule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("behavior", "rate", "amount", "expected"), [
    # (tax, total, net)
    ("exclusive", "8.25", 0, (0, 0, 0)),
    ("exclusive", "8.25", 1, (0, 1, 1)),  # 0.0825 of a cent
    ("exclusive", "8.25", 6, (0, 6, 6)),  # 0.495 -> 0
    ("exclusive", "8.25", 7, (1, 8, 7)),  # 0.5775 -> 1
    ("exclusive", "8.25", 1999, (165, 2164, 1999)),  # 164.9175
    ("exclusive", "8.25", 2999, (247, 3246, 2999)),  # 247.4175
    ("exclusive", "25", 2, (1, 3, 2)),  # exactly half a cent: up
    ("exclusive", "5", 10, (1, 11, 10)),  # exactly half a cent: up
    ("exclusive", "50", 1, (1, 2, 1)),  # the highest rate, half a cent: up
    ("exclusive", "0.0001", 10**12, (10**6, 10**12 + 10**6, 10**12)),
    ("exclusive", "8.25", 123_456_789_012, (10_185_185_093, 133_641_974_105, 123_456_789_012)),  # …093.49
    ("inclusive", "8.25", 0, (0, 0, 0)),
    ("inclusive", "8.25", 1, (0, 1, 1)),
    ("inclusive", "8.25", 2999, (229, 2999, 2770)),  # 2999 − 2999/1.0825 = 228.56
    ("inclusive", "8.25", 1999, (152, 1999, 1847)),  # 152.35
    ("inclusive", "20", 3, (1, 3, 2)),  # 3 − 3/1.2 = 0.5 exactly: up
    ("inclusive", "50", 3, (1, 3, 2)),  # 3 − 2 = 1
    ("none", "8.25", 2999, (0, 2999, 2999)),
    ("exclusive", "0", 2999, (0, 2999, 2999)),
    ("inclusive", "0", 2999, (0, 2999, 2999)),
])
def test_the_rule_on_chosen_amounts(behavior: str, rate: str, amount: int, expected: tuple[int, int, int]) -> None:
    got = sales_tax.compute(tax(behavior, rate), amount)
    assert (got.tax_cents, got.total_cents, got.net_cents) == expected


def _oracle(behavior: str, rate: Decimal, amount: int) -> int:
    """The same tax by another road: Decimal at 60 digits, quantized half up."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(amount) * rate / 100 if behavior == "exclusive" else Decimal(amount) * rate / (100 + rate)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


RATES = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
AMOUNTS = st.one_of(st.integers(0, 100), st.integers(0, 10**6), st.integers(0, 10**15))


@hsettings(max_examples=600, deadline=None)
@given(behavior=st.sampled_from(["exclusive", "inclusive"]), rate=RATES, amount=AMOUNTS)
@example(behavior="exclusive", rate=Decimal("8.25"), amount=0)
@example(behavior="inclusive", rate=Decimal("50"), amount=1)
@example(behavior="inclusive", rate=Decimal("8.25"), amount=10**15)
def test_the_rule_for_any_amount_and_rate(behavior: str, rate: Decimal, amount: int) -> None:
    config = tax(behavior, str(rate))
    got = sales_tax.compute(config, amount)
    r = Fraction(rate) / 100
    exact = amount * r if behavior == "exclusive" else amount * r / (1 + r)
    assert got.tax_cents == _oracle(behavior, rate, amount)
    assert abs(got.tax_cents - exact) <= Fraction(1, 2)  # rounded once, to the nearest cent
    if exact - int(exact) == Fraction(1, 2):
        assert got.tax_cents == int(exact) + 1  # halves go up
    assert got.tax_cents >= 0
    if behavior == "exclusive":
        assert (got.net_cents, got.total_cents) == (amount, amount + got.tax_cents)
    else:
        assert got.total_cents == amount and got.net_cents + got.tax_cents == amount and got.net_cents >= 0
    if amount:  # one cent more never lowers the tax
        assert sales_tax.compute(config, amount - 1).tax_cents <= got.tax_cents


@given(amount=AMOUNTS)
def test_no_tax_changes_nothing(amount: int) -> None:
    for config in (None, NONE, tax("exclusive", "0"), tax("none", "9")):
        assert sales_tax.compute(config, amount) == sales_tax.Taxed(0, amount, amount)
        assert (sales_tax.label(config), sales_tax.price_note(config), sales_tax.rate_spec(config)) == ("", "", None)


def test_bad_amounts_are_refused() -> None:
    for bad in (-1, 1.5, "100", True):
        with pytest.raises(ValueError, match="whole number of cents"):
            sales_tax.compute(EXCLUSIVE, bad)  # type: ignore[arg-type]


def test_the_words() -> None:
    assert sales_tax.label(EXCLUSIVE) == "Sales tax 8.25%"
    assert sales_tax.label(INCLUSIVE) == "incl. Sales tax 8.25%"
    assert sales_tax.label(tax("exclusive", "10.0000", "TX state tax")) == "TX state tax 10%"
    assert sales_tax.label(tax("exclusive", "0.0500")) == "Sales tax 0.05%"
    assert (sales_tax.price_note(EXCLUSIVE), sales_tax.price_note(INCLUSIVE)) == (" + tax", " incl. tax")
    assert sales_tax.prices_note(EXCLUSIVE) == "Sales tax 8.25% is added to these prices."
    assert sales_tax.prices_note(INCLUSIVE) == "These prices include Sales tax 8.25%."
    spec = sales_tax.rate_spec(INCLUSIVE)
    assert (spec.display_name, spec.percentage, spec.inclusive) == ("Sales tax", Decimal("8.25"), True)
    assert sales_tax.spec_from_payload(sales_tax.spec_payload(spec)) == spec  # through the outbox's JSON


def test_the_rule_is_headless() -> None:
    import subprocess
    import sys

    code = ("import sys, clarity_tui.services.sales_tax; "
            "sys.exit(1 if any(m == 'textual' or m.startswith('textual.') for m in sys.modules) else 0)")
    # A fresh interpreter, not tests/helpers/forked.py: what a fresh process imports is the point.
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- settings ---------------------------------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARITY_BILLING__TAX__BEHAVIOR", "exclusive")
    monkeypatch.setenv("CLARITY_BILLING__TAX__RATE_PERCENT", "8.25")
    config = Settings().billing.tax
    assert config.applies and sales_tax.label(config) == "Sales tax 8.25%"
    assert sales_tax.compute(config, 2999).total_cents == 3246


@pytest.mark.parametrize(("rate", "says"), [("-1", "greater than or equal to 0"), ("51", "less than or equal to 50"),
                                            ("abc", "valid decimal"), ("8.12345", "4 decimal places")])
def test_a_bad_rate_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path, rate: str, says: str) -> None:  # noqa: ANN001
    from clarity_tui.cli import cli

    monkeypatch.setenv("CLARITY_BILLING__TAX__BEHAVIOR", "exclusive")
    monkeypatch.setenv("CLARITY_BILLING__TAX__RATE_PERCENT", rate)
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "plans", "sync"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "billing.tax.rate_percent" in lines[0] and says in lines[0], lines


# --- the sale at the lane, headless -----------------------------------------------------------------------


def charges(db) -> list[dict]:  # noqa: ANN001
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))
                if r.data.get("status") == "succeeded"]


def test_exclusive_tax_is_added_to_the_charge_after_the_discount(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    service.tax = service.billing.tax = EXCLUSIVE
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "DELUXE")
    # Live while the order is put together: price + tax.
    assert (view.due_today_cents, view.tax_cents, view.tax_label) == (3246, 247, "Sales tax 8.25%")
    assert view.price_text == "$29.99/mo + tax" and view.tax_note == " + tax"
    assert [p.price_label for p in service.plans()][:2] == ["$19.99/mo + tax", "$29.99/mo + tax"]
    assert service.preview_promotion(view.id, "FIRSTMONTH")[1:] == (1000, 2164)  # as typed, tax and all
    view = service.apply_promotion(view.id, "FIRSTMONTH")  # $10 off: the tax is on $19.99
    assert (view.discount_cents, view.tax_cents, view.due_today_cents) == (1000, 165, 2164)
    sign(service, view.id)
    assert service.pay(view.id).ok
    (charge,) = charges(db)
    assert charge["amount"] == 2164 and charge["metadata"]["tax_cents"] == "165"
    with db.read() as s:
        order = s.get(SalesOrder, view.id)
        reviewed = s.exec(select(AuditLog).where(AuditLog.action == "order.reviewed",
                                                 AuditLog.entity_id == str(view.id))).one()
    assert (order.subtotal_cents, order.discount_cents, order.tax_cents, order.due_today_cents) == (2999, 1000, 165, 2164)
    assert reviewed.after["tax_cents"] == 165
    done = service.order(view.id)
    assert (done.tax_cents, done.due_today_cents) == (165, 2164)


def test_inclusive_tax_is_part_of_the_price(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    service.tax = service.billing.tax = INCLUSIVE
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "DELUXE")
    assert (view.due_today_cents, view.tax_cents, view.tax_label) == (2999, 229, "incl. Sales tax 8.25%")
    assert view.price_text == "$29.99/mo incl. tax"
    sign(service, view.id)
    assert service.pay(view.id).ok
    (charge,) = charges(db)
    assert charge["amount"] == 2999 and charge["metadata"]["tax_cents"] == "229"
    with db.read() as s:
        assert s.get(SalesOrder, view.id).tax_cents == 229


def test_without_tax_nothing_changes(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    service.tax = service.billing.tax = NONE
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "DELUXE")
    assert (view.due_today_cents, view.tax_cents, view.tax_label, view.price_text) == (2999, 0, "", "$29.99/mo")
    sign(service, view.id)
    assert service.pay(view.id).ok
    (charge,) = charges(db)
    assert charge["amount"] == 2999 and "tax_cents" not in charge["metadata"]
    with db.read() as s:
        assert s.get(SalesOrder, view.id).tax_cents == 0


def test_an_upgrade_at_the_lane_is_taxed_on_the_prorated_difference(lanes: Lanes) -> None:
    db = lanes.db
    first = sale_service(db)
    first.tax = first.billing.tax = EXCLUSIVE
    view = first.choose_plan(first.open_for_session(lanes.ivana).id, "BASIC")
    sign(first, view.id)
    assert first.pay(view.id).ok
    service = sale_service(db)
    service.tax = service.billing.tax = EXCLUSIVE
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "ULTIMATE")
    # The whole difference (the period was paid today): $20.00 + 8.25% = $21.65.
    assert (view.kind, view.due_today_cents, view.tax_cents) == ("plan_change", 2165, 165)
    view = service.review(view.id)
    assert (view.due_today_cents, view.tax_cents) == (2165, 165)
    sign(service, view.id)
    assert service.pay(view.id).ok
    assert [(c["amount"], c["metadata"].get("tax_cents")) for c in charges(db)] == [(2164, "165"), (2165, "165")]
    with db.read() as s:
        assert (s.get(SalesOrder, view.id).due_today_cents, s.get(SalesOrder, view.id).tax_cents) == (2165, 165)


def test_an_upgrade_from_the_customer_record_is_taxed_too(lanes: Lanes) -> None:
    """A migrated member (nothing charged at migration) upgraded from the record: the prorated difference and
    its tax, said in the plan dialog before it is confirmed, then charged."""
    import datetime as dt

    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.billing import BillingService
    from clarity_tui.services.customers import CustomerService
    from db.models import Membership
    from tests.helpers.actors import ATTENDANT
    from tests.helpers.orders import new_order
    from tests.helpers.cards import reader_card
    from tests.helpers.clock import TODAY

    db = lanes.db
    billing = BillingService(db, SimulatedGateway(db), tax=EXCLUSIVE)
    order_id = new_order(db, "BASIC", customer_number="C100001", kind="migration")
    billing.attach_card_token(order_id, reader_card())
    assert billing.start_migration(order_id, TODAY + dt.timedelta(days=10), today=TODAY).completed
    with db.read() as s:
        m = s.get(Membership, s.get(SalesOrder, order_id).membership_id)
    svc = CustomerService(db, gateway=billing.gateway, today=lambda: TODAY, tax=EXCLUSIVE)
    assert svc.plan_change_preview(m.id, "ULTIMATE") == "upgrade, $7.22 today"  # $6.67 + $0.55
    assert svc.change_plan(ATTENDANT, m.id, m.version, "ULTIMATE") == "upgrade"
    assert [(c["amount"], c["metadata"].get("tax_cents")) for c in charges(db)] == [(722, "55")]
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.kind == "plan_change")).one()
    assert (order.state, order.due_today_cents, order.tax_cents) == ("completed", 722, 55)


def test_a_migration_charges_nothing_today_and_says_its_renewals_are_taxed(legacy) -> None:  # noqa: ANN001
    from clarity_tui.messaging.simulated import SimulatedSms
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.migration import MigrationService
    from tests.helpers.clock import TODAY as MIGRATION_DAY
    from tests.helpers.migration import to_signed

    db = legacy.db
    svc = MigrationService(db, SimulatedGateway(db), Actor(name="Alex Attendant", terminal="lane-1-term"),
                           terminal="lane-1-term", today=lambda: MIGRATION_DAY, sms=SimulatedSms(reply_after=0.0),
                           site_name="Clarity Wash", tax=EXCLUSIVE)
    order_id = to_signed(svc, legacy)
    view = svc.order(order_id)
    assert (view.due_today_cents, view.tax_cents, view.tax_note) == (0, 0, " + tax")
    assert svc.pay(order_id).ok
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        sub = s.get(SimGatewayObject, order.gateway_subscription_id).data
        assert [r for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))] == []
    assert (order.due_today_cents, order.tax_cents) == (0, 0)
    (txr,) = sub["default_tax_rates"]
    assert txr.startswith("txr_")


# --- the sale at the lane, through the screens ------------------------------------------------------------


async def _sell_deluxe(pilot, lanes: Lanes) -> dict[str, str]:  # noqa: ANN001
    """Ivana buys Deluxe on her saved card; what the screens said on the way."""
    app = pilot.app
    seen: dict[str, str] = {}
    await devices_ready(pilot)
    keys = Keys(pilot)
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    seen["plans"] = text_of(app, "#plans-message")
    seen["deluxe"] = " ".join(str(label.content) for label in app.screen.query("#plan-deluxe .plan-price"))
    await keys.press("2")
    await at(pilot, "payment")
    seen["payment"] = text_of(app, "#pay-price")
    await keys.press("enter")
    await at(pilot, "checkout-summary")
    seen["summary"] = text_of(app, "#summary-table")
    await keys.press("enter")
    await at(pilot, "terms")
    await keys.press("f2")
    await at(pilot, "signature")
    await signer_done(pilot)
    await keys.press("f5")
    await at(pilot, "confirmation", "the confirmation")
    seen["confirmation"] = text_of(app, "#confirm-table")
    return seen


def _order(db, session_id: int) -> SalesOrder:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id)).one()


async def test_a_sale_with_exclusive_tax_through_the_screens(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(with_tax(settings, EXCLUSIVE), db)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = await _sell_deluxe(pilot, lanes)
    assert "Sales tax 8.25% is added to these prices." in seen["plans"]
    assert seen["deluxe"] == "$29.99/mo  tier 2 + tax"
    assert "Due today $32.46" in seen["payment"] and "then $29.99/mo + tax" in seen["payment"]
    summary = seen["summary"]
    assert "Price $29.99/mo + tax" in summary and "Tax $2.47 · Sales tax 8.25%" in summary
    assert "Due today $32.46" in summary and "Dec 22, 2026 · $29.99 + tax" in summary
    assert "Tax $2.47 · Sales tax 8.25%" in seen["confirmation"] and "Charged today $32.46" in seen["confirmation"]
    (charge,) = charges(db)
    assert (charge["amount"], charge["metadata"]["tax_cents"]) == (3246, "247")
    order = _order(db, lanes.ivana)
    assert (order.state, order.due_today_cents, order.tax_cents) == ("completed", 3246, 247)
    # The day's report: the lane charges and the tax in them, on screen (text) and in the CSV.
    report = day_report(db, utcnow().date(), actor=MANAGER)
    assert (report.lane_charges.amount_cents, report.tax_collected.count, report.tax_collected.amount_cents) \
        == (3246, 1, 247)
    assert "Lane charges: $32.46 · sales tax collected $2.47 (1 orders) · net $29.99" in render_text(report)
    rows = {(r[0], r[1]): (int(r[2]), r[3]) for r in list(csv.reader(io.StringIO(report.to_csv())))[2:]}
    assert rows[("sales_tax", "lane_charges")] == (1, "32.46")
    assert rows[("sales_tax", "tax_collected")] == (1, "2.47")
    assert rows[("sales_tax", "net_of_tax")] == (1, "29.99")


async def test_a_sale_with_inclusive_tax_through_the_screens(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(with_tax(settings, INCLUSIVE), db)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = await _sell_deluxe(pilot, lanes)
    assert "These prices include Sales tax 8.25%." in seen["plans"] and seen["deluxe"] == "$29.99/mo  tier 2 incl. tax"
    assert "Due today $29.99" in seen["payment"]
    summary = seen["summary"]
    assert "Tax $2.29 · incl. Sales tax 8.25%" in summary and "Due today $29.99" in summary
    assert "Dec 22, 2026 · $29.99 incl. tax" in summary
    assert "Tax $2.29 · incl. Sales tax 8.25%" in seen["confirmation"]
    (charge,) = charges(db)
    assert (charge["amount"], charge["metadata"]["tax_cents"]) == (2999, "229")
    order = _order(db, lanes.ivana)
    assert (order.due_today_cents, order.tax_cents) == (2999, 229)
    report = day_report(db, utcnow().date(), actor=MANAGER)
    assert (report.lane_charges.amount_cents, report.tax_collected.amount_cents) == (2999, 229)


async def test_a_sale_without_tax_shows_no_tax(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(with_tax(settings, NONE), db)
    async with app.run_test(size=(80, 24)) as pilot:
        seen = await _sell_deluxe(pilot, lanes)
    assert all("tax" not in text.lower() for text in seen.values()), seen
    assert _order(db, lanes.ivana).tax_cents == 0 and charges(db)[0]["amount"] == 2999
    report = day_report(db, utcnow().date(), actor=MANAGER)
    assert report.tax_collected.amount_cents == 0 and "sales tax" not in render_text(report)
