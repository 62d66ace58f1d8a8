"""Breaking the membership lifecycle (issue 13) with real processes and real faults, on SQLite and PostgreSQL.

- SIGKILL at every step of a sync pass (a child process kills itself at step k, for every k of a clean
  run's trace), then a fresh pass: the database ends exactly as a clean run leaves it.
- Races with real processes: the webhook receiver and the sync on the same event; N processes on one
  event id; a pass that loses its leadership mid-way (a lease that ran out, a lock connection that died).
- Events out of order, twice, or missing, over many shuffles.
- Bad input: unknown objects, unhandled types, malformed webhook bodies, missing dates, zero and void
  invoices, a subscription back from canceled, day boundaries and time zones, a gateway outage at the
  k-th call.
- A full or read-only SQLite database during a pass.

The oracle for "a clean run" is the same database cloned before the pass (SQLite's backup API;
PostgreSQL's CREATE DATABASE ... TEMPLATE), so ids, times and the gateway's state are identical.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.payments.errors import GatewayUnavailable
from clarity_tui.payments.lifecycle import (
    HANDLED_EVENT_TYPES,
    GatewayEvent,
    SubscriptionState,
    UnknownObject,
)
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services import billing_sync
from clarity_tui.services.billing_status import billing_status
from clarity_tui.services.billing_sync import PG_LOCK_ID, BillingSync
from clarity_tui.sitetime import stored_utc
from db.engine import Database
from db.models import AuditLog, Membership, MembershipStatus, PaymentMethod
from db.models_billing import BillingSync as SyncRow
from db.models_billing import GatewayEvent as EventRow
from db.models_billing import MembershipPayment, PaymentKind
from tests.helpers import forked
from tests.helpers.billing import Member, make_member
from tests.helpers.pg import admin_execute, pg_conninfo
from tests.helpers.processes import wait_for_file

CHILD = Path(__file__).with_name("adversary_lifecycle_child.py")
ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date.today()
D = dt.timedelta


# --- processes ------------------------------------------------------------------------------------------------

def spawn(ctrl: Path, **args: Any) -> forked.ForkedProcess:
    """One job in a real process of its own (killed for real), forked from the warm fork server
    (tests/helpers/forked.py) rather than paying the imports each time."""
    ctrl.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return forked.popen([str(CHILD), str(ctrl), json.dumps(args)], stdout=forked.PIPE, stderr=forked.PIPE,
                        text=True, env=env)


def finish(proc: forked.ForkedProcess) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return json.loads(out.strip().splitlines()[-1])


def was_killed(proc: forked.ForkedProcess, what: object = "") -> None:
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{what} not killed (exit {proc.returncode}): {err}"


def trace(ctrl: Path) -> list[str]:
    return (ctrl / "trace").read_text().splitlines()


# --- databases ------------------------------------------------------------------------------------------------

class Clones:
    """Copies of a database as it is now (the gateway's state included: it lives in the same database)."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.sqlite = url.startswith("sqlite")
        self.made: list[str] = []

    def make(self, db: Database, n: int = 1) -> list[str]:
        urls = []
        if self.sqlite:
            src = sqlite3.connect(make_url(self.url).database)
            try:
                for _ in range(n):
                    path = self.tmp / f"clone-{uuid.uuid4().hex[:8]}.db"
                    dst = sqlite3.connect(path)
                    src.backup(dst)
                    dst.close()
                    urls.append(f"sqlite:///{path}")
            finally:
                src.close()
            return urls
        db.dispose()  # CREATE DATABASE ... TEMPLATE needs the source to have no connections
        source = make_url(self.url).database
        names = [f"clarity_c_{uuid.uuid4().hex[:10]}" for _ in range(n)]
        self.made += names
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda name: admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'), names))
        return [pg_conninfo(name) for name in names]

    def drop(self, drop_later: Callable[[str], None]) -> None:
        for name in self.made:
            drop_later(name)


@pytest.fixture
def clones(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Clones]:
    c = Clones(db_url, tmp_path)
    drop_later = None if c.sqlite else request.getfixturevalue("drop_pg_database")
    yield c
    if drop_later is not None:
        c.drop(drop_later)


@contextmanager
def opened(url: str) -> Iterator[Database]:
    database = Database.from_url(url)
    try:
        yield database
    finally:
        database.dispose()


def site(url: str, zone: str = "UTC") -> Settings:
    return Settings(database_url=url, terminal_id="lane-1-term", site={"timezone": zone})


def state(db: Database) -> dict[str, Any]:
    """Everything the lifecycle writes, in a comparable form (no wall-clock stamps of our own)."""
    with db.read() as s:
        memberships = [(m.id, m.status, m.paid_through, m.gateway_status, m.resumes_on, m.cancel_at_period_end,
                        m.expires_on, m.next_billing_on, m.version) for m in s.exec(select(Membership).order_by(Membership.id))]
        payments = sorted((p.membership_id, p.customer_id, p.kind, p.gateway_object_id, p.invoice_id, p.payment_id,
                           p.amount_cents, p.tax_cents, p.status, p.reason, p.attempt, stored_utc(p.occurred_at))
                          for p in s.exec(select(MembershipPayment)))
        events = sorted((e.id, e.type, e.object_id, e.outcome, e.detail) for e in s.exec(select(EventRow)))
        row = s.get(SyncRow, "events")
        cards = sorted((pm.id, pm.last4, pm.exp_month, pm.exp_year, pm.detached_at is not None, pm.is_default)
                       for pm in s.exec(select(PaymentMethod)))
        audits = sorted((a.action, a.entity, a.entity_id, json.dumps(a.before, sort_keys=True, default=str),
                         json.dumps(a.after, sort_keys=True, default=str))
                        for a in s.exec(select(AuditLog).where(AuditLog.actor == "billing sync")))
    return {"memberships": memberships, "payments": payments, "events": events, "cards": cards, "audits": audits,
            "cursor": row.cursor if row else None, "last_event_id": row.last_event_id if row else None}


def pass_until_leading(db: Database, gw: Any, settings: Settings) -> billing_sync.SyncReport:
    """A pass that leads. A killed leader's PostgreSQL backend ends (and its advisory lock with it) a moment
    after the process: until then the pass is refused. Polls that condition; asserts on no time."""
    for _ in range(2000):
        report = BillingSync(db, gw, settings, terminal="recover").run_once()
        if report.leader:
            return report
        time.sleep(0.005)
    raise AssertionError("the dead leader's lock never went away")


# --- scenarios ------------------------------------------------------------------------------------------------

def rich_scenario(db: Database, gw: SimulatedGateway, settings: Settings, *, first_pass: bool = True,
                  extra: int = 0) -> dict[str, Member]:
    """Renewals, a failure paid by hand, a declining card retried, a cancel at period end, a pause, a refund,
    a dispute and a card the network updated: about 17 handled events since the cursor (and two more for each
    of `extra` members who simply renew)."""
    members = {**{f"extra{i}": make_member(db, gw, first_billing=TODAY + D(1)) for i in range(extra)},
        "ok": make_member(db, gw, first_billing=TODAY + D(1)),
        "flaky": make_member(db, gw, first_billing=TODAY + D(1)),
        "decline": make_member(db, gw, first_billing=TODAY + D(1), outcome="charge_decline"),
        "leaving": make_member(db, gw, first_billing=TODAY + D(2)),
        "pausing": make_member(db, gw, first_billing=TODAY + D(20)),
    }
    if first_pass:
        assert BillingSync(db, gw, settings, terminal="setup").run_once().ok
    gw.cancel_at_period_end(members["leaving"].subscription_id, idempotency_key="adv:cancel")
    gw.pause(members["pausing"].subscription_id, resumes_at=TODAY + D(10), idempotency_key="adv:pause")
    gw.advance_clock(5, failure_rate=0.0)
    flaky = members["flaky"]
    gw.open_invoice(flaky.subscription_id, 1999)
    gw.pay_open_invoice(flaky.subscription_id, flaky.card, idempotency_key="adv:pay")
    ok = members["ok"]
    paid = gw.retrieve_invoice(gw.retrieve_subscription(ok.subscription_id).latest_invoice_id)
    gw.refund(paid.payment_id, amount_cents=500, idempotency_key="adv:refund")
    gw.open_dispute(paid.payment_id, "fraudulent")
    gw.card_automatically_updated(ok.card, 4, 2032, last4="0005")
    return members


# === 1. SIGKILL at every step ===================================================================================

PG_KILL_STEPS = ("lead", "precommit", "postcommit")


def _pg_kill_steps(steps: list[str]) -> list[int]:
    """SQLite is killed at every step. PostgreSQL at the steps where the database acts (taking the lead, each
    kind of write transaction just before and just after its COMMIT), the first and the last of each kind:
    between them the pass only reads, and the same kind of write is the same code, as on SQLite."""
    first: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], int] = {}
    for k, label in enumerate(steps, start=1):
        head, _, what = label.partition(":")
        if head in PG_KILL_STEPS:
            key = (head, "event" if what.startswith("event:") else what)
            first.setdefault(key, k)
            last[key] = k
    return sorted({*first.values(), *last.values()})


