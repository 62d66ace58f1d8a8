"""Renewals are money we can see (issue 13 item 3): the day and shift reports, beside the lane sales."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.sim_store import sim_token
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing_sync import BillingSync
from clarity_tui.services.reports import day_report, render_text, shift_report
from db.models import Customer, Operator, OperatorShift, OrderKind, OrderState, Plan, Role, SalesOrder
from db.models_billing import MembershipPayment, PaymentKind
from tests.helpers.billing import make_member

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

MANAGER = Actor("Morgan Manager", Role.MANAGER)  # reads the whole day (report.view)


def _renewal_failure_recovery_and_refund(db, gw, settings) -> MembershipPayment:  # noqa: ANN001
    """On the gateway's clock: day 1 one member renews and one renewal fails; day 2 the failed one is paid
    with a new card and the renewal gets $5 back. Returns the renewal's row."""
    today = dt.date.today()
    paying = make_member(db, gw, first_billing=today + dt.timedelta(days=1))
    declining = make_member(db, gw, first_billing=today + dt.timedelta(days=1), outcome="charge_decline")
    BillingSync(db, gw, settings).run_once()
    gw.advance_clock(2, failure_rate=0.0)
    # The declining member pays the open invoice with a new card; the paying one gets $5 back.
    with db.read() as s:
        cus = s.get(Customer, declining.customer_id).gateway_customer_id
    card = gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", 12, 2031), idempotency_key="t:new-card")
    gw.pay_open_invoice(declining.subscription_id, card.payment_method_id, idempotency_key="t:pay")
    BillingSync(db, gw, settings).run_once()
    with db.read() as s:
        renewal = s.exec(select(MembershipPayment).where(MembershipPayment.kind == PaymentKind.RENEWAL)).one()
    gw.refund(renewal.payment_id, amount_cents=500, idempotency_key="t:refund")
    BillingSync(db, gw, settings).run_once()
    return renewal


def test_the_day_report_shows_renewals_failures_recoveries_and_refunds(db, gw, settings) -> None:  # noqa: ANN001
    renewal = _renewal_failure_recovery_and_refund(db, gw, settings)
    renewal_day = renewal.occurred_at.date()  # the billing date, on the gateway's clock
    lines = {line.group: (line.count, line.amount_cents) for line in day_report(db, renewal_day, actor=MANAGER).billing}
    assert lines == {"renewals": (1, 1999), "failed_renewals": (1, 1999), "recovered": (0, 0), "refunds": (0, 0),
                     "disputes": (0, 0), "renewal_tax": (0, 0)}
    # The next gateway day: the new card paid the open invoice, and the refund.
    report = day_report(db, renewal_day + dt.timedelta(days=1), actor=MANAGER)
    lines = {line.group: (line.count, line.amount_cents) for line in report.billing}
    assert lines == {"renewals": (0, 0), "failed_renewals": (0, 0), "recovered": (1, 1999), "refunds": (1, 500),
                     "disputes": (0, 0), "renewal_tax": (0, 0)}
    text = render_text(report)
    assert "Memberships billed by the gateway (site-wide):" in text
    assert any(line.split()[:2] == ["recovered", "1"] for line in text.splitlines())
    import csv
    import io

    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert ["billing", "recovered", "1", "19.99"] in rows and ["billing", "refunds", "1", "5.00"] in rows
    day = renewal_day
    # Another day shows none of it.
    assert all(line.count == 0 for line in day_report(db, day - dt.timedelta(days=3), actor=MANAGER).billing)



