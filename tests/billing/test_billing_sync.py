"""The billing sync on the simulated gateway with its clock (issue 13 items 1, 2, 8), on both databases.

The gateway's time moves with `advance_clock`, as Stripe's test clocks do; the sync pulls the events it
made and reconciles each membership from the subscription retrieved fresh.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.payments.errors import GatewayUnavailable
from clarity_tui.payments.lifecycle import HANDLED_EVENT_TYPES, GatewayEvent
from clarity_tui.services.billing_status import billing_status
from clarity_tui.services.billing_sync import BillingSync, apply_due_dates
from clarity_tui.services.entitlement import Standing, entitlement
from db.models import AuditLog, Membership, MembershipStatus, PaymentMethod
from db.models_billing import BillingSync as SyncRow
from db.models_billing import GatewayEvent as EventRow
from db.models_billing import MembershipPayment, PaymentKind
from tests.helpers.billing import make_member

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

TODAY = dt.date.today()


def sync(db, gw, settings):  # noqa: ANN001, ANN201
    report = BillingSync(db, gw, settings, terminal="t1").run_once()
    assert report.ok, report.error
    return report


def membership(db, member):  # noqa: ANN001, ANN201
    with db.read() as s:
        return s.get(Membership, member.membership_id)


def payments(db, member) -> list[tuple[str, int]]:  # noqa: ANN001
    with db.read() as s:
        return [(p.kind, p.amount_cents) for p in s.exec(select(MembershipPayment).where(
            MembershipPayment.membership_id == member.membership_id).order_by(MembershipPayment.id))]


def standing(db, member, today: dt.date) -> Standing:  # noqa: ANN001
    m = membership(db, member)
    return entitlement(m.status, paid_through=m.paid_through, resumes_on=m.resumes_on,
                       cancel_at_period_end=m.cancel_at_period_end, expires_on=m.expires_on, today=today).standing


def test_a_renewal_moves_paid_through_on_and_becomes_a_payment_row(db, gw, settings: Settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=2))
    first = sync(db, gw, settings)
    assert first.fallback == "no cursor yet"  # the first pass reconciles what is due and starts at the newest event
    report = gw.advance_clock(3, failure_rate=0.0)
    assert report.renewals == 1
    second = sync(db, gw, settings)
    assert second.events["processed"] >= 2 and not second.fallback
    m = membership(db, member)
    assert m.status == MembershipStatus.ACTIVE and m.gateway_status == "active"
    assert m.paid_through > TODAY + dt.timedelta(days=27) and m.next_billing_on == m.paid_through
    assert payments(db, member) == [(PaymentKind.RENEWAL, 1999)]
    # A second pass finds nothing new and changes nothing.
    version = m.version
    assert sum(sync(db, gw, settings).events.values()) == 0
    assert membership(db, member).version == version


def test_a_failed_renewal_makes_the_member_past_due_and_a_paid_invoice_recovers_them(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1))
    sync(db, gw, settings)
    assert gw.advance_clock(2, failure_rate=1.0).failures == 1
    sync(db, gw, settings)
    m = membership(db, member)
    assert (m.status, m.gateway_status) == (MembershipStatus.PAST_DUE, "past_due")
    # Paid through the start of the unpaid period: the first billing date.
    assert m.paid_through == TODAY + dt.timedelta(days=1)
    assert standing(db, member, TODAY + dt.timedelta(days=5)) == Standing.PAST_DUE
    with db.read() as s:
        failed = s.exec(select(MembershipPayment).where(MembershipPayment.kind == PaymentKind.RENEWAL_FAILED)).all()
    assert len(failed) == 1 and failed[0].reason and failed[0].amount_cents == 1999
    # The customer pays through the card-update page: the invoice is paid at the gateway.
    invoice = gw.open_invoices(member.subscription_id)[0]
    gw.pay_open_invoice(member.subscription_id, member.card, idempotency_key="t:portal-pay")
    sync(db, gw, settings)
    m = membership(db, member)
    assert m.status == MembershipStatus.ACTIVE and m.paid_through > TODAY + dt.timedelta(days=28)
    assert [k for k, _ in payments(db, member)] == [PaymentKind.RENEWAL_FAILED, PaymentKind.RECOVERED]
    assert invoice.invoice_id in {p.invoice_id for p in _rows(db)}


def _rows(db):  # noqa: ANN001, ANN202
    with db.read() as s:
        return s.exec(select(MembershipPayment)).all()


def test_a_card_that_keeps_failing_is_cancelled_after_the_last_retry(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1), outcome="charge_decline")
    sync(db, gw, settings)
    report = gw.advance_clock(40, failure_rate=0.0)
    assert report.cancelled == 1 and report.retries >= 1
    sync(db, gw, settings)
    m = membership(db, member)
    assert (m.status, m.gateway_status) == (MembershipStatus.CANCELLED, "canceled")
    kinds = [k for k, _ in payments(db, member)]
    assert kinds and set(kinds) == {PaymentKind.RENEWAL_FAILED} and len(kinds) == 1 + report.retries
    assert standing(db, member, TODAY) == Standing.CANCELLED


def test_a_pause_resumes_on_its_date_with_or_without_an_event(db, gw, settings) -> None:  # noqa: ANN001
    a = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=20))
    b = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=20))
    resume = TODAY + dt.timedelta(days=5)
    sync(db, gw, settings)
    for member in (a, b):
        gw.pause(member.subscription_id, resumes_at=resume, idempotency_key=f"t:pause:{member.membership_id}")
    sync(db, gw, settings)
    for member in (a, b):
        m = membership(db, member)
        assert (m.status, m.resumes_on) == (MembershipStatus.PAUSED, resume)
        assert standing(db, member, TODAY) == Standing.PAUSED
    # With no event at all, the lane already sees it on the date, and the date pass stores it.
    assert standing(db, a, resume) == Standing.MEMBER
    assert set(apply_due_dates(db, resume)) == {a.membership_id, b.membership_id}
    assert membership(db, a).status == MembershipStatus.ACTIVE
    # The gateway's own resume arrives later as an event and agrees.
    gw.advance_clock(6, failure_rate=0.0)
    sync(db, gw, settings)
    m = membership(db, b)
    assert (m.status, m.resumes_on, m.gateway_status) == (MembershipStatus.ACTIVE, None, "trialing")


def test_a_cancel_at_period_end_expires_on_that_date(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=3))
    sync(db, gw, settings)
    gw.cancel_at_period_end(member.subscription_id, idempotency_key="t:cancel")
    sync(db, gw, settings)
    m = membership(db, member)
    assert m.cancel_at_period_end and m.expires_on == TODAY + dt.timedelta(days=3)
    assert standing(db, member, TODAY + dt.timedelta(days=2)) == Standing.MEMBER
    assert standing(db, member, TODAY + dt.timedelta(days=3)) == Standing.EXPIRED
    assert apply_due_dates(db, TODAY + dt.timedelta(days=2)) == []
    gw.advance_clock(4, failure_rate=0.0)
    sync(db, gw, settings)
    m = membership(db, member)
    assert (m.status, m.gateway_status) == (MembershipStatus.EXPIRED, "canceled")
    assert payments(db, member) == []  # nothing was billed


def test_events_twice_or_out_of_order_end_in_the_same_state(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1))
    sync(db, gw, settings)
    cursor = gw.latest_event_id()
    gw.advance_clock(2, failure_rate=1.0)  # fails
    gw.pay_open_invoice(member.subscription_id, member.card, idempotency_key="t:late-pay")  # recovered
    events = gw.list_events(after=cursor, types=HANDLED_EVENT_TYPES).events
    assert len(events) >= 4
    syncer = BillingSync(db, gw, settings, terminal="t1")
    # Newest first: each handler still reads the objects as they are now.
    outcomes = [syncer.handle_event(e, source="webhook") for e in reversed(events)]
    assert set(outcomes) == {"processed"}
    state = membership(db, member)
    assert state.status == MembershipStatus.ACTIVE
    rows = payments(db, member)
    assert sorted(k for k, _ in rows) == sorted([PaymentKind.RENEWAL_FAILED, PaymentKind.RECOVERED])
    # Delivered again (the sync after the webhook): no-ops.
    assert {syncer.handle_event(e, source="sync") for e in events} == {"duplicate"}
    assert payments(db, member) == rows and membership(db, member).version == state.version
    with db.read() as s:
        assert len(s.exec(select(EventRow)).all()) == len(events)


def test_an_event_for_an_object_we_do_not_know_is_recorded_and_skipped(db, gw, settings) -> None:  # noqa: ANN001
    syncer = BillingSync(db, gw, settings, terminal="t1")
    now = dt.datetime.now(dt.UTC)
    ghost = GatewayEvent("evt_ghost_1", "customer.subscription.updated", now, "sub_nobody", "subscription")
    assert syncer.handle_event(ghost, source="sync") == "unknown_object"
    # A subscription the gateway has but no membership of ours holds.
    stranger = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=9))
    with db.write() as s:
        s.get(Membership, stranger.membership_id).gateway_subscription_id = None
    other = GatewayEvent("evt_ghost_2", "customer.subscription.updated", now, stranger.subscription_id, "subscription")
    assert syncer.handle_event(other, source="sync") == "unknown_object"
    odd = GatewayEvent("evt_ghost_3", "customer.created", now, "cus_x", "customer")
    assert syncer.handle_event(odd, source="webhook") == "ignored"
    with db.read() as s:
        rows = {r.id: r.outcome for r in s.exec(select(EventRow))}
    assert rows == {"evt_ghost_1": "unknown_object", "evt_ghost_2": "unknown_object", "evt_ghost_3": "ignored"}
    assert billing_status(db, settings)["unknown_events"] == 2


def test_an_expired_cursor_falls_back_to_reconciling_every_due_membership(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1))
    sync(db, gw, settings)
    gw.advance_clock(2, failure_rate=1.0)
    with db.write() as s:
        s.get(SyncRow, "events").cursor = "evt_pruned_long_ago"
        # Our row still says paid through the first billing date: due, so it is reconciled.
    report = sync(db, gw, settings)
    assert report.fallback == "the cursor expired at the gateway" and report.reconciled_due >= 1
    assert membership(db, member).status == MembershipStatus.PAST_DUE
    assert report.cursor == gw.latest_event_id()


def test_a_gateway_outage_keeps_the_last_known_state_and_the_status_goes_stale(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY - dt.timedelta(days=10))
    sync(db, gw, settings)
    before = membership(db, member)
    gw.online = False
    report = BillingSync(db, gw, settings, terminal="t1").run_once()
    assert report.error and "reach" in report.error.lower() or isinstance(report.error, str)
    after = membership(db, member)
    assert (after.status, after.paid_through, after.version) == (before.status, before.paid_through, before.version)
    with db.write() as s:  # the last success was long ago
        s.get(SyncRow, "events").last_success_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=7)
    status = billing_status(db, settings)
    assert status["stale"] is True and status["last_error"]
    assert status["sync_lag_seconds"] > 6 * 3600


def test_a_stale_sync_fails_closed_after_the_grace(db, gw, settings) -> None:  # noqa: ANN001
    """The gateway renews the member, but no sync succeeds after: nothing moves paid_through on. By the
    gateway's clock the member stays MEMBER inside the grace (3 days) and turns PAST DUE the day after,
    while the status says the sync is stale (no success for longer than the set hours)."""
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1))
    sync(db, gw, settings)
    assert membership(db, member).paid_through == TODAY + dt.timedelta(days=1)

    def down_for_a_pass() -> dict:  # the Events API cannot be reached: the pass fails, the status judges it
        gw.online = False
        try:
            report = BillingSync(db, gw, settings, terminal="t1").run_once()
        finally:
            gw.online = True
        assert not report.ok and report.error
        return billing_status(db, settings, now=gw.clock_now())

    assert gw.advance_clock(4, failure_rate=0.0).renewals == 1  # paid at the gateway on day 1, never reported
    today = gw.clock_now().date()
    assert today == TODAY + dt.timedelta(days=4)
    status = down_for_a_pass()
    hours = settings.billing.sync_stale_after_hours
    assert status["stale"] is True and status["last_error"] and status["sync_lag_seconds"] > hours * 3600
    assert (status["members"]["active"], status["members"]["past_due"]) == (1, 0)
    assert standing(db, member, today) == Standing.MEMBER  # paid through day 1, plus 3 days of grace
    assert membership(db, member).paid_through == TODAY + dt.timedelta(days=1)

    gw.advance_clock(1, failure_rate=0.0)
    today = gw.clock_now().date()
    status = down_for_a_pass()
    assert status["stale"] is True
    assert (status["members"]["active"], status["members"]["past_due"]) == (0, 1)  # fails closed
    m = membership(db, member)
    judged = entitlement(m.status, paid_through=m.paid_through, resumes_on=m.resumes_on,
                         cancel_at_period_end=m.cancel_at_period_end, expires_on=m.expires_on, today=today)
    assert (judged.standing, judged.days_overdue) == (Standing.PAST_DUE, 4)

    # The sync comes back: the renewal it missed makes the member MEMBER again.
    sync(db, gw, settings)
    assert standing(db, member, today) == Standing.MEMBER
    assert membership(db, member).paid_through > today
    assert [kind for kind, _ in payments(db, member)] == [PaymentKind.RENEWAL]


def test_a_card_the_network_updated_or_detached_updates_our_card_row(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=9))
    sync(db, gw, settings)
    gw.card_automatically_updated(member.card, 3, 2031, last4="1111")
    sync(db, gw, settings)
    with db.read() as s:
        pm = s.exec(select(PaymentMethod).where(PaymentMethod.gateway_token == member.card)).one()
    assert (pm.last4, pm.exp_month, pm.exp_year, pm.detached_at) == ("1111", 3, 2031, None)
    gw.detach_card(member.card, idempotency_key="t:detach")
    sync(db, gw, settings)
    with db.read() as s:
        pm = s.exec(select(PaymentMethod).where(PaymentMethod.gateway_token == member.card)).one()
        audits = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity == "payment_method"))]
    assert pm.detached_at is not None and not pm.is_default and audits.count("card.synced") == 2


def test_refunds_and_disputes_become_payment_rows(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1))
    sync(db, gw, settings)
    gw.advance_clock(2, failure_rate=0.0)
    sync(db, gw, settings)
    paid = next(p for p in _rows(db) if p.kind == PaymentKind.RENEWAL)
    gw.refund(paid.payment_id, amount_cents=500, idempotency_key="t:refund")
    gw.open_dispute(paid.payment_id, "fraudulent")
    sync(db, gw, settings)
    rows = payments(db, member)
    assert (PaymentKind.REFUND, 500) in rows
    assert [a for k, a in rows if k == PaymentKind.DISPUTE] == [gw.retrieve_dispute(_dispute_id(db)).amount]
    with db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "payment.disputed")).first() is not None


def _dispute_id(db) -> str:  # noqa: ANN001
    return next(p.gateway_object_id for p in _rows(db) if p.kind == PaymentKind.DISPUTE)


def test_the_status_counts_members_by_standing_and_payments_by_kind(db, gw, settings) -> None:  # noqa: ANN001
    members = [make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1 + i)) for i in range(6)]
    decline = make_member(db, gw, first_billing=TODAY + dt.timedelta(days=2), outcome="charge_decline")
    sync(db, gw, settings)
    gw.advance_clock(10, failure_rate=0.0)
    sync(db, gw, settings)
    status = billing_status(db, settings)
    assert status["payments"]["renewals"] == len(members)
    assert status["payments"]["failed_renewals"] >= 1
    assert status["members"]["past_due"] == 1 and status["members"]["active"] == len(members)
    assert status["last_event"]["id"] == gw.latest_event_id() and status["sync_lag_seconds"] >= 0
    assert membership(db, decline).status == MembershipStatus.PAST_DUE


def test_an_outage_mid_sync_keeps_the_cursor_on_the_last_event_handled(db, gw, settings) -> None:  # noqa: ANN001
    members = [make_member(db, gw, first_billing=TODAY + dt.timedelta(days=1)) for _ in range(3)]
    sync(db, gw, settings)
    gw.advance_clock(2, failure_rate=0.0)

    class DropsMidway(type(gw)):
        calls = 0

        def retrieve_invoice(self, invoice_id):  # noqa: ANN001, ANN202
            DropsMidway.calls += 1
            if DropsMidway.calls == 2:
                raise GatewayUnavailable("The network dropped.")
            return super().retrieve_invoice(invoice_id)

    report = BillingSync(db, DropsMidway(db), settings, terminal="t1").run_once()
    assert report.error
    with db.read() as s:
        handled = len(s.exec(select(EventRow)).all())
        cursor = s.get(SyncRow, "events").cursor
    assert handled >= 1 and cursor is not None
    sync(db, gw, settings)  # the network is back: the rest, nothing twice
    assert sorted(len(payments(db, m)) for m in members) == [1, 1, 1]
