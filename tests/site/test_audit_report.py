"""Audit trail (service, screen, CLI) and the end-of-shift report (service, screen, CSV, CLI).

The orders are real: sold through the sale service and the simulated gateway (a decline, a
promotion, a sale left pending sync while the gateway is offline). Migrations are made by
another flow: one migrated membership is written as that flow leaves it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.audit_query import AuditFilter, AuditQueryError, parse_since, query
from clarity_tui.services.customers import ContactForm
from clarity_tui.services.operators import OperatorService
from clarity_tui.services.reports import ReportError, day_report, render_text, shift_report
from clarity_tui.services.orders import SaleService
from db.models import Membership, MembershipSource, Operator, OrderKind, OrderState, Plan, Role, SalesOrder, utcnow
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Lanes
from tests.helpers.sale import sign
from tests.helpers.ui import make_app, wait_until

TERMINAL = "lane-1-term"
# The day, anyone's shift and the audit trail are a manager's to read (an attendant's own view:
# tests/site/test_permission_matrix.py).
MANAGER = Actor("Morgan Manager", Role.MANAGER, "office")


def _operator(db, name: str) -> Operator:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Operator).where(Operator.name == name)).one()


@pytest.fixture
def shift_day(lanes: Lanes):  # noqa: F811
    """Alex's shift at lane-1-term: two sales (one with SAVE20), one decline, one sale pending sync;
    plus Morgan's migration at the office."""
    db = lanes.db
    ops = OperatorService(db, TERMINAL)
    signed = ops.sign_in(_operator(db, "Alex Attendant").id, "123456")
    gateway = SimulatedGateway(db)
    sales = SaleService(db, gateway, signed.actor, terminal=TERMINAL, today=lambda: TODAY)
    # 1. Ivana: DELUXE with SAVE20.
    view = sales.open_for_session(lanes.ivana)
    sales.choose_plan(view.id, "DELUXE")
    sales.apply_promotion(view.id, "SAVE20")
    sign(sales, view.id)
    assert sales.pay(view.id).ok
    # 2. A new customer: BASIC, the first card declined, then a good one.
    view = sales.open_for_session(lanes.unknown)
    sales.choose_plan(view.id, "BASIC")
    sales.set_new_customer(view.id, ContactForm("Ali", "Khan", "+1 512 555 2369", ""))
    sales.key_card(view.id, "4000000000000002", "12/30", "123")
    sign(sales, view.id)
    assert not sales.pay(view.id).ok
    sales.key_card(view.id, "4242424242424242", "12/30", "123")
    assert sales.pay(view.id).ok
    # 3. Another new customer, paid while the gateway is unreachable: pending sync.
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent

    sid = SessionService(db).record_plate_read(PlateEvent(plate="OFF-777", lane="Lane 1"), Actor.system("camera"))
    view = sales.open_for_session(sid)
    sales.choose_plan(view.id, "BASIC")
    sales.set_new_customer(view.id, ContactForm("Oda", "Line", "+1 512 555 0199", ""))
    sales.key_card(view.id, "4242424242424242", "12/30", "123")
    sign(sales, view.id)
    gateway.online = False
    assert sales.pay(view.id).pending_sync
    # Morgan's migration at the office, as the migration flow leaves it.
    morgan = _operator(db, "Morgan Manager")
    with db.write() as s:
        plan = s.exec(select(Plan).where(Plan.code == "ULTIMATE")).one()
        m = Membership(customer_id=lanes.member_customer_id, plan_id=plan.id, source=MembershipSource.MIGRATION,
                       started_on=TODAY)
        s.add(m)
        s.flush()
        s.add(SalesOrder(idempotency_key="mig-test-1", kind=OrderKind.MIGRATION, state=OrderState.COMPLETED,
                         plan_id=plan.id, membership_id=m.id, operator_id=morgan.id, terminal="office",
                         completed_at=utcnow(), customer_id=lanes.member_customer_id))
    return db, signed


