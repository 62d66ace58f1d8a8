"""The simulated gateway's billing clock (issue 13): renewals, failures, retries, cancellations, pause ends,
tax, the CLI, two processes at once, and the demo's subscriptions. Real SQLite files and PostgreSQL."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.payments.base import CouponSpec, CustomerInfo, PlanSpec
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.lifecycle import EVENT_RETENTION, TaxRateSpec
from clarity_tui.payments.sim_clock import RETRY_RECOVERY, fraction
from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from db.models import Membership, MembershipStatus, SimGatewayObject
from tests.helpers import forked
from tests.helpers.sim_gateway import FUTURE, bodies, member, noon

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400


@pytest.fixture
def gw(db) -> SimulatedGateway:  # noqa: ANN001
    return SimulatedGateway(db)


def obj(db, obj_id: str) -> dict:  # noqa: ANN001
    with db.read() as s:
        return dict(s.get(SimGatewayObject, obj_id).data)


def of(events: list[dict], obj_id: str) -> list[str]:
    return [e["type"] for e in events if e["data"]["object"]["id"] == obj_id]


def invoices_of(db, sub_id: str) -> list[tuple[str, dict]]:  # noqa: ANN001
    with db.read() as s:
        rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "invoice")).all()
        return sorted([(r.id, dict(r.data)) for r in rows if r.data.get("subscription") == sub_id],
                      key=lambda x: x[1]["created"])


def month_after(when: dt.datetime) -> dt.datetime:
    year, month = when.year + (when.month == 12), when.month % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def seed_where(sub_id: str, start: int, want: list[bool]) -> int:
    """A seed whose retries 2, 3, ... of this period succeed exactly as `want` says."""
    for seed in range(10_000):
        if [fraction("retry", seed, sub_id, start, n + 2) < RETRY_RECOVERY for n in range(len(want))] == want:
            return seed
    raise AssertionError("no such seed")


# --- renewals ---------------------------------------------------------------------------------------------
def test_renewal_on_the_trial_end_pays_and_moves_the_period_on(db, gw) -> None:  # noqa: ANN001
    _, pm, sub = member(gw, 3)
    mark = gw.latest_event_id()
    report = gw.advance_clock(4, failure_rate=0.0)
    assert (report.renewals, report.failures, report.retries, report.cancelled) == (1, 0, 0, 0)
    state = gw.retrieve_subscription(sub)
    assert state.status == "active"
    assert state.current_period_start == dt.datetime.fromtimestamp(noon(3), dt.UTC)
    assert state.current_period_end == month_after(state.current_period_start)
    inv = gw.retrieve_invoice(state.latest_invoice_id)
    assert (inv.status, inv.amount_due, inv.amount_paid, inv.attempt_count, inv.billing_reason) == (
        "paid", 1999, 1999, 1, "subscription_cycle")
    assert (inv.period_start, inv.period_end) == (state.current_period_start, state.current_period_end)
    assert inv.next_payment_attempt is None and inv.payment_id and inv.charge_id
    pi = obj(db, inv.payment_id)
    assert (pi["status"], pi["amount"], pi["payment_method"], pi["invoice"]) == ("succeeded", 1999, pm, inv.invoice_id)
    events = bodies(gw, mark)
    assert [e["type"] for e in events] == ["invoice.created", "invoice.finalized", "payment_intent.succeeded",
                                           "invoice.payment_succeeded", "invoice.paid", "customer.subscription.updated"]
    assert all(e["created"] == noon(3) for e in events)  # the clock's time of the renewal
    updated = events[-1]["data"]
    assert updated["object"]["status"] == "active" and updated["object"]["latest_invoice"] == inv.invoice_id
    assert updated["previous_attributes"]["status"] == "trialing"
    assert updated["previous_attributes"]["current_period_end"] == noon(3)
    assert report.events == len(events)
    assert gw.clock_now() >= dt.datetime.now(dt.UTC) + dt.timedelta(days=3, hours=23)
    # Nothing more is billed until the next billing date.
    assert gw.advance_clock(20, failure_rate=0.0).renewals == 0


def test_renewals_follow_the_plan_interval_even_through_short_months(db, gw) -> None:  # noqa: ANN001
    _, _, sub = member(gw, 2, plan=PlanSpec("YEARLY", "Yearly", 19900, interval="year"), key="y")
    gw.advance_clock(3, failure_rate=0.0)
    state = gw.retrieve_subscription(sub)
    assert state.current_period_end == state.current_period_start.replace(year=state.current_period_start.year + 1)
    assert gw.retrieve_invoice(state.latest_invoice_id).amount_paid == 19900


# --- failures and retries ---------------------------------------------------------------------------------
def test_failed_renewal_goes_past_due_and_a_retry_recovers_it(db, gw) -> None:  # noqa: ANN001
    _, pm, sub = member(gw, 2)
    mark = gw.latest_event_id()
    report = gw.advance_clock(2.5, failure_rate=1.0)  # every card fails this renewal
    assert (report.renewals, report.failures) == (1, 1)
    state = gw.retrieve_subscription(sub)
    assert state.status == "past_due"
    period_start = int(state.current_period_start.timestamp())
    assert period_start == noon(2)
    inv = gw.retrieve_invoice(state.latest_invoice_id)
    assert (inv.status, inv.attempt_count, inv.amount_remaining) == ("open", 1, 1999)
    assert inv.next_payment_attempt == dt.datetime.fromtimestamp(noon(2) + 3 * DAY, dt.UTC)
    assert (inv.failure_code, inv.failure_reason) == ("insufficient_funds", "Your card has insufficient funds.")
    assert obj(db, inv.payment_id)["last_payment_error"]["decline_code"] == "insufficient_funds"
    assert [i.invoice_id for i in gw.open_invoices(sub)] == [inv.invoice_id]
    assert of(bodies(gw, mark), inv.invoice_id) == ["invoice.created", "invoice.finalized", "invoice.payment_failed"]
    # The period moved on although the payment failed, as Stripe's does.
    assert state.current_period_end > state.current_period_start
    # Retry 1 (day 3 after) fails, retry 2 (day 8) pays: a seed that says so.
    seed = seed_where(sub, period_start, [False, True])
    mark = gw.latest_event_id()
    report = gw.advance_clock(20, failure_rate=1.0, seed=seed)  # the rate applies to first attempts only
    assert (report.renewals, report.retries, report.recovered, report.cancelled) == (0, 2, 1, 0)
    inv = gw.retrieve_invoice(inv.invoice_id)
    assert (inv.status, inv.attempt_count, inv.next_payment_attempt) == ("paid", 3, None)
    assert inv.paid_at == dt.datetime.fromtimestamp(noon(2) + 8 * DAY, dt.UTC)
    assert gw.retrieve_subscription(sub).status == "active" and gw.open_invoices(sub) == []
    events = bodies(gw, mark)
    assert [(e["type"], e["created"]) for e in events if e["data"]["object"]["id"] in (inv.invoice_id, sub)] == [
        ("invoice.payment_failed", noon(2) + 3 * DAY), ("invoice.payment_succeeded", noon(2) + 8 * DAY),
        ("invoice.paid", noon(2) + 8 * DAY), ("customer.subscription.updated", noon(2) + 8 * DAY)]
    assert events[-1]["data"]["previous_attributes"] == {"status": "past_due"}
    assert obj(db, inv.payment_id)["payment_method"] == pm


def test_declining_card_is_cancelled_after_the_last_retry_and_its_invoice_uncollectible(db, gw) -> None:  # noqa: ANN001
    _, _, sub = member(gw, 1, outcome="charge_decline")  # saves fine, declines when charged
    mark = gw.latest_event_id()
    report = gw.advance_clock(16.5, failure_rate=0.0)
    assert (report.renewals, report.failures, report.retries, report.recovered, report.cancelled) == (1, 1, 3, 0, 1)
    state = gw.retrieve_subscription(sub)
    assert state.status == "canceled" and state.ended_at == state.canceled_at
    assert state.ended_at == dt.datetime.fromtimestamp(noon(1) + 15 * DAY, dt.UTC)  # days 3, 8 and 15
    inv = gw.retrieve_invoice(state.latest_invoice_id)
    assert (inv.status, inv.attempt_count, inv.next_payment_attempt) == ("uncollectible", 4, None)
    assert (inv.failure_code, inv.failure_reason) == ("generic_decline", "Your card was declined.")
    events = bodies(gw, mark)
    assert [(t, c) for t, c in ((e["type"], e["created"]) for e in events)
            if t.startswith(("invoice.payment", "invoice.marked", "customer.subscription"))] == [
        ("invoice.payment_failed", noon(1)), ("customer.subscription.updated", noon(1)),
        ("invoice.payment_failed", noon(1) + 3 * DAY), ("invoice.payment_failed", noon(1) + 8 * DAY),
        ("invoice.payment_failed", noon(1) + 15 * DAY), ("invoice.marked_uncollectible", noon(1) + 15 * DAY),
        ("customer.subscription.deleted", noon(1) + 15 * DAY)]
    deleted = events[-1]["data"]["object"]
    assert deleted["status"] == "canceled" and deleted["cancellation_details"]["reason"] == "payment_failed"
    # Nothing happens to a cancelled subscription afterwards.
    later = gw.advance_clock(40, failure_rate=0.0)
    assert (later.renewals, later.retries, later.events) == (0, 0, 0)


def test_an_invoice_paid_by_hand_is_never_retried(db, gw) -> None:  # noqa: ANN001
    cus, _, sub = member(gw, 1, outcome="charge_decline")
    gw.advance_clock(2, failure_rate=0.0)
    inv_id = gw.retrieve_subscription(sub).latest_invoice_id
    good = gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE), idempotency_key="good")
    paid = gw.pay_open_invoice(sub, good.payment_method_id, idempotency_key="pay")
    assert paid is not None and paid.amount_cents == 1999
    inv = gw.retrieve_invoice(inv_id)
    assert (inv.status, inv.attempt_count, inv.next_payment_attempt, inv.payment_id) == (
        "paid", 2, None, paid.payment_id)
    assert gw.retrieve_subscription(sub).status == "active"
    report = gw.advance_clock(20, failure_rate=0.0)
    assert (report.retries, report.cancelled) == (0, 0)
    assert gw.retrieve_invoice(inv_id).status == "paid" and gw.retrieve_subscription(sub).status == "active"


def test_a_retry_with_a_new_default_card_pays(db, gw) -> None:  # noqa: ANN001
    cus, _, sub = member(gw, 1, outcome="charge_decline")
    gw.advance_clock(2, failure_rate=0.0)
    good = gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE), idempotency_key="good")
    report = gw.advance_clock(3, failure_rate=0.0)
    assert (report.retries, report.recovered) == (1, 1)
    inv = gw.retrieve_invoice(gw.retrieve_subscription(sub).latest_invoice_id)
    assert inv.status == "paid" and obj(db, inv.payment_id)["payment_method"] == good.payment_method_id


def test_an_expired_card_fails_until_the_network_updates_it(db, gw) -> None:  # noqa: ANN001
    cus = gw.ensure_customer(CustomerInfo("C-x"), idempotency_key="x:cus")
    today = dt.date.today()
    pm = gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", today.month, today.year),
                      idempotency_key="x:card").payment_method_id  # expires at the end of this month
    price = gw.sync_plan(PlanSpec("BASIC", "Basic", 1999)).price_id
    first = dt.date(today.year + (today.month == 12), today.month % 12 + 1, 2)  # the 2nd of next month
    sub = gw.create_subscription(cus, price, first_billing=first, idempotency_key="x:sub").subscription_id
    gw.advance_clock((first - today).days + 1, failure_rate=0.0)
    inv = gw.retrieve_invoice(gw.retrieve_subscription(sub).latest_invoice_id)
    assert (inv.status, inv.failure_code, inv.failure_reason) == ("open", "expired_card", "Your card has expired.")
    gw.card_automatically_updated(pm, 12, today.year + 4, last4="1881")
    assert gw.advance_clock(3, failure_rate=0.0).recovered == 1
    assert gw.retrieve_invoice(inv.invoice_id).status == "paid"


# --- pauses and scheduled cancellations ------------------------------------------------------------------------
def test_pause_with_an_end_voids_the_renewal_and_resumes_by_itself(db, gw) -> None:  # noqa: ANN001
    _, _, sub = member(gw, 3)
    gw.pause(sub, idempotency_key="pause", resumes_at=dt.date.today() + dt.timedelta(days=6))
    state = gw.retrieve_subscription(sub)
    assert state.paused and state.pause_resumes_at == dt.datetime.fromtimestamp(noon(6), dt.UTC)
    mark = gw.latest_event_id()
    report = gw.advance_clock(10, failure_rate=1.0)
    assert (report.renewals, report.failures, report.resumed) == (0, 0, 1)
    state = gw.retrieve_subscription(sub)
    assert not state.paused and state.status == "active"
    inv = gw.retrieve_invoice(state.latest_invoice_id)
    assert (inv.status, inv.amount_paid, inv.payment_id) == ("void", 0, None)  # collection paused: nothing charged
    events = bodies(gw, mark)
    assert of(events, inv.invoice_id) == ["invoice.created", "invoice.finalized", "invoice.voided"]
    resumed = [e for e in events if e["type"] == "customer.subscription.updated" and e["created"] == noon(6)]
    assert len(resumed) == 1
    assert resumed[0]["data"]["previous_attributes"] == {"pause_collection": {"behavior": "void",
                                                                              "resumes_at": noon(6)}}
    assert resumed[0]["data"]["object"]["pause_collection"] is None
    # Stripe's paused/resumed events are for status "paused", never for pause_collection.
    assert not [e for e in events if e["type"] in ("customer.subscription.paused", "customer.subscription.resumed")]


def test_cancel_at_period_end_ends_the_subscription_at_the_period_end_with_no_invoice(db, gw) -> None:  # noqa: ANN001
    _, _, sub = member(gw, 5)
    _, _, kept = member(gw, 5, key="kept")
    gw.cancel_at_period_end(sub, idempotency_key="cancel")
    gw.cancel_at_period_end(kept, idempotency_key="cancel-kept")
    gw.keep_subscription(kept, idempotency_key="keep")
    state = gw.retrieve_subscription(sub)
    assert state.cancel_at_period_end and state.cancel_at == dt.datetime.fromtimestamp(noon(5), dt.UTC)
    mark = gw.latest_event_id()
    report = gw.advance_clock(4, failure_rate=0.0)
    assert report.expired == 0 and gw.retrieve_subscription(sub).status == "trialing"
    report = gw.advance_clock(2, failure_rate=0.0)
    assert (report.expired, report.renewals) == (1, 1)  # the kept one renews
    state = gw.retrieve_subscription(sub)
    assert state.status == "canceled" and state.ended_at == dt.datetime.fromtimestamp(noon(5), dt.UTC)
    assert state.latest_invoice_id is None and invoices_of(db, sub) == []
    assert of(bodies(gw, mark), sub) == ["customer.subscription.deleted"]
    assert gw.retrieve_subscription(kept).status == "active"


# --- the failure rate --------------------------------------------------------------------------------------
def test_failure_rate_is_deterministic_per_subscription_and_period(db, gw) -> None:  # noqa: ANN001
    subs = [member(gw, 1 + n % 5, key=f"f{n}")[2] for n in range(24)]
    starts = {sub: int(gw.retrieve_subscription(sub).current_period_end.timestamp()) for sub in subs}
    report = gw.advance_clock(6, failure_rate=0.5, seed=42)
    failed = {sub for sub in subs  # the first attempt failed (a retry may have paid since)
              if [(d["status"], d["attempt_count"]) for _, d in invoices_of(db, sub)] != [("paid", 1)]}
    predicted = {sub for sub in subs if fraction("renewal", 42, sub, starts[sub]) < 0.5}
    assert failed == predicted and report.failures == len(failed) and report.renewals == len(subs)
    assert 0 < len(failed) < len(subs)
    assert predicted != {sub for sub in subs if fraction("renewal", 43, sub, starts[sub]) < 0.5}


def test_failure_rate_zero_and_one(db, gw) -> None:  # noqa: ANN001
    subs = [member(gw, 2, key=f"z{n}")[2] for n in range(6)]
    assert gw.advance_clock(3, failure_rate=0.0).failures == 0
    assert {gw.retrieve_subscription(s).status for s in subs} == {"active"}
    report = gw.advance_clock(31, failure_rate=1.0)  # the next renewals, a month on
    assert report.renewals == report.failures == len(subs)
    assert {gw.retrieve_subscription(s).status for s in subs} == {"past_due"}
    with pytest.raises(ValueError):
        gw.advance_clock(0, failure_rate=0.0)
    with pytest.raises(ValueError):
        gw.advance_clock(1, failure_rate=1.5)


def test_same_seed_and_ids_give_the_same_renewals_on_a_copy_of_the_database(tmp_path, migrated_sqlite_url) -> None:  # noqa: ANN001
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from db.engine import sqlite_path

    original = sqlite_path(migrated_sqlite_url)  # the migrated schema, copied from the session's template
    assert original is not None
    db = open_database(Settings(database_url=migrated_sqlite_url))
    gw = SimulatedGateway(db)
    # Enough subscriptions that "some failed, some did not" holds whatever second they were made in (the
    # failure draw hashes the period's start, which follows the wall clock).
    subs = [member(gw, 1 + n % 4, key=f"d{n}")[2] for n in range(48)]
    db.dispose()  # checkpoints the WAL into the file
    shutil.copy(original, tmp_path / "b.db")
    outcomes = []
    for path in (original, tmp_path / "b.db"):
        copy = open_database(Settings(database_url=f"sqlite:///{path}"))
        other = SimulatedGateway(copy)
        other.advance_clock(40, failure_rate=0.3, seed=7)
        outcomes.append({s: (other.retrieve_subscription(s).status,
                             [(d["status"], d["attempt_count"]) for _, d in invoices_of(copy, s)]) for s in subs})
        copy.dispose()
    assert outcomes[0] == outcomes[1]
    assert len({status for status, _ in outcomes[0].values()}) > 1  # some failed, some did not


# --- tax ------------------------------------------------------------------------------------------------
def test_renewal_invoices_carry_exclusive_and_inclusive_tax(db, gw) -> None:  # noqa: ANN001
    excl = gw.sync_tax_rate(TaxRateSpec("Sales tax", Decimal("8.25"), inclusive=False))
    assert gw.sync_tax_rate(TaxRateSpec("Sales tax", Decimal("8.2500"), inclusive=False)) == excl  # fixed id
    incl = gw.sync_tax_rate(TaxRateSpec("VAT", Decimal("10"), inclusive=True))
    assert incl != excl
    _, _, a = member(gw, 2, key="ex", tax_rate_ids=[excl])
    _, _, b = member(gw, 2, key="in", tax_rate_ids=[incl])
    family = PlanSpec("FAMILY", "Family", 5999, extra_vehicle_price_cents=1500)
    coupon = gw.sync_coupon(CouponSpec("SAVE20", percent_off=20, duration="forever"))
    cus = gw.ensure_customer(CustomerInfo("C-fam"), idempotency_key="fam:cus")
    gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE), idempotency_key="fam:card")
    synced = gw.sync_plan(family)
    c = gw.create_subscription(cus, synced.price_id, first_billing=dt.date.today() + dt.timedelta(days=2),
                               coupon_id=coupon, extra_price_id=synced.extra_price_id, extra_vehicles=2,
                               tax_rate_ids=[excl], idempotency_key="fam:sub").subscription_id
    mark = gw.latest_event_id()
    gw.advance_clock(3, failure_rate=0.0)
    ia = gw.retrieve_invoice(gw.retrieve_subscription(a).latest_invoice_id)
    assert (ia.amount_due, ia.tax_cents, ia.amount_paid) == (2164, 165, 2164)  # 19.99 + 8.25% = 21.64
    ib = gw.retrieve_invoice(gw.retrieve_subscription(b).latest_invoice_id)
    assert (ib.amount_due, ib.tax_cents) == (1999, 182)  # 19.99 holds 10% VAT: 1999 * 10 / 110 = 181.7
    da = obj(db, ia.invoice_id)
    assert da["total_tax_amounts"] == [{"amount": 165, "inclusive": False, "tax_rate": excl, "taxability_reason": None,
                                        "taxable_amount": 1999}]
    assert (da["subtotal"], da["total"], da["tax"]) == (1999, 2164, 165)
    db_ = obj(db, ib.invoice_id)
    assert (db_["subtotal"], db_["total"], db_["total_excluding_tax"], db_["total_tax_amounts"][0]["inclusive"]) == (
        1999, 1999, 1817, True)
    # Plan + 2 extra vehicles - 20% + 8.25%: 5999 + 3000 = 8999; less 1800 = 7199; plus 594 = 7793.
    ic = gw.retrieve_invoice(gw.retrieve_subscription(c).latest_invoice_id)
    dc = obj(db, ic.invoice_id)
    assert [line["amount"] for line in dc["lines"]] == [5999, 3000]
    assert (dc["subtotal"], dc["total_discount_amounts"][0]["amount"], dc["tax"], dc["total"]) == (
        8999, 1800, 594, 7793)
    assert ic.amount_paid == 7793
    paid = [e for e in bodies(gw, mark) if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == ia.invoice_id]
    paid_invoice = paid[0]["data"]["object"]
    assert paid_invoice["tax"] == 165 and paid_invoice["total_tax_amounts"][0]["tax_rate"] == excl
    assert obj(db, a)["default_tax_rates"] == [excl]


# --- the CLI ----------------------------------------------------------------------------------------------------
def run_cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    # The command in a process of its own (`python -m clarity_tui`, the entry point's `main`), forked warm.
    return forked.run(["-m", "clarity_tui", "--db", url, "payments", "clock", "advance", *args], cwd=ROOT,
                      capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_cli_advances_the_clock_and_refuses_bad_input_in_one_line(db, gw) -> None:  # noqa: ANN001
    subs = [member(gw, 2 + n, key=f"c{n}")[2] for n in range(3)]
    gw.advance_clock(0.01, failure_rate=0.0)  # the clock row exists: the CLI's process moves the same clock
    ok = run_cli(db.url, "31")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert lines[0].startswith("Billing clock advanced 31 day(s); the simulated date is now ")
    assert lines[1].startswith("Renewals 3 (failed 0), retries 0 (recovered 0), cancelled 0, expired 0, resumed 0;")
    assert {gw.retrieve_subscription(s).status for s in subs} == {"active"}
    failing = run_cli(db.url, "31", "--json", CLARITY_BILLING__SIMULATED_FAILURE_RATE="1")
    assert failing.returncode == 0, failing.stderr
    report = json.loads(failing.stdout)
    assert (report["renewals"], report["failures"], report["failure_rate"]) == (3, 3, 1.0)
    assert dt.datetime.fromisoformat(report["now"]) == gw.clock_now()
    for bad in ("abc", "0", "-3", "nan", "1e9"):
        out = run_cli(db.url, bad)
        assert out.returncode == 2 and out.stdout == "", (bad, out)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("Error: DAYS must be a number"), (bad, out.stderr)
    stripe = run_cli(db.url, "31", CLARITY_PAYMENTS__GATEWAY="stripe")
    assert stripe.returncode == 2 and stripe.stdout == ""
    assert stripe.stderr.count("\n") == 1
    assert stripe.stderr.startswith("Error: The billing clock belongs to the simulated")
    rate = run_cli(db.url, "1", CLARITY_BILLING__SIMULATED_FAILURE_RATE="2")
    assert rate.returncode == 2 and rate.stderr.count("\n") == 1 and rate.stderr.startswith("Error: ")


# --- two processes at once ------------------------------------------------------------------------------------
CHILD = """
import json, sys
from db.engine import Database
from clarity_tui.payments.simulated import SimulatedGateway
db = Database.from_url(sys.argv[1])
gw = SimulatedGateway(db)
if sys.argv[3] == "hold":  # stop after reading what is due, until the parent says go
    due, first = gw._due, [True]
    def held(until):
        out = due(until)
        if first[0]:
            first[0] = False
            print("due", len(out), flush=True)
            sys.stdin.readline()
        return out
    gw._due = held