def _kill_at_every_step(db: Database, clones: Clones, tmp_path: Path, *, page_size: int) -> list[str]:
    clean_url, *_ = clones.make(db)
    ctrl = tmp_path / "clean"
    clean = finish(spawn(ctrl, url=clean_url, job="pass", page_size=page_size))
    assert clean["error"] is None and clean["leader"]
    steps = trace(ctrl)
    with opened(clean_url) as c:
        expected = state(c)
    assert expected["payments"], "the scenario made no payments"
    kill_steps = list(range(1, len(steps) + 1)) if clones.sqlite else _pg_kill_steps(steps)
    urls = dict(zip(kill_steps, clones.make(db, len(kill_steps)), strict=True))
    labels = {}
    for k, url in urls.items():
        ctrl = tmp_path / f"kill-{k}"
        was_killed(spawn(ctrl, url=url, job="pass", page_size=page_size, kill_at=k), f"step {k}:")
        labels[k] = trace(ctrl)[-1]
        assert labels[k] == steps[k - 1]  # killed exactly where the clean run's trace says step k is

    def recover(k: int) -> dict[str, Any]:
        url = urls[k]
        with opened(url) as d:
            gw = SimulatedGateway(d)
            report = pass_until_leading(d, gw, site(url))
            assert report.ok, (labels[k], report.error)
            got = state(d)
            again = BillingSync(d, gw, site(url), terminal="again").run_once()
            assert again.ok and set(again.events) <= {"duplicate"}, (labels[k], again.events)
            assert state(d) == got, labels[k]
        return got

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(kill_steps, pool.map(recover, kill_steps), strict=True))
    for k, got in results.items():
        assert got == expected, f"killed at step {k} ({labels[k]}): the database differs from a clean run"
    return steps


@pytest.mark.both_databases
def test_sigkill_at_every_step_of_a_pass_then_a_fresh_pass_equals_a_clean_run(
        db, gw, settings, clones, tmp_path) -> None:  # noqa: ANN001
    rich_scenario(db, gw, settings)
    steps = _kill_at_every_step(db, clones, tmp_path, page_size=4)
    kinds = {s.split(":")[0] for s in steps}
    assert {"lead", "page", "fetched", "got", "precommit", "postcommit"} <= kinds
    assert sum(s == "page" for s in steps) >= 3  # several pages: killed between them too


