"""The gateway keeps its events 30 days (Stripe's Events API "going back up to 30 days"; the simulated gateway
prunes them after 30 days of its clock). A sync whose last successful pass began longer ago than that, by the
gateway's clock, may have lost events although its cursor is still accepted, in particular the cursor "from
the oldest" that a gateway with no events yet leaves (the demo seed makes none): it reconciles every due
membership instead (issue 13, "An expired or unknown event cursor falls back to reconciling ...").

On both databases: one `clock advance 31` between two syncs must end as 15 + 16 days with a sync between.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from clarity_tui.config import Settings
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.billing_sync import GATEWAY_CLOCK_ROW, OUTGROWN, BillingSync
from clarity_tui.services.bootstrap import open_database
from clarity_tui.seeding.demo import seed_demo
from db.models import Membership
from db.models_billing import BillingSync as SyncRow
from db.models_billing import MembershipPayment, PaymentKind
from tests.helpers.billing import make_member
from tests.helpers.pg import admin_execute, pg_conninfo

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

CUSTOMERS = 60


@pytest.fixture
def other_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path) -> Iterator[Settings]:  # noqa: ANN001
    """A second site database of the same kind as `settings`' (for the same demo run another way)."""
    if settings.database_url.startswith("sqlite"):
        yield Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}", terminal_id="lane-1-term",
                       site={"timezone": "UTC"})
        return
    template = request.getfixturevalue("pg_template")
    drop_later = request.getfixturevalue("drop_pg_database")
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield Settings(database_url=pg_conninfo(name), terminal_id="lane-1-term", site={"timezone": "UTC"})
    drop_later(name)


def _sync(db, gw, settings):  # noqa: ANN001, ANN202
    report = BillingSync(db, gw, settings, terminal="t1").run_once()
    assert report.ok, report.error
    return report


def _demo_run(settings: Settings, steps: list[int]) -> dict:
    """The demo seed, a first sync, then each clock advance (failure rate 0.1, seed 7) followed by a sync."""
    db = open_database(settings)
    try:
        seed_demo(db, customers=CUSTOMERS, legacy=0, gateway=True)
        gw = SimulatedGateway(db)
        _sync(db, gw, settings)
        with db.read() as s:
            first_cursor = s.get(SyncRow, "events").cursor
        reports = []
        for days in steps:
            gw.advance_clock(days, failure_rate=0.1, seed=7)
            reports.append(_sync(db, gw, settings))
        with db.read() as s:
            members = {m.id: (m.status, m.gateway_status, m.paid_through, m.gateway_subscription_id)
                       for m in s.exec(select(Membership).where(col(Membership.gateway_subscription_id).is_not(None)))}
            paid = Counter((p.membership_id, p.kind, p.amount_cents) for p in s.exec(select(MembershipPayment).where(
                col(MembershipPayment.kind).in_((PaymentKind.RENEWAL, PaymentKind.RECOVERED)))))
            clock_row = s.get(SyncRow, GATEWAY_CLOCK_ROW)
            clock_seen = clock_row.last_success_at if clock_row else None
        stale = {mid: (gs, gw.retrieve_subscription(sub).status)
                 for mid, (_st, gs, _pt, sub) in members.items() if gw.retrieve_subscription(sub).status != gs}
        gateway_now = gw.clock_now()
        return {"first_cursor": first_cursor, "reports": reports, "members": members, "paid": paid,
                "stale": stale, "clock_seen": clock_seen, "gateway_now": gateway_now}
    finally:
        db.dispose()


def test_one_advance_past_the_event_window_ends_as_two_advances_within_it(settings: Settings,
                                                                         other_settings: Settings) -> None:
    at_once = _demo_run(settings, [31])
    in_two = _demo_run(other_settings, [15, 16])
    # The demo seed makes no gateway events: the first sync starts "from the oldest" (cursor "").
    assert at_once["first_cursor"] == "" and in_two["first_cursor"] == ""
    # 15 + 16: each pass began within 30 days of the last; no fallback was needed.
    assert [r.fallback for r in in_two["reports"]] == [None, None]
    # Nobody is left on a status the gateway no longer has (before the fix: trialing members that renewed).
    assert at_once["stale"] == {} and in_two["stale"] == {}
    assert at_once["members"] == in_two["members"]
    renewals = sum(n for (_m, kind, _a), n in in_two["paid"].items() if kind == PaymentKind.RENEWAL)
    recovered = sum(n for (_m, kind, _a), n in in_two["paid"].items() if kind == PaymentKind.RECOVERED)
    assert renewals > 0 and recovered > 0
    assert at_once["paid"] == in_two["paid"]  # the same renewal and recovered rows
    # 31 at once: the events of the first day are gone, so every due membership was reconciled.
    (report,) = at_once["reports"]
    assert report.fallback == OUTGROWN and report.reconciled_due > 0
    # The pass's start is remembered on the gateway's clock (31 days ahead of the real one here).
    seen = at_once["clock_seen"]
    seen = seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)
    assert abs(seen - at_once["gateway_now"]) < dt.timedelta(minutes=5)
    assert seen - dt.datetime.now(dt.UTC) > dt.timedelta(days=30)


def test_a_renewal_whose_events_are_gone_is_recorded_from_the_invoices(db, gw, settings: Settings) -> None:  # noqa: ANN001
    """32 days in one advance: the first renewal (an hour in) is neither the latest invoice nor in the 30 days
    of events the gateway keeps; the sync that falls back reads it from the subscription's invoices made
    since its last successful pass. Before: only the latest invoice was read, and one renewal was lost."""
    member = make_member(db, gw, first_billing=gw.clock_now() + dt.timedelta(hours=1))
    _sync(db, gw, settings)
    gw.advance_clock(32, failure_rate=0.0)
    report = _sync(db, gw, settings)
    assert report.fallback == OUTGROWN
    with db.read() as s:
        renewals = s.exec(select(MembershipPayment.invoice_id).where(
            MembershipPayment.membership_id == member.membership_id,
            MembershipPayment.kind == PaymentKind.RENEWAL)).all()
    invoices = gw.invoices_since(member.subscription_id, dt.datetime.now(dt.UTC))
    assert len(invoices) == 2 and {i.status for i in invoices} == {"paid"}  # a month is at most 31 days
    assert sorted(renewals) == sorted(i.invoice_id for i in invoices)