else:
    with db.read() as s:
        s.connection()
    print("ready", flush=True)
    sys.stdin.readline()
r = gw.advance_clock(float(sys.argv[2]), failure_rate=0.0, seed=1)
print(json.dumps({"renewals": r.renewals, "events": r.events}), flush=True)
db.dispose()
"""


def child(url: str, days: float, mode: str) -> forked.ForkedProcess:
    return forked.popen(["-c", CHILD, url, str(days), mode], cwd=ROOT, text=True,
                        stdin=forked.PIPE, stdout=forked.PIPE, stderr=forked.PIPE)


def finish(proc: forked.ForkedProcess) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.both_databases
def test_two_processes_advancing_at_once_never_renew_a_period_twice(db, gw) -> None:  # noqa: ANN001
    subs = [member(gw, 0, key=f"p{n}")[2] for n in range(12)]
    now = dt.datetime.now(dt.UTC)
    for n, sub in enumerate(subs):  # every first billing within the next 20 hours
        with db.write() as s:
            row = s.get(SimGatewayObject, sub)
            end = int((now + dt.timedelta(hours=1 + n)).timestamp())
            row.data = {**row.data, "trial_end": end, "current_period_end": end, "billing_cycle_anchor": end}
    # A process that has read what is due waits while another renews everything; then it goes on with
    # its stale list and must find every period already moved on.
    held = child(db.url, 3, "hold")
    assert held.stdout.readline().split() == ["due", str(len(subs))]
    other = finish(child(db.url, 3, "free"))
    assert other["renewals"] == len(subs)
    held.stdin.write("go\n")
    held.stdin.flush()
    assert finish(held)["renewals"] == 0
    # Then two processes leave the start line together, over the next renewals.
    racers = [child(db.url, 31, "free") for _ in range(2)]
    for p in racers:
        assert p.stdout.readline().strip() == "ready"
    for p in racers:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [finish(p) for p in racers]
    # However the two interleaved (or one ran after the other), each period was billed once.
    new = 0
    for sub in subs:
        periods = [d["lines"][0]["period"]["start"] for _, d in invoices_of(db, sub)]
        assert len(periods) >= 2 and len(set(periods)) == len(periods), periods  # one invoice per period
        assert all(d["status"] == "paid" and d["attempt_count"] == 1 for _, d in invoices_of(db, sub))
        new += len(periods) - 1
    assert sum(r["renewals"] for r in results) == new
    # One invoice.paid event per renewal the gateway still keeps: run one after the other, the two racers
    # move the clock 62 days, and events older than the retention window are gone (as at Stripe).
    kept_since = gw.clock_now() - EVENT_RETENTION
    renewed_in_window = sum(1 for sub in subs for _, d in invoices_of(db, sub)[1:]
                            if dt.datetime.fromtimestamp(d["status_transitions"]["paid_at"], dt.UTC) >= kept_since)
    paid = gw.list_events(after=None, types=("invoice.paid",), limit=100).events
    assert renewed_in_window > 0 and len(paid) == renewed_in_window and len({e.object_id for e in paid}) == len(paid)
    with db.read() as s:
        ids = sorted(s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == "event")).all())
    seqs = [int(i.split("_")[2]) for i in ids]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # numbered once each, no gaps, across processes


# --- the demo's memberships ------------------------------------------------------------------------------------
@pytest.mark.both_databases
def test_demo_seed_makes_subscriptions_that_renew(db) -> None:  # noqa: ANN001
    from clarity_tui.seeding.demo import seed_demo
    from db.models import Customer, PaymentMethod

    assert seed_demo(db, customers=40, legacy=0, gateway=True).created
    demo_db, gw = db, SimulatedGateway(db)
    with demo_db.read() as s:
        members = s.exec(select(Membership).order_by(Membership.id)).all()
        customers = {c.id: c for c in s.exec(select(Customer))}
        cards = {p.customer_id: p for p in s.exec(select(PaymentMethod))}
    assert members and all(m.gateway_subscription_id for m in members)
    today = dt.date.today()
    for m in members:
        state = gw.retrieve_subscription(m.gateway_subscription_id)
        assert state.customer_id == customers[m.customer_id].gateway_customer_id
        assert state.metadata["clarity_membership"] == str(m.id)
        if m.status in (MembershipStatus.ACTIVE, MembershipStatus.PAUSED):
            assert state.status == "trialing" and m.paid_through == m.next_billing_on
            assert state.current_period_end.date() == m.next_billing_on
            assert today < m.next_billing_on <= today + dt.timedelta(days=30)
            assert state.paused == (m.status == MembershipStatus.PAUSED)
        elif m.status == MembershipStatus.PAST_DUE:
            (inv,) = gw.open_invoices(m.gateway_subscription_id)
            assert state.status == "past_due" and inv.attempt_count >= 1 and inv.next_payment_attempt
            assert m.paid_through == state.current_period_start.date() < today
        else:
            assert state.status == "canceled"
        if m.customer_id in cards:
            assert gw.retrieve_card(cards[m.customer_id].gateway_token).customer_id == state.customer_id
    renewing = [m for m in members if m.status == MembershipStatus.ACTIVE and m.customer_id in cards]
    assert renewing
    counts_before = gw.counts("subscription")
    assert not seed_demo(demo_db, customers=40, legacy=0, gateway=True).created  # idempotent
    assert gw.counts("subscription") == counts_before
    report = gw.advance_clock(31, failure_rate=0.0)
    assert report.renewals >= len(renewing)
    for m in renewing:
        state = gw.retrieve_subscription(m.gateway_subscription_id)
        inv = gw.retrieve_invoice(state.latest_invoice_id)
        declines = obj(demo_db, cards[m.customer_id].gateway_token)["outcome"] == "charge_decline"
        expected = {("past_due", "open"), ("canceled", "uncollectible")} if declines else {("active", "paid")}
        assert (state.status, inv.status) in expected, m.id
        assert int(state.current_period_start.timestamp()) == noon((m.next_billing_on - today).days)
    cardless = [m for m in members if m.status == MembershipStatus.ACTIVE and m.customer_id not in cards]
    for m in cardless:  # trial ended with no card: paused, as Stripe's missing_payment_method = pause
        assert gw.retrieve_subscription(m.gateway_subscription_id).status == "paused"