@pytest.mark.both_databases
def test_sigkill_at_every_step_of_the_fallback_pass_equals_a_clean_run(
        db, gw, settings, clones, tmp_path) -> None:  # noqa: ANN001
    """No cursor yet: the pass reconciles every due membership, then starts from the newest event."""
    rich_scenario(db, gw, settings, first_pass=False)
    steps = _kill_at_every_step(db, clones, tmp_path, page_size=4)
    assert "latest" in steps and any(s.startswith("precommit:Membership") for s in steps)


# === 2. Races with real processes ================================================================================

WEBHOOK_SECRET = "whsec_adversary_0123456789abcdef"


@contextmanager
def webhook_for(db: Database, gw: Any, settings: Settings) -> Iterator[Any]:
    """The real receiver, handing each verified delivery to a BillingSync's handle_event (as the app does)."""
    from clarity_tui.services.billing_webhook import BillingWebhookServer

    server = BillingWebhookServer(BillingSync(db, gw, settings, terminal="webhook").handle_event,
                                  secret=WEBHOOK_SECRET).start()
    try:
        yield server
    finally:
        server.stop()


def deliver(server: Any, body: bytes | dict, *, sign: bool = True) -> tuple[int, dict]:
    """One signed POST, as Stripe makes it. Returns (status, answer); (0, {}) if the connection was dropped."""
    import http.client

    from clarity_tui.services.billing_webhook import sign_payload

    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["Stripe-Signature"] = sign_payload(payload, WEBHOOK_SECRET, int(time.time()))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/", body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
        return resp.status, json.loads(raw) if raw else {}
    except (ConnectionError, http.client.HTTPException):
        return 0, {}
    finally:
        conn.close()


def past_due_member(db: Database, gw: SimulatedGateway, settings: Settings) -> tuple[Member, list[GatewayEvent]]:
    """A member whose renewal failed, with the sync's cursor before those events; returns the events."""
    member = make_member(db, gw, first_billing=TODAY + D(1))
    assert BillingSync(db, gw, settings, terminal="setup").run_once().ok
    cursor = gw.latest_event_id()
    assert gw.advance_clock(2, failure_rate=1.0).failures == 1
    events = gw.list_events(after=cursor, types=HANDLED_EVENT_TYPES).events
    assert [e.type for e in events][-1] == "customer.subscription.updated"
    return member, events


def sync_row(db: Database) -> SyncRow:
    with db.read() as s:
        return s.get(SyncRow, "events")


def event_rows(db: Database) -> dict[str, tuple[str, str]]:
    with db.read() as s:
        return {e.id: (e.source, e.outcome) for e in s.exec(select(EventRow))}


@pytest.mark.both_databases
def test_the_webhook_and_the_sync_take_the_same_event_at_once(db, gw, settings, db_url, tmp_path) -> None:  # noqa: ANN001
    """The sync has fetched the objects of the page's last event when the webhook delivers that same event:
    one of them records it, nothing is written twice, and the sync's cursor still moves past it."""
    member, events = past_due_member(db, gw, settings)
    last = events[-1]
    ctrl = tmp_path / "sync"
    child = spawn(ctrl, url=db_url, job="pass", hold_at=f"fetched:{last.event_id}")
    wait_for_file(ctrl / "held", child)
    with webhook_for(db, gw, settings) as server:
        status, answer = deliver(server, gw.retrieve_event(last.event_id))
    assert (status, answer["result"]) == (200, "processed")
    (ctrl / "release").write_text("1")
    report = finish(child)
    assert report["error"] is None and report["events"].get("duplicate") == 1
    assert event_rows(db)[last.event_id] == ("webhook", "processed")
    assert len(event_rows(db)) == len(events)
    # The pass says where its cursor is, and the database agrees: the event is not listed again.
    row = sync_row(db)
    assert report["cursor"] == row.cursor == last.event_id
    with db.read() as s:
        failed = s.exec(select(MembershipPayment).where(MembershipPayment.membership_id == member.membership_id)).all()
    assert [p.kind for p in failed] == [PaymentKind.RENEWAL_FAILED]


@pytest.mark.both_databases
def test_n_processes_handle_the_same_event_id_at_once(db, gw, settings, db_url, tmp_path) -> None:  # noqa: ANN001
    """Six processes have all fetched the objects of one event; released together, exactly one records it."""
    member, events = past_due_member(db, gw, settings)
    failed = next(e for e in events if e.type == "invoice.payment_failed")
    n = 6
    ctrls = [tmp_path / f"h{i}" for i in range(n)]
    release = tmp_path / "release-all"
    children = [spawn(c, url=db_url, job="handle", event_id=failed.event_id, hold_at="fetched") for c in ctrls]
    for c, p in zip(ctrls, children):
        wait_for_file(c / "held", p)
    for c in ctrls:  # one release for all: they reach their write transactions together
        os.symlink(release, c / "release")
    release.write_text("1")
    outcomes = sorted(finish(p)["outcome"] for p in children)
    assert outcomes == ["duplicate"] * (n - 1) + ["processed"]
    with db.read() as s:
        rows = s.exec(select(MembershipPayment).where(MembershipPayment.membership_id == member.membership_id)).all()
        m = s.get(Membership, member.membership_id)
    assert [(p.kind, p.gateway_object_id.split("#")[1]) for p in rows] == [(PaymentKind.RENEWAL_FAILED, "1")]
    assert m.status == MembershipStatus.PAST_DUE


