"""Commissions and single washes in the shift and day reports (issue 18 items 2 and 6), on SQLite and
PostgreSQL: per operator earned, clawed back and net; the single washes sold; the same in the CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from clarity_tui.services.reports import day_report, render_text, shift_report
from db.models import (
    Commission,
    CommissionEntry,
    Operator,
    OperatorShift,
    OrderKind,
    OrderState,
    Plan,
    SalesOrder,
    utcnow,
)
from tests.helpers.actors import MANAGER
from tests.helpers.commissions import operator, refund, sell, seller
from tests.helpers.lanes import Lanes

pytestmark = pytest.mark.both_databases  # reports: the SQL of both databases


def _op_id(db, name: str) -> int:
    with db.read() as s:
        op_id = s.exec(select(Operator.id).where(Operator.name == name)).one()
    assert op_id is not None
    return op_id


def the_day(lanes: Lanes) -> tuple[dt.datetime, int]:
    """Today: Alex sells Basic (earns $5.00) and refunds it in part (the $5.00 is taken back); Morgan's migration
    earned $2.00 at 10:00 (its row written directly); two single washes ($12.00 and $15.00), one cancelled; and a
    commission of Morgan's from yesterday that today's report must not show. Returns (now, Alex's order id)."""
    db = lanes.db
    now = utcnow()
    alex_order = sell(seller(db, operator(db)), lanes.ivana, "BASIC")
    assert refund(db, alex_order, 500).status == "done"
    morgan = _op_id(db, "Morgan Manager")
    today_10 = now.replace(hour=10, minute=0, second=0, microsecond=0)
    with db.write() as s:
        basic = s.exec(select(Plan.id).where(Plan.code == "BASIC")).one()
        orders = [SalesOrder(idempotency_key=f"t:report-{n}", kind=kind, state=state, plan_id=plan,
                             operator_id=morgan, terminal="lane-2-term", due_today_cents=cents, completed_at=at)
                  for n, (kind, state, plan, cents, at) in enumerate((
                      (OrderKind.MIGRATION, OrderState.COMPLETED, basic, 0, today_10),
                      (OrderKind.MIGRATION, OrderState.COMPLETED, basic, 0, today_10 - dt.timedelta(days=1)),
                      (OrderKind.WASH, OrderState.COMPLETED, None, 1200, today_10),
                      (OrderKind.WASH, OrderState.COMPLETED, None, 1500, today_10),
                      (OrderKind.WASH, OrderState.CANCELLED, None, 1800, today_10)))]
        s.add_all(orders)
        s.flush()
        for order, at in ((orders[0], today_10), (orders[1], today_10 - dt.timedelta(days=1))):
            assert order.id is not None
            s.add(Commission(order_id=order.id, operator_id=morgan, kind="migration", entry=CommissionEntry.EARNED,
                             amount_cents=200, at=at))
    return now, alex_order


def test_the_day_report_lists_commissions_per_operator_and_the_single_washes(lanes: Lanes) -> None:
    now, _ = the_day(lanes)
    report = day_report(lanes.db, now.date(), actor=MANAGER)
    assert [(c.operator, c.earned_count, c.earned_cents, c.clawback_count, c.clawback_cents, c.net_cents)
            for c in report.commissions] == [("Alex Attendant", 1, 500, 1, 500, 0), ("Morgan Manager", 1, 200, 0, 0, 200)]
    assert (report.single_washes.count, report.single_washes.amount_cents) == (2, 2700)
    # Washes are not memberships: the sold-by-plan lines have Alex's sale and no "?" plan.
    assert [(x.group, x.count) for x in report.sold_by_plan] == [("Basic Wash Club", 1)]
    assert report.cancelled == 1
    text = render_text(report)
    assert "Single washes sold: 2    taken $27.00" in text
    lines = [" ".join(line.split()) for line in text[text.index("Commissions, by operator:"):].splitlines()]
    assert "Alex Attendant earned $5.00 (1) clawed back $5.00 (1) net $0.00" in lines
    assert "Morgan Manager earned $2.00 (1) clawed back $0.00 (0) net $2.00" in lines


def test_the_csv_has_the_commission_and_single_wash_rows(lanes: Lanes) -> None:
    now, _ = the_day(lanes)
    rows = list(csv.reader(io.StringIO(day_report(lanes.db, now.date(), actor=MANAGER).to_csv())))
    for row in (["single_washes", "single_washes", "2", "27.00"],
                ["commissions_earned", "Alex Attendant", "1", "5.00"],
                ["commissions_clawed_back", "Alex Attendant", "1", "-5.00"],
                ["commissions_net", "Alex Attendant", "1", "0.00"],
                ["commissions_earned", "Morgan Manager", "1", "2.00"],
                ["commissions_net", "Morgan Manager", "1", "2.00"]):
        assert row in rows, row
    # A spreadsheet's SUM over earned and clawed back is the net paid.
    paid = sum(float(r[3]) for r in rows if r[0] in ("commissions_earned", "commissions_clawed_back"))
    assert paid == pytest.approx(2.00)


def test_a_shift_report_shows_only_that_operators_commissions(lanes: Lanes) -> None:
    now, _ = the_day(lanes)
    db = lanes.db
    with db.write() as s:
        shift = OperatorShift(operator_id=_op_id(db, "Alex Attendant"), terminal="lane-1-term",
                              signed_in_at=now - dt.timedelta(days=2), signed_out_at=now + dt.timedelta(minutes=5))
        s.add(shift)
        s.flush()
        shift_id = shift.id
    assert shift_id is not None
    report = shift_report(db, shift_id, actor=MANAGER)
    assert [(c.operator, c.net_cents) for c in report.commissions] == [("Alex Attendant", 0)]
    assert report.single_washes.count == 0  # Morgan's washes were rung up at another terminal


def test_clarity_tui_report_csv_includes_them(lanes: Lanes, db_url: str) -> None:
    now, _ = the_day(lanes)
    result = CliRunner().invoke(cli, ["--db", db_url, "report", "--date", now.date().isoformat(), "--csv", "-"],
                                env={"CLARITY_SITE__TIMEZONE": "UTC"})
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert ["commissions_net", "Morgan Manager", "1", "2.00"] in rows
    assert ["commissions_clawed_back", "Alex Attendant", "1", "-5.00"] in rows
    assert ["single_washes", "single_washes", "2", "27.00"] in rows