@pytest.mark.both_databases
def test_shift_report_counts_sales_promotions_declines_and_pending_syncs(shift_day) -> None:  # noqa: ANN001
    db, signed = shift_day
    report = shift_report(db, signed.shift_id, actor=signed.actor)  # Alex's own
    assert report.title == f"Shift {signed.shift_id}: Alex Attendant at {TERMINAL}"
    assert [(x.group, x.count) for x in report.sold_by_plan] == [("Basic Wash Club", 2), ("Deluxe Wash Club", 1)] \
        or sorted((x.group.split()[0], x.count) for x in report.sold_by_plan) == [("Basic", 2), ("Deluxe", 1)]
    assert report.sold == 3 and report.migrated == 0  # Morgan's migration was not this shift
    assert [(x.group, x.count) for x in report.by_operator] == [("Alex Attendant", 3)]
    assert [(x.group, x.count, x.amount_cents) for x in report.promotions] == [("SAVE20", 1, 600)]
    assert [(x.group, x.count) for x in report.declines] == [("Alex Attendant", 1)]
    assert "declined" in report.decline_messages[0].lower()
    assert report.pending_sync_orders == 1 and report.pending_outbox >= 1
    assert sorted((x.group, x.count) for x in report.memberships_by_source) == [("sale", 3)]
    text = render_text(report)
    assert "Memberships sold: 3    migrated: 0    declines: 1" in text and "SAVE20" in text

    day = day_report(db, utcnow().date(), actor=MANAGER)
    assert day.sold == 3 and day.migrated == 1
    assert sorted((x.group, x.count) for x in day.by_operator) == [("Alex Attendant", 3), ("Morgan Manager", 1)]
    assert sorted((x.group, x.count) for x in day.memberships_by_source) == [("migration", 1), ("sale", 3)]
    # A day with nothing in it is empty, not an error.
    assert day_report(db, dt.date(2001, 1, 1), actor=MANAGER).sold == 0
    with pytest.raises(ReportError, match="no shift 99999"):
        shift_report(db, 99999, actor=MANAGER)

    rows = list(csv.reader(io.StringIO(day.to_csv())))
    assert rows[1] == ["section", "group", "count", "amount"]
    body = {(r[0], r[1]): (int(r[2]), r[3]) for r in rows[2:]}
    assert body[("totals", "sold")][0] == 3 and body[("totals", "migrated")][0] == 1
    assert body[("promotions", "SAVE20")] == (1, "6.00")
    assert body[("declines_by_operator", "Alex Attendant")][0] == 1
    assert body[("totals", "pending_sync_orders")][0] == 1