@pytest.mark.both_databases
def test_a_slow_sync_never_writes_an_older_object_over_what_the_webhook_wrote(
        db, gw, settings, db_url, tmp_path) -> None:  # noqa: ANN001
    """The sync fetched the subscription (past due) for the page's last event and is slow to write it; the
    member pays meanwhile and the webhook delivers those events at once (active). The sync's late write must
    not put the member back to past due: no later event would ever correct it (the webhook took them)."""
    member, events = past_due_member(db, gw, settings)
    ctrl = tmp_path / "sync"
    child = spawn(ctrl, url=db_url, job="pass", hold_at=f"fetched:{events[-1].event_id}")
    wait_for_file(ctrl / "held", child)
    before = gw.latest_event_id()
    gw.pay_open_invoice(member.subscription_id, member.card, idempotency_key="adv:pays-now")
    new = gw.list_events(after=before, types=HANDLED_EVENT_TYPES).events
    assert {e.type for e in new} >= {"invoice.paid", "customer.subscription.updated"}
    with webhook_for(db, gw, settings) as server:
        assert {deliver(server, gw.retrieve_event(e.event_id))[1]["result"] for e in new} == {"processed"}
    assert membership_of(db, member).status == MembershipStatus.ACTIVE
    (ctrl / "release").write_text("1")
    report = finish(child)
    assert report["error"] is None
    sub = gw.retrieve_subscription(member.subscription_id)
    m = membership_of(db, member)
    assert (m.status, m.gateway_status, m.paid_through) == (
        MembershipStatus.ACTIVE, sub.status, sub.current_period_end.date())
    # And a later pass finds nothing left to fix it with.
    assert set(BillingSync(db, gw, settings).run_once().events) <= {"duplicate"}


def membership_of(db: Database, member: Member) -> Membership:
    with db.read() as s:
        return s.get(Membership, member.membership_id)


def _lose_leadership(db: Database) -> None:
    """What happens to a leader that is alive but stalled: SQLite, its lease runs out (2 minutes pass: the
    row says so); PostgreSQL, the connection holding its advisory lock dies (a network drop; the server
    ends the backend)."""
    if db.is_sqlite:
        with db.write() as s:
            s.get(SyncRow, "events").leader_until = dt.datetime.now(dt.UTC) - D(seconds=1)
        return
    with db.engine.connect() as conn:
        pids = conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = :key"), {"key": PG_LOCK_ID}).scalars().all()
        assert len(pids) == 1
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]}).scalar()
        conn.commit()
        # The lock is free once that backend is gone: wait for that (a condition, not a duration). Each look
        # is its own transaction: pg_stat_activity is a snapshot kept for the rest of a transaction, so one
        # transaction that first saw the backend alive would see it alive for ever (a hang seen under load).
        deadline = time.monotonic() + 120
        while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                           {"pid": pids[0]}).scalar():
            conn.commit()
            assert time.monotonic() < deadline, "the terminated backend never went away"
            conn.execute(text("SELECT pg_sleep(0.01)"))
        conn.commit()


@pytest.mark.both_databases
def test_a_pass_that_loses_its_leadership_mid_way_stops_and_never_moves_the_cursor_back(
        db, gw, settings, db_url, clones, tmp_path) -> None:  # noqa: ANN001
    members = rich_scenario(db, gw, settings)
    first = gw.list_events(after=sync_row(db).cursor, types=HANDLED_EVENT_TYPES).events
    clean_url, = clones.make(db)
    # Leader A stalls after fetching its first page's third event.
    ctrl = tmp_path / "a"
    a = spawn(ctrl, url=db_url, job="pass", page_size=6, hold_at=f"fetched:{first[2].event_id}")
    wait_for_file(ctrl / "held", a)
    _lose_leadership(db)
    # Meanwhile the gateway moves on, and terminal B leads a full pass.
    gw.card_automatically_updated(members["flaky"].card, 5, 2033, last4="0077")
    b = spawn(tmp_path / "b", url=db_url, job="pass", page_size=6)
    b_report = finish(b)
    assert b_report["leader"] and b_report["error"] is None
    after_b = sync_row(db).cursor
    assert after_b == gw.latest_event_id()
    (ctrl / "release").write_text("1")
    a_report = finish(a)  # no traceback, whatever happened to its lock
    assert a_report["error"] and "took over" in a_report["error"]
    assert sync_row(db).cursor == after_b  # never backwards
    # Each event once, and the same database as one clean pass over it all.
    with opened(clean_url) as c:
        cgw = SimulatedGateway(c)
        cgw.card_automatically_updated(members["flaky"].card, 5, 2033, last4="0077")
        assert BillingSync(c, cgw, site(clean_url)).run_once().ok
        expected = state(c)
    got = state(db)
    assert len(got["events"]) == len(expected["events"])  # (the clone's own card update has its own event id)
    for key in ("memberships", "payments", "cards"):
        assert got[key] == expected[key], key


# === 3. Out of order, twice, missing =============================================================================

def _handle_all(url: str, events: list[GatewayEvent]) -> dict[str, Any]:
    with opened(url) as d:
        syncer = BillingSync(d, SimulatedGateway(d), site(url), terminal="order")
        for e in events:
            assert syncer.handle_event(e, source="webhook") in ("processed", "duplicate", "unknown_object", "ignored")
        got = state(d)
    # Which handler wrote which row is diagnostic text that follows the order; the rows themselves must not.
    got["events"] = [e[:4] for e in got["events"]]
    return got


