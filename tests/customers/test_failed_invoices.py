"""The record's Membership tab lists the membership's payments, newest first, failed renewals with their
reasons (issue 13 item 4). Rows are made here as the billing sync writes them (test setup)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func
from sqlmodel import select

from clarity_tui.services.membership_payments import MembershipPayments, open_failed_invoices
from db.models import Membership
from db.models_billing import MembershipPayment
from tests.helpers.actors import ATTENDANT
from tests.helpers.customer_record_ui import open_record, rows, to_tab
from tests.helpers.ui import make_app, wait_until

CHICAGO = dt.timezone(dt.timedelta(hours=-6), "CST")


def _at(month: int, day: int, hour: int = 15) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=dt.UTC)


def only_membership(db) -> Membership:  # noqa: ANN001
    """A customer's only membership (the record highlights the first one)."""
    with db.read() as s:
        single = s.exec(select(Membership.customer_id).group_by(Membership.customer_id)
                        .having(func.count(Membership.id) == 1).order_by(Membership.customer_id)).first()
        return s.exec(select(Membership).where(Membership.customer_id == single)).one()


def payment_history(db, m: Membership) -> None:  # noqa: ANN001
    """October's renewal paid; November's failed twice, then recovered; a refund; a dispute."""
    rows = [
        ("renewal", "in_oct", "in_oct", 1999, "paid", None, 1, _at(10, 1)),
        ("renewal_failed", "in_nov#1", "in_nov", 2345, "failed", "Your card has insufficient funds.", 1, _at(11, 1)),
        ("renewal_failed", "in_nov#2", "in_nov", 2345, "failed", "Your card was declined.", 2, _at(11, 4)),
        ("recovered", "in_nov", "in_nov", 2345, "paid", None, 3, _at(11, 6)),
        ("refund", "re_1", "in_nov", 500, "succeeded", None, 0, _at(11, 10)),
        ("dispute", "dp_1", None, 1999, "needs_response", "fraudulent", 0, _at(11, 12, hour=3)),  # Nov 11 in Chicago
    ]
    with db.write() as s:
        for kind, obj, invoice, cents, status, reason, attempt, at in rows:
            s.add(MembershipPayment(membership_id=m.id, customer_id=m.customer_id, kind=kind, gateway_object_id=obj,
                                    invoice_id=invoice, amount_cents=cents, status=status, reason=reason,
                                    attempt=attempt, occurred_at=at))


EXPECTED = [
    ["2026-11-12", "Dispute", "-$19.99", "fraudulent"],
    ["2026-11-10", "Refund", "-$5.00", ""],
    ["2026-11-06", "Recovered", "$23.45", ""],
    ["2026-11-04", "Failed renewal", "$23.45", "Your card was declined."],
    ["2026-11-01", "Failed renewal", "$23.45", "Your card has insufficient funds."],
    ["2026-10-01", "Renewal", "$19.99", ""],
]


def test_history_is_newest_first_in_words_on_the_sites_calendar(demo_db) -> None:  # noqa: ANN001
    m = only_membership(demo_db)
    payment_history(demo_db, m)
    lines = MembershipPayments(demo_db).history(m.id)
    assert [[p.occurred_on.isoformat(), p.kind_words, p.amount, p.reason or ""] for p in lines] == EXPECTED
    chicago = MembershipPayments(demo_db, zone=CHICAGO).history(m.id)
    assert chicago[0].occurred_on == dt.date(2026, 11, 11)  # 03:00 UTC is the evening before in Chicago
    # Recovered: the November invoice is no longer open; a new failure is.
    with demo_db.write() as s:
        s.add(MembershipPayment(membership_id=m.id, customer_id=m.customer_id, kind="renewal_failed",
                                gateway_object_id="in_dec#1", invoice_id="in_dec", amount_cents=2345, status="failed",
                                reason="Your card has expired.", attempt=1, occurred_at=_at(12, 1)))
    with demo_db.read() as s:
        [open_] = open_failed_invoices(s, [m.id])
    assert (open_.invoice_id, open_.reason, open_.amount_cents) == ("in_dec", "Your card has expired.", 2345)


async def test_the_record_lists_failed_invoices_with_their_reasons(settings, demo_db) -> None:  # noqa: ANN001
    m = only_membership(demo_db)
    payment_history(demo_db, m)
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, m.customer_id)
        await to_tab(pilot, "tab-membership")
        await wait_until(pilot, lambda: len(rows(screen, "payments-table")) == len(EXPECTED), "the payments")
        assert rows(screen, "payments-table") == EXPECTED
        table = screen.query_one("#payments-table")
        assert table.region.height >= 4 and table.region.bottom <= 24  # on screen at 80x24, with some rows