@pytest.mark.both_databases
def test_report_and_audit_on_the_command_line(shift_day, settings, tmp_path) -> None:  # noqa: ANN001
    db, signed = shift_day
    url = settings.resolved_database_url()
    runner = CliRunner()
    out_csv = tmp_path / "shift.csv"
    result = runner.invoke(cli, ["--db", url, "report", "--shift", str(signed.shift_id), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert "Memberships sold: 3" in result.output and f"CSV written to {out_csv}" in result.output
    assert list(csv.reader(out_csv.open()))[1] == ["section", "group", "count", "amount"]
    result = runner.invoke(cli, ["--db", url, "report", "--shift", "99999"])
    assert result.exit_code == 2 and "no shift 99999" in result.output

    result = runner.invoke(cli, ["--db", url, "audit", "--since", "1h", "--action", "operator.", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["action"], r["actor"], r["terminal"]) for r in rows] == [("operator.sign_in", "Alex Attendant", TERMINAL)]
    assert rows[0]["after"]["role"] == "attendant"
    result = runner.invoke(cli, ["--db", url, "audit", "--action", "payment_failed"])
    assert result.exit_code == 0 and "order.payment_failed" in result.output and "Alex Attendant @ lane-1-term" in result.output
    result = runner.invoke(cli, ["--db", url, "audit", "--since", "yesterday-ish"])
    assert result.exit_code == 2 and "is not a time" in result.output


@pytest.mark.both_databases
def test_audit_query_filters(shift_day) -> None:  # noqa: ANN001
    db, _ = shift_day
    everything = query(db, actor=MANAGER)
    assert everything == sorted(everything, key=lambda e: (e.at, e.id), reverse=True)
    assert {e.actor for e in everything} >= {"Alex Attendant", "camera"}
    alex = query(db, AuditFilter(actor="alex"), actor=MANAGER)
    assert alex and all(e.actor == "Alex Attendant" and e.operator_id is not None for e in alex)
    orders = query(db, AuditFilter(entity="sales_order", action="order.completed"), actor=MANAGER)
    assert len(orders) == 2 and all(e.terminal == TERMINAL for e in orders)  # the pending-sync one is not completed
    assert query(db, AuditFilter(since=utcnow() + dt.timedelta(hours=1)), actor=MANAGER) == []
    assert query(db, AuditFilter(actor="100%_nobody"), actor=MANAGER) == []
    now = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    assert parse_since("2h", now) == dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
    assert parse_since("2026-11-20", now) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    with pytest.raises(AuditQueryError):
        parse_since("soon", now)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_audit_shift_and_report_screens_by_key_and_palette(shift_day, settings, tmp_path) -> None:  # noqa: ANN001
    from textual.widgets import DataTable, Input

    from clarity_tui.screens.audit import AuditScreen
    from clarity_tui.screens.report import ReportScreen
    from clarity_tui.screens.shift import ShiftScreen

    db, signed = shift_day
    morgan = _operator(db, "Morgan Manager")
    # The manager at Alex's terminal: reads the trail, the day and Alex's shift (what an attendant sees of
    # them: tests/site/test_permission_matrix.py).
    app = make_app(settings, db, actor=Actor(morgan.name, Role.MANAGER, TERMINAL, morgan.id))
    app.operator_session.shift_id = signed.shift_id  # this terminal's shift, as the PIN pad would have set it
    async with app.run_test(size=(80, 24)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Audit trail", "End-of-shift report", "Operators: who is signed in"} <= set(titles)

        await pilot.press("ctrl+w")
        await wait_until(pilot, lambda: isinstance(app.screen, ShiftScreen) and app.screen.query_one(DataTable).row_count == 1,
                         "who's on")
        row = app.screen.query_one(DataTable).get_row_at(0)
        assert row[0] == "Alex Attendant" and row[2] == f"{TERMINAL} (here)"
        await pilot.press("escape")

        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.query_one(DataTable).row_count > 5,
                         "the audit trail")
        screen = app.screen
        screen.query_one("#f-action", Input).value = "payment_failed"
        await wait_until(pilot, lambda: screen.query_one(DataTable).row_count == 1, "filtered to the decline")
        # The column shows "Alex Attendant @ …" (cut with an ellipsis, issue 14); the detail has it whole.
        assert screen.query_one(DataTable).get_row_at(0)[1].startswith("Alex Attendant @ ")
        screen.query_one(DataTable).move_cursor(row=0)
        await wait_until(pilot, lambda: f"Alex Attendant @ {TERMINAL}" in str(screen.query_one("#audit-detail").render()),
                         "who and where in full")
        screen.query_one("#f-since", Input).focus()
        await pilot.press(*"next week", "enter")
        await wait_until(pilot, lambda: "is not a time" in str(screen.query_one("#audit-detail").render()), "bad date")
        await pilot.press("escape")

        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.report is not None, "report")
        body = str(app.screen.query_one("#report-body").render())
        assert f"Shift {signed.shift_id}: Alex Attendant" in body and "Memberships sold: 3" in body
        await pilot.press("d")
        await wait_until(pilot, lambda: "every terminal" in str(app.screen.query_one("#report-body").render()), "day")
        assert "migrated: 1" in str(app.screen.query_one("#report-body").render())
        await pilot.press("f2")
        note = app.screen.query_one("#report-note")
        await wait_until(pilot, lambda: "CSV written:" in str(note.render()), "the CSV export")
        path = str(note.render()).split("CSV written: ", 1)[1].strip()
        assert list(csv.reader(open(path)))[1] == ["section", "group", "count", "amount"]


@pytest.mark.both_databases
def test_the_audit_command_never_writes_control_characters_to_the_terminal(db, settings) -> None:  # noqa: ANN001
    # Rows written before plates were checked, or by an import: an ESC colour sequence, a bell, a bidi
    # override (U+202E reorders what the reader sees) and a C1 control, in the actor, terminal and values.
    from clarity_tui.services import audit

    hostile = Actor("Eve\x1b[31m\x07", Role.ATTENDANT, "lane\u202e1\x9b")
    with db.write() as s:
        audit.record(s, hostile, "session.plate_read", "vehicle_session", 7,
                     after={"plate": "AB\x1b[2JC123", "note": "zero\u200bwidth"})
    url = settings.resolved_database_url()
    for args in (["audit"], ["audit", "--json"]):
        result = CliRunner().invoke(cli, ["--db", url, *args])
        assert result.exit_code == 0, result.output
        raw = [ch for ch in result.output if (ord(ch) < 0x20 and ch != "\n" and ch != " ") or 0x7f <= ord(ch) <= 0x9f
               or ch in "\u202e\u200b"]
        assert raw == [], args
        assert "Eve" in result.output
    text = CliRunner().invoke(cli, ["--db", url, "audit"]).output
    assert "Eve\\x1b[31m\\x07 @ lane\\u202e1\\x9b" in text
    rows = json.loads(CliRunner().invoke(cli, ["--db", url, "audit", "--json"]).output)
    assert rows[0]["actor"] == "Eve\x1b[31m\x07" and rows[0]["after"]["plate"] == "AB\x1b[2JC123"  # the data itself is intact