def test_events_in_any_order_twice_or_missing_end_as_in_order(db, gw, settings, clones) -> None:  # noqa: ANN001
    rich_scenario(db, gw, settings)
    events = gw.list_events(after=sync_row(db).cursor, types=HANDLED_EVENT_TYPES).events
    assert len(events) >= 15
    seeds = range(6)
    urls = clones.make(db, 2 + 2 * len(seeds))
    expected = _handle_all(urls[0], events)
    assert _handle_all(urls[1], list(reversed(events))) == expected, "newest first"
    for seed in seeds:
        rng = random.Random(seed)
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert _handle_all(urls[2 + 2 * seed], shuffled) == expected, f"shuffled, seed {seed}"
        # Each event delivered one to three times, anywhere.
        twice = [e for e in events for _ in range(rng.randint(1, 3))]
        rng.shuffle(twice)
        assert _handle_all(urls[3 + 2 * seed], twice) == expected, f"redelivered, seed {seed}"


def test_missing_subscription_events_change_nothing_while_one_event_per_subscription_arrives(
        db, gw, settings, clones) -> None:  # noqa: ANN001
    rich_scenario(db, gw, settings)
    events = gw.list_events(after=sync_row(db).cursor, types=HANDLED_EVENT_TYPES).events
    seeds = range(4)
    urls = clones.make(db, 1 + len(seeds))
    expected = _handle_all(urls[0], events)

    def subscription_of(e: GatewayEvent) -> str | None:
        if e.object_kind == "subscription":
            return e.object_id
        if e.object_kind == "invoice":
            return gw.retrieve_invoice(e.object_id).subscription_id
        return None

    for seed in seeds:
        rng = random.Random(100 + seed)
        kept = [e for e in events if e.object_kind != "subscription" or rng.random() < 0.5]
        covered = {subscription_of(e) for e in kept}
        kept += [e for e in events if e.object_kind == "subscription" and e.object_id not in covered
                 and not covered.add(e.object_id)]  # at least one event per subscription still arrives
        rng.shuffle(kept)
        got = _handle_all(urls[1 + seed], kept)
        for key in ("memberships", "payments", "cards"):
            assert got[key] == expected[key], (seed, key)


# === 4. Bad input ================================================================================================

def _nested(depth: int) -> bytes:
    return b'{"id": "evt_deep", "type": "invoice.paid", "data": {"object": ' + b"[" * depth + b"]" * depth + b"}}"


MALFORMED = {
    "not json": b"{not json",
    "a list": b"[1, 2]",
    "no data.object": b'{"object": "event", "id": "evt_x1", "type": "invoice.paid", "data": {}}',
    "data is a string": b'{"object": "event", "id": "evt_x2", "type": "invoice.paid", "data": "nope"}',
    "object is a string": b'{"object": "event", "id": "evt_x3", "type": "invoice.paid", "data": {"object": "in_1"}}',
    "object is a list": b'{"object": "event", "id": "evt_x4", "type": "invoice.paid", "data": {"object": [1]}}',
    "previous_attributes a list": (b'{"object": "event", "id": "evt_x5", "type": "customer.subscription.updated", '
                                   b'"data": {"object": {"id": "sub_1", "object": "subscription"}, '
                                   b'"previous_attributes": [1]}}'),
    "id null": b'{"object": "event", "id": null, "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}',
    "object id missing": b'{"object": "event", "id": "evt_x6", "type": "invoice.paid", "data": {"object": {}}}',
    "type a number": b'{"object": "event", "id": "evt_x7", "type": 7, "data": {"object": {"id": "in_1"}}}',
    "created in year 300000": (b'{"object": "event", "id": "evt_x8", "type": "invoice.paid", "created": 9999999999999, '
                               b'"data": {"object": {"id": "in_1", "object": "invoice"}}}'),
    "nested 100000 deep": _nested(100_000),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_signed_but_malformed_body_is_refused_with_400_and_nothing_recorded(db, gw, settings, case) -> None:  # noqa: ANN001
    """Signed with the endpoint's secret (so past the signature check), but not an event this version can read."""
    with webhook_for(db, gw, settings) as server:
        status, answer = deliver(server, MALFORMED[case])
        assert (status, answer.get("error")) == (400, "bad_request"), answer
        # The receiver still serves the next delivery.
        status, _ = deliver(server, b"{}")
        assert status == 400
    assert event_rows(db) == {}


def test_the_webhook_as_the_app_wires_it_handles_a_real_event(db, gw, settings) -> None:  # noqa: ANN001
    """app_billing starts the receiver with `sync.handle_event`, which the receiver calls as
    handle(event, "webhook")."""
    from clarity_tui.services.billing_webhook import start_webhook_server

    member, events = past_due_member(db, gw, settings)
    wired = settings.model_copy(update={"billing": settings.billing.model_copy(update={
        "webhook": settings.billing.webhook.model_copy(update={"enabled": True, "host": "127.0.0.1",
                                                               "signing_secret": WEBHOOK_SECRET})})})
    server = start_webhook_server(wired, BillingSync(db, gw, wired).handle_event, port=0)
    try:
        answers = [deliver(server, gw.retrieve_event(e.event_id)) for e in events]
    finally:
        server.stop()
    assert [(st, a.get("result")) for st, a in answers] == [(200, "processed")] * len(events)
    assert membership_of(db, member).status == MembershipStatus.PAST_DUE
    assert {src for src, _ in event_rows(db).values()} == {"webhook"}


@pytest.mark.parametrize("kind,type_", [("subscription", "customer.subscription.updated"), ("invoice", "invoice.paid"),
                                        ("charge", "charge.refunded"), ("dispute", "charge.dispute.created"),
                                        ("payment_method", "payment_method.automatically_updated")])
def test_an_event_for_an_object_nobody_has_is_recorded_and_the_cursor_moves_on(db, gw, settings, kind, type_) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + D(5))
    syncer = BillingSync(db, gw, settings)
    assert syncer.run_once().ok  # leads; the cursor exists
    before = state(db)
    ghost = GatewayEvent(f"evt_ghost_{kind}", type_, dt.datetime.now(dt.UTC), f"{kind[:3]}_nobody", kind)
    assert syncer.handle_event(ghost, source="webhook") == "unknown_object"
    assert syncer.handle_event(ghost, source="sync") == "duplicate"
    after = state(db)
    assert after["memberships"] == before["memberships"] and after["payments"] == before["payments"]
    assert event_rows(db)[ghost.event_id] == ("webhook", "unknown_object")
    assert membership_of(db, member).status == MembershipStatus.ACTIVE