def test_the_tax_in_renewals_is_reported_beside_the_lanes(db, gw, settings) -> None:  # noqa: ANN001
    from decimal import Decimal

    from clarity_tui.payments.lifecycle import TaxRateSpec

    rate = gw.sync_tax_rate(TaxRateSpec("Sales tax", Decimal("8.25"), inclusive=False))
    make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1), tax_rate_ids=(rate,))
    BillingSync(db, gw, settings).run_once()
    gw.advance_clock(2, failure_rate=0.0)
    BillingSync(db, gw, settings).run_once()
    with db.read() as s:
        renewal = s.exec(select(MembershipPayment).where(MembershipPayment.kind == PaymentKind.RENEWAL)).one()
    assert (renewal.amount_cents, renewal.tax_cents) == (1999 + 165, 165)  # 8.25% of 19.99, half up
    lines = {line.group: (line.count, line.amount_cents)
             for line in day_report(db, renewal.occurred_at.date(), actor=MANAGER).billing}
    assert lines["renewal_tax"] == (1, 165) and lines["renewals"] == (1, 2164)


def test_the_shift_report_shows_the_billing_lines_beside_its_lane_sales(db, gw, settings) -> None:  # noqa: ANN001
    renewal = _renewal_failure_recovery_and_refund(db, gw, settings)
    day = renewal.occurred_at.date()
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with db.write() as s:
        plan = s.exec(select(Plan).where(Plan.code == "LIFE")).one()
        alex = Operator(name="Alex Attendant", role=Role.ATTENDANT, pin_hash="x")
        sam = Operator(name="Sam Second", role=Role.ATTENDANT, pin_hash="x")
        s.add_all([alex, sam])
        s.flush()
        # Alex works both gateway days at lane 1; a one-day shift after the first.
        both = OperatorShift(operator_id=alex.id, terminal="lane-1-term", signed_in_at=start,
                             signed_out_at=start + dt.timedelta(days=2))
        second = OperatorShift(operator_id=alex.id, terminal="lane-1-term", signed_in_at=start + dt.timedelta(days=1),
                               signed_out_at=start + dt.timedelta(days=2))
        s.add_all([both, second])
        # Alex's lane sale on the first day; Sam's at another terminal is not Alex's shift.
        for n, (op, terminal, cents) in enumerate(((alex, "lane-1-term", 2999), (sam, "lane-2-term", 1999))):
            s.add(SalesOrder(idempotency_key=f"t:shift-sale-{n}", kind=OrderKind.SALE, state=OrderState.COMPLETED,
                             plan_id=plan.id, operator_id=op.id, terminal=terminal, due_today_cents=cents,
                             subtotal_cents=cents, completed_at=start + dt.timedelta(hours=12)))
        s.flush()
        both_id, second_id = both.id, second.id

    report = shift_report(db, both_id, actor=MANAGER)
    assert report.sold == 1
    assert [(x.group, x.count, x.amount_cents) for x in report.by_operator] == [("Alex Attendant", 1, 2999)]
    lines = {line.group: (line.count, line.amount_cents) for line in report.billing}
    assert lines == {"renewals": (1, 1999), "failed_renewals": (1, 1999), "recovered": (1, 1999), "refunds": (1, 500),
                     "disputes": (0, 0), "renewal_tax": (0, 0)}
    text = render_text(report)
    assert "Memberships sold: 1" in text and "Memberships billed by the gateway (site-wide):" in text
    assert text.index("Memberships sold: 1") < text.index("Memberships billed by the gateway")  # beside the sales
    billed = text[text.index("Memberships billed by the gateway"):].splitlines()
    for shown in ("renewals 1 $19.99", "failed renewals 1 $19.99", "recovered 1 $19.99", "refunds 1 $5.00"):
        assert shown in [" ".join(line.split()) for line in billed], (shown, billed)
    import csv
    import io

    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert ["billing", "renewals", "1", "19.99"] in rows and ["billing", "refunds", "1", "5.00"] in rows

    # Only the shift's own window: the second day has the recovery and the refund, and no lane sale.
    later = shift_report(db, second_id, actor=MANAGER)
    assert later.sold == 0
    lines = {line.group: (line.count, line.amount_cents) for line in later.billing}
    assert lines == {"renewals": (0, 0), "failed_renewals": (0, 0), "recovered": (1, 1999), "refunds": (1, 500),
                     "disputes": (0, 0), "renewal_tax": (0, 0)}