class FaultySubscriptions(SimulatedGateway):
    """The real simulated gateway, except that `retrieve_subscription` answers with `changes` applied (a
    subscription as a buggy or future API version might render it)."""

    changes: dict[str, Any] = {}

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        import dataclasses

        return dataclasses.replace(super().retrieve_subscription(subscription_id), **self.changes)


@pytest.mark.parametrize("status", ["active", "trialing", "past_due", "unpaid", "canceled", "paused", "incomplete"])
def test_a_subscription_with_no_dates_changes_no_date_and_raises_nothing(db, gw, settings, status) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + D(9))
    before = membership_of(db, member)
    faulty = FaultySubscriptions(db)
    faulty.changes = {"status": status, "current_period_start": None, "current_period_end": None,
                      "canceled_at": None, "ended_at": None, "cancel_at": None}
    event = GatewayEvent("evt_nodates", "customer.subscription.updated", dt.datetime.now(dt.UTC),
                         member.subscription_id, "subscription")
    assert BillingSync(db, faulty, settings).handle_event(event, source="sync") == "processed"
    m = membership_of(db, member)
    assert m.paid_through == before.paid_through  # nothing to move it with
    assert m.gateway_status == status
    want = {"active": "active", "trialing": "active", "past_due": "past_due", "unpaid": "past_due",
            "canceled": "cancelled", "paused": "paused", "incomplete": "active"}[status]
    assert m.status == want


def test_a_subscription_back_from_canceled_follows_the_gateway(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + D(9))
    syncer = BillingSync(db, gw, settings)
    now = dt.datetime.now(dt.UTC)
    ended = FaultySubscriptions(db)
    ended.changes = {"status": "canceled", "canceled_at": now, "ended_at": now}
    event = GatewayEvent("evt_cancelled", "customer.subscription.deleted", now, member.subscription_id, "subscription")
    assert BillingSync(db, ended, settings).handle_event(event, source="sync") == "processed"
    m = membership_of(db, member)
    assert (m.status, m.expires_on) == (MembershipStatus.CANCELLED, TODAY)
    # The gateway says active again (a support agent restored it): the membership follows the gateway.
    back = GatewayEvent("evt_back", "customer.subscription.updated", now, member.subscription_id, "subscription")
    assert syncer.handle_event(back, source="sync") == "processed"
    m = membership_of(db, member)
    sub = gw.retrieve_subscription(member.subscription_id)
    assert (m.status, m.gateway_status, m.expires_on, m.paid_through) == (
        MembershipStatus.ACTIVE, sub.status, None, sub.current_period_end.date())


class DeletedInvoices(SimulatedGateway):
    """The real simulated gateway, where the invoices in `gone` answer 404 (Stripe deletes draft invoices)."""

    gone: set[str] = set()

    def retrieve_invoice(self, invoice_id: str):  # noqa: ANN201
        if invoice_id in self.gone:
            raise UnknownObject(f"The payment gateway has no invoice {invoice_id}.")
        return super().retrieve_invoice(invoice_id)


def test_an_expired_cursor_still_reconciles_a_membership_whose_latest_invoice_is_gone(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + D(1))
    assert BillingSync(db, gw, settings).run_once().ok
    gw.advance_clock(2, failure_rate=1.0)
    with db.write() as s:
        s.get(SyncRow, "events").cursor = "evt_pruned_long_ago"
    faulty = DeletedInvoices(db)
    faulty.gone = {gw.retrieve_subscription(member.subscription_id).latest_invoice_id}
    report = BillingSync(db, faulty, settings).run_once()
    assert report.ok and report.fallback == "the cursor expired at the gateway"
    m = membership_of(db, member)
    assert (m.status, m.gateway_status) == (MembershipStatus.PAST_DUE, "past_due")  # from the subscription
    assert report.reconciled_due == 1


def test_a_zero_amount_renewal_moves_paid_through_and_writes_no_payment(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=TODAY + D(1), price_cents=0)
    assert BillingSync(db, gw, settings).run_once().ok
    gw.advance_clock(2, failure_rate=1.0)  # nothing to charge: nothing can fail
    report = BillingSync(db, gw, settings).run_once()
    assert report.ok and report.events["processed"] >= 1
    m = membership_of(db, member)
    assert m.status == MembershipStatus.ACTIVE and m.paid_through > TODAY + D(27)
    assert state(db)["payments"] == []


def test_void_and_uncollectible_invoices(db, gw, settings) -> None:  # noqa: ANN001
    """Collection paused (void invoices) bills nothing; an invoice marked uncollectible after its last retry
    leaves its failed attempts and a cancelled membership, and no payment."""
    paused = make_member(db, gw, first_billing=TODAY + D(1))
    declining = make_member(db, gw, first_billing=TODAY + D(1), outcome="charge_decline")
    assert BillingSync(db, gw, settings).run_once().ok
    gw.pause(paused.subscription_id, idempotency_key="adv:void")
    report = gw.advance_clock(40, failure_rate=0.0)
    assert report.cancelled == 1
    assert BillingSync(db, gw, settings).run_once().ok
    void = gw.retrieve_invoice(gw.retrieve_subscription(paused.subscription_id).latest_invoice_id)
    assert void.status == "void"
    # A void invoice handled anyway (an event for it, say invoice.paid redelivered) writes nothing.
    event = GatewayEvent("evt_void", "invoice.paid", dt.datetime.now(dt.UTC), void.invoice_id, "invoice")
    assert BillingSync(db, gw, settings).handle_event(event, source="webhook") == "processed"
    rows = state(db)["payments"]
    assert [r for r in rows if r[0] == paused.membership_id] == []
    mine = [r for r in rows if r[0] == declining.membership_id]
    assert {r[2] for r in mine} == {PaymentKind.RENEWAL_FAILED} and len(mine) == 4
    assert membership_of(db, declining).status == MembershipStatus.CANCELLED
    assert membership_of(db, paused).status == MembershipStatus.PAUSED


# --- day boundaries and time zones ---------------------------------------------------------------------------------

CHICAGO = "America/Chicago"


def _at(day: dt.date, hh: int, mm: int, zone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


@pytest.mark.both_databases
def test_a_period_that_ends_late_evening_in_chicago_is_paid_through_that_chicago_day(db, gw, db_url) -> None:  # noqa: ANN001
    """22:30 in Chicago on Feb 28 is 04:30 UTC on Mar 1: the member has paid through Chicago's Feb 28."""
    chicago = Settings(database_url=db_url, site={"timezone": CHICAGO}, billing={"grace_days": 0})
    member = make_member(db, gw, first_billing=TODAY + D(9))
    end_day = dt.date(TODAY.year + 1, 2, 28)
    faulty = FaultySubscriptions(db)
    faulty.changes = {"status": "active", "current_period_start": _at(end_day - D(28), 22, 30, CHICAGO),
                      "current_period_end": _at(end_day, 22, 30, CHICAGO)}
    assert faulty.retrieve_subscription(member.subscription_id).current_period_end.date() == end_day + D(1)
    event = GatewayEvent("evt_tz", "customer.subscription.updated", dt.datetime.now(dt.UTC), member.subscription_id,
                         "subscription")
    assert BillingSync(db, faulty, chicago).handle_event(event, source="sync") == "processed"
    assert membership_of(db, member).paid_through == end_day
    # 23:30 on that Chicago day (05:30 UTC the next day): still a member there, already past due in a UTC site.
    late = _at(end_day, 23, 30, CHICAGO)
    assert late.date() == end_day + D(1)
    utc_site = Settings(database_url=db_url, site={"timezone": "UTC"}, billing={"grace_days": 0})
    assert billing_status(db, chicago, now=late)["members"]["active"] == 1
    assert billing_status(db, utc_site, now=late)["members"]["past_due"] == 1
    # Half past midnight in Chicago: past due there too.
    assert billing_status(db, chicago, now=_at(end_day + D(1), 0, 30, CHICAGO))["members"]["past_due"] == 1


@pytest.mark.both_databases
@pytest.mark.parametrize("zone", ["UTC", CHICAGO, "Pacific/Kiritimati"])
@pytest.mark.parametrize("days_before,standing", [(0, "active"), (3, "active"), (4, "past_due")])
def test_paid_through_today_today_minus_grace_and_one_more_day(db, gw, db_url, zone, days_before, standing) -> None:  # noqa: ANN001
    """Grace 3: paid through today, or 3 days ago, is a member; 4 days ago is past due, at 23:59 and at 00:00
    of the site's day whatever its offset from UTC."""
    site_settings = Settings(database_url=db_url, site={"timezone": zone}, billing={"grace_days": 3})
    member = make_member(db, gw, first_billing=TODAY + D(30))
    today = dt.date(TODAY.year + 1, 6, 15)
    with db.write() as s:
        s.get(Membership, member.membership_id).paid_through = today - D(days_before)
    for hh, mm in ((0, 0), (23, 59)):
        counts = billing_status(db, site_settings, now=_at(today, hh, mm, zone))["members"]
        assert counts[standing] == 1, (zone, hh, mm, counts)


# --- a gateway outage at the k-th call ------------------------------------------------------------------------------

class OutageAt(SimulatedGateway):
    """The real simulated gateway whose k-th lifecycle call finds the network down (0: never); counts calls."""

    def __init__(self, db: Database, k: int = 0) -> None:
        super().__init__(db)
        self.k, self.calls = k, 0

    def _call(self) -> None:
        self.calls += 1
        if self.calls == self.k:
            raise GatewayUnavailable("Cannot reach the payment gateway (the network dropped).")

    def list_events(self, **kw: Any):  # noqa: ANN201
        self._call()
        return super().list_events(**kw)

    def latest_event_id(self):  # noqa: ANN201
        self._call()
        return super().latest_event_id()

    def retrieve_subscription(self, subscription_id: str):  # noqa: ANN201
        self._call()
        return super().retrieve_subscription(subscription_id)

    def retrieve_invoice(self, invoice_id: str):  # noqa: ANN201
        self._call()
        return super().retrieve_invoice(invoice_id)

    def retrieve_charge(self, charge_id: str):  # noqa: ANN201
        self._call()
        return super().retrieve_charge(charge_id)

    def retrieve_dispute(self, dispute_id: str):  # noqa: ANN201
        self._call()
        return super().retrieve_dispute(dispute_id)

    def retrieve_card(self, payment_method_id: str):  # noqa: ANN201
        self._call()
        return super().retrieve_card(payment_method_id)


def _recorded_prefix_and_cursor(d: Database, listed: list[str]) -> None:
    """What a failed pass leaves: the events it recorded are the first ones listed, each with its effects, and
    the cursor on the last of them."""
    rows = event_rows(d)
    assert list(rows) == [] or sorted(rows) == listed[:len(rows)]
    row = sync_row(d)
    if rows and row.cursor is not None:
        assert row.cursor == row.last_event_id == listed[len(rows) - 1]


@pytest.mark.parametrize("first_pass", [True, False], ids=["events", "fallback"])
def test_a_gateway_outage_at_every_call_of_a_pass_loses_nothing(db, gw, settings, clones, first_pass) -> None:  # noqa: ANN001
    rich_scenario(db, gw, settings, first_pass=first_pass)
    cursor = sync_row(db).cursor if first_pass else None
    listed = [e.event_id for e in gw.list_events(after=cursor, types=HANDLED_EVENT_TYPES).events] if first_pass else []
    clean_url, = clones.make(db)
    with opened(clean_url) as c:
        counting = OutageAt(c)
        assert BillingSync(c, counting, site(clean_url)).run_once().ok
        expected, n = state(c), counting.calls
    assert n >= (20 if first_pass else 6)
    urls = clones.make(db, n)
    for k, url in enumerate(urls, start=1):
        with opened(url) as d:
            report = BillingSync(d, OutageAt(d, k), site(url)).run_once()  # never raises
            assert report.error and "network dropped" in report.error, k
            assert sync_row(d).last_error == report.error
            _recorded_prefix_and_cursor(d, listed)
            assert BillingSync(d, SimulatedGateway(d), site(url)).run_once().ok
            assert state(d) == expected, f"outage at call {k}"


# === 5. A full or read-only SQLite database during a pass =========================================================

class DiskFaults:
    """Real SQLite errors on the pass's own connections: `readonly` (PRAGMA query_only: "attempt to write a
    readonly database") or `full` (PRAGMA max_page_count at the current size: "database or disk is full"),
    on every connection checked out once `armed`."""

    def __init__(self, database: Database, mode: str) -> None:
        self.mode, self.armed = mode, False

        @sa_event.listens_for(database.engine, "checkout")
        def _on_checkout(dbapi_conn: Any, _rec: Any, _proxy: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                on = self.armed
                cur.execute(f"PRAGMA query_only={1 if on and self.mode == 'readonly' else 0}")
                if on and self.mode == "full":
                    pages = cur.execute("PRAGMA page_count").fetchone()[0]
                    cur.execute(f"PRAGMA max_page_count={pages}")
                else:
                    cur.execute("PRAGMA max_page_count=1073741823")
            finally:
                cur.close()


class FaultAtCall(OutageAt):
    """Arms the disk fault at the k-th gateway call (the database fills up, or turns read-only, mid-pass)."""

    faults: DiskFaults

    def _call(self) -> None:
        self.calls += 1
        if self.calls == self.k:
            self.faults.armed = True


@pytest.fixture(scope="module")
def rich_disk_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rich scenario with 40 more renewing members (enough writes to need new pages), built once per test
    process: its whole state, the gateway's included, is in the file, so each disk-fault test starts from a copy."""
    from clarity_tui.services.bootstrap import open_database

    path = tmp_path_factory.mktemp("rich-disk") / "site.db"
    url = f"sqlite:///{path}"
    database = open_database(site(url))
    try:
        rich_scenario(database, SimulatedGateway(database), site(url), extra=40)
    finally:
        database.dispose()
    return path


@pytest.fixture
def rich_sqlite_db(sqlite_url: str, rich_disk_template: Path) -> Iterator[Database]:
    from clarity_tui.services.bootstrap import open_database

    src, dst = sqlite3.connect(rich_disk_template), sqlite3.connect(make_url(sqlite_url).database)
    try:
        src.backup(dst)  # a consistent copy (no half-checkpointed WAL)
    finally:
        src.close()
        dst.close()
    database = open_database(site(sqlite_url))
    yield database
    database.dispose()


@pytest.mark.parametrize("mode", ["readonly", "full"])
@pytest.mark.parametrize("at", [0, 1, 5, 12, 25])
def test_a_full_or_read_only_database_mid_pass_is_a_reported_error_and_nothing_half_written(
        rich_sqlite_db, sqlite_url, tmp_path, mode, at) -> None:  # noqa: ANN001
    db, settings = rich_sqlite_db, site(sqlite_url)
    gw = SimulatedGateway(db)
    listed = [e.event_id for e in gw.list_events(after=sync_row(db).cursor, types=HANDLED_EVENT_TYPES).events]
    clean = Clones(sqlite_url, tmp_path)
    clean_url, = clean.make(db)
    with opened(clean_url) as c:
        assert BillingSync(c, SimulatedGateway(c), site(clean_url)).run_once().ok
        expected = state(c)
    raw = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
    raw.execute("VACUUM")  # no free pages left to reuse: the next growth of the file is refused
    raw.close()
    terminal = Database.from_url(sqlite_url)  # the terminal whose disk fails: its own connections
    try:
        faults = DiskFaults(terminal, mode)
        faults.armed = at == 0
        faulty = FaultAtCall(terminal, at)
        faulty.faults = faults
        report = BillingSync(terminal, faulty, settings).run_once()  # returns; never raises
        assert not report.ok and report.error and "database" in report.error.lower(), report
    finally:
        terminal.dispose()
    _recorded_prefix_and_cursor(db, listed)
    if mode == "readonly" and at >= 12:
        assert event_rows(db), "the database turned read-only mid-pass, after some events were recorded"
    # The disk is fine again. A pass that could not write the row could not give its lease back either: that
    # lease names this (living) process and lasts its 2 minutes; the row says they have passed. Then the next
    # pass leads and the database ends as a clean run leaves it.
    with db.write() as s:
        row = s.get(SyncRow, "events")
        if row.leader and row.leader.split(":")[1] == str(os.getpid()):
            row.leader_until = dt.datetime.now(dt.UTC) - D(seconds=1)  # the 2-minute lease has run out
    report = BillingSync(db, gw, settings).run_once()
    assert report.ok, report.error
    assert state(db) == expected
