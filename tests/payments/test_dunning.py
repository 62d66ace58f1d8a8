"""Dunning (issue 13 item 4): past-due texts on days 1, 4 and 11 after a failed renewal, each exactly once.

Real parts only: the simulated gateway (its card-update link made through the outbox), the simulated
SMS provider or a real Twilio-compatible HTTP server, real processes racing on SQLite and PostgreSQL,
and real SIGKILLs mid-send. The schedule is driven by passing `today`, never by waiting.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.messaging.twilio import TwilioSms
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.billing import BillingService
from clarity_tui.services.dunning import link_key, run_dunning
from db.models import AuditLog, Customer, Membership, MembershipStatus, Outbox, SimGatewayObject, SimGatewayRequest
from db.models_billing import DunningMessage, MembershipPayment
from tests.helpers import forked
from tests.helpers.customers import billed_membership
from tests.helpers.twilio_server import TwilioStub

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
FAILED_AT = dt.datetime(2026, 11, 1, 15, 0, tzinfo=dt.UTC)  # the renewal's first failed attempt
DAY0 = FAILED_AT.date()
REASON = "Your card has insufficient funds."


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(days=n)


@dataclass(frozen=True)
class PastDueMember:
    membership_id: int
    customer_id: int
    invoice_id: str
    phone: str | None


def failed_renewal(db, membership_id: int, invoice_id: str, *, attempt: int = 1, at: dt.datetime = FAILED_AT,  # noqa: ANN001
                   amount: int = 2345, reason: str = REASON) -> None:
    """The row the billing sync writes for a failed attempt (made here directly: test setup)."""
    with db.write() as s:
        m = s.get(Membership, membership_id)
        s.add(MembershipPayment(membership_id=m.id, customer_id=m.customer_id, kind="renewal_failed",
                                gateway_object_id=f"{invoice_id}#{attempt}", invoice_id=invoice_id,
                                amount_cents=amount, status="open", reason=reason, attempt=attempt, occurred_at=at))


def past_due_members(db, gw: SimulatedGateway, n: int = 1, *, phones: list[str | None] | None = None,  # noqa: ANN001
                     amount: int = 2345) -> list[PastDueMember]:
    """`n` members whose renewal failed on DAY0: PAST_DUE, an open invoice at the gateway, the failed row."""
    with db.read() as s:
        rows = s.exec(select(Membership).where(Membership.status == MembershipStatus.ACTIVE)
                      .order_by(Membership.id)).all()
    chosen, seen = [], set()
    for m in rows:  # one membership per customer: each customer has their own phone
        if m.customer_id not in seen:
            seen.add(m.customer_id)
            chosen.append(m)
        if len(chosen) == n:
            break
    out = []
    for i, m in enumerate(chosen):
        _, sub = billed_membership(db, gw, membership=m)
        invoice = gw.open_invoice(sub, amount)
        phone = phones[i] if phones is not None else f"+1512555{1000 + i:04d}"
        with db.write() as s:
            row = s.get(Membership, m.id)
            row.status, row.paid_through = MembershipStatus.PAST_DUE, DAY0
            s.get(Customer, row.customer_id).phone_e164 = phone
        failed_renewal(db, m.id, invoice, amount=amount)
        out.append(PastDueMember(m.id, m.customer_id, invoice, phone))
    return out


def sms() -> SimulatedSms:
    return SimulatedSms(reply_after=0.0, responder=None)


def messages(db) -> list[DunningMessage]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(DunningMessage).order_by(DunningMessage.invoice_id, DunningMessage.step)).all())


def audits(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all())


def outbound(stub: TwilioStub) -> list[dict]:
    return [m for m in stub.messages if m["direction"] == "outbound-api"]


# --- the schedule -----------------------------------------------------------------------------------


def test_days_1_4_and_11_each_send_one_text_and_a_second_run_sends_nothing(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    provider = sms()
    texted_on = []
    for n in range(0, 16):
        if n == 3:  # Stripe's retry fails again: the schedule still counts from the first failure
            failed_renewal(demo_db, member.membership_id, member.invoice_id, attempt=2, at=FAILED_AT + dt.timedelta(days=3),
                           reason="Your card was declined.")
        before = len(provider.sent)
        first = run_dunning(demo_db, gw, provider, settings, today=day(n), terminal="lane-1-term")
        again = run_dunning(demo_db, gw, provider, settings, today=day(n), terminal="lane-2-term")
        assert again.outcomes == [], f"a second run on day {n} did something"
        if len(provider.sent) > before:
            assert len(provider.sent) == before + 1 and first.sent == 1
            texted_on.append(n)
    assert texted_on == [1, 4, 11]
    body = provider.sent[0].body
    assert body.startswith(settings.site.name + ":") and "$23.45" in body
    rows = messages(demo_db)
    assert [(r.step, r.status, r.sent_on) for r in rows] == [(1, "sent", day(1)), (4, "sent", day(4)), (11, "sent", day(11))]
    assert all(r.link_url and r.link_url in sent.body for r, sent in zip(rows, provider.sent, strict=True))
    assert {sent.to for sent in provider.sent} == {member.phone}
    sent_audits = audits(demo_db, "dunning.sent")
    assert [(a.entity, a.entity_id, a.after["step"]) for a in sent_audits] == [
        ("membership", str(member.membership_id), step) for step in (1, 4, 11)]
    assert all(a.after["to"].endswith(member.phone[-4:]) and member.phone not in str(a.after) for a in sent_audits)
    assert all(r.link_url not in str(a.after) for r, a in zip(rows, sent_audits, strict=True))  # a bearer link
    # Each link came through the outbox with its own key.
    with demo_db.read() as s:
        links = s.exec(select(Outbox).where(Outbox.operation == "dunning.link").order_by(Outbox.id)).all()
    assert [(o.idempotency_key, o.status) for o in links] == [(link_key(member.invoice_id, step), "done") for step in (1, 4, 11)]


def test_after_an_outage_only_the_latest_due_step_is_sent(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    provider = sms()
    report = run_dunning(demo_db, gw, provider, settings, today=day(6), terminal="t")  # days 1 and 4 both passed
    assert [(o.step, o.status) for o in report.outcomes] == [(4, "sent")] and len(provider.sent) == 1
    for n in (7, 8, 9, 10):
        assert run_dunning(demo_db, gw, provider, settings, today=day(n), terminal="t").outcomes == []
    assert run_dunning(demo_db, gw, provider, settings, today=day(30), terminal="t").sent == 1
    assert [(r.step, r.sent_on) for r in messages(demo_db)] == [(4, day(6)), (11, day(30))]
    assert len(provider.sent) == 2


def test_a_paid_or_recovered_invoice_stops_the_schedule(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.payments.cards import ManualCard
    from clarity_tui.services.customers import CustomerService
    from tests.helpers.actors import ATTENDANT

    gw = SimulatedGateway(demo_db)
    recovered, paid_at_lane = past_due_members(demo_db, gw, 2)
    provider = sms()
    assert run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t").sent == 2
    # One invoice recovered by Stripe's own retry (the sync's row), the other paid with a new card.
    with demo_db.write() as s:
        s.add(MembershipPayment(membership_id=recovered.membership_id, customer_id=recovered.customer_id,
                                kind="recovered", gateway_object_id=recovered.invoice_id, invoice_id=recovered.invoice_id,
                                amount_cents=2345, status="paid", occurred_at=FAILED_AT + dt.timedelta(days=2)))
    with demo_db.read() as s:
        version = s.get(Membership, paid_at_lane.membership_id).version
    CustomerService(demo_db, gateway=gw).update_card(ATTENDANT, paid_at_lane.membership_id, version,
                                                     ManualCard.parse("4242 4242 4242 4242", "12/30", "123"))
    for n in range(2, 20):
        assert run_dunning(demo_db, gw, provider, settings, today=day(n), terminal="t").outcomes == []
    assert len(provider.sent) == 2


def test_dunning_and_replay_never_charge_a_card_stripe_is_retrying(demo_db, settings) -> None:  # noqa: ANN001
    """Stripe's retries are left on: nothing of ours charges or pays the invoice, whatever runs."""
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)

    def requests() -> Counter:
        with demo_db.read() as s:
            return Counter(s.exec(select(SimGatewayRequest.operation)).all())

    before, intents_before = requests(), gw.counts("payment_intent")
    for n in (1, 4, 11):
        run_dunning(demo_db, gw, sms(), settings, today=day(n), terminal="t")
        BillingService(demo_db, gw).processor.replay_pending()
    new = requests() - before
    assert sum(new.values()) == 3, new  # the three card-update links, nothing else
    assert not [op for op in new if op.startswith(("invoice", "payment_intent", "charge", "refund"))], new
    assert gw.counts("payment_intent") == intents_before
    with demo_db.read() as s:
        assert s.get(SimGatewayObject, member.invoice_id).data["status"] == "open"
        assert not s.exec(select(Outbox).where(Outbox.operation == "invoice.pay")).all()


# --- who cannot get a text, and when nothing can be sent ----------------------------------------------


def test_no_mobile_number_or_a_landline_is_skipped_with_the_reason(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    nobody, landline, mobile = past_due_members(demo_db, gw, 3, phones=[None, "+442079460958", "+15125550143"])
    provider = sms()
    report = run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t")
    by_invoice = {o.invoice_id: (o.status, o.detail) for o in report.outcomes}
    assert by_invoice[nobody.invoice_id] == ("skipped", "no mobile number on file")
    assert by_invoice[landline.invoice_id] == ("skipped", "the number on file is a landline")
    assert by_invoice[mobile.invoice_id][0] == "sent"
    assert [m.to for m in provider.sent] == ["+15125550143"]
    skipped = audits(demo_db, "dunning.skipped")
    assert sorted(a.after["reason"] for a in skipped) == ["no mobile number on file", "the number on file is a landline"]
    assert run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t").outcomes == []  # recorded once
    # Nothing to make a link for: no card-update link was asked for the skipped ones.
    with demo_db.read() as s:
        assert len(s.exec(select(Outbox).where(Outbox.operation == "dunning.link")).all()) == 1


def test_gateway_offline_sends_nothing_and_the_row_is_tried_again_later(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    provider = sms()
    gw.online = False
    for _ in range(2):
        report = run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t")
        assert [o.status for o in report.outcomes] == ["failed"] and "tried again" in report.outcomes[0].detail
    assert provider.sent == []
    [row] = messages(demo_db)
    assert (row.status, row.link_url) == ("failed", None)
    with demo_db.read() as s:
        link = s.exec(select(Outbox).where(Outbox.operation == "dunning.link")).one()
    assert link.status == "pending"  # the outbox keeps it, with the same key
    gw.online = True
    report = run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t")
    assert [o.status for o in report.outcomes] == ["sent"] and len(provider.sent) == 1
    assert run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="t").outcomes == []
    [row] = messages(demo_db)
    assert (row.status, row.step, row.sent_on) == ("sent", 1, day(1)) and row.link_url in provider.sent[0].body
    with demo_db.read() as s:
        assert s.get(Outbox, link.id).status == "done"
    assert [a.after["reason"] for a in audits(demo_db, "dunning.failed")][:1] and audits(demo_db, "dunning.sent")


def test_a_provider_failure_before_sending_is_retried_and_an_unclear_one_is_never_repeated(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    refused, unreachable, unavailable, dropped, broke = past_due_members(demo_db, gw, 5)
    with socket.socket() as probe:  # a port nobody listens on: the provider cannot be reached at all
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    hangup = _HangUpServer()  # takes the request, then drops the connection without an answer

    with TwilioStub() as stub:
        def provider(url: str) -> TwilioSms:
            return TwilioSms("AC_test", "secret", "+15125550100", api_base=url, timeout=5)

        answers = {refused.phone: (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}),
                   unavailable.phone: (503, {"message": "Service unavailable"}),
                   broke.phone: (500, {"message": "Internal error"})}

        class Routed(TwilioSms):
            """Each member's text meets its own kind of trouble (the stub answers the status asked for)."""

            def send(self, to: str, body: str):  # noqa: ANN201
                if to in answers:
                    stub.fail_next = answers[to]
                    return provider(stub.url).send(to, body)
                return provider(dead if to == unreachable.phone else hangup.url).send(to, body)

        report = run_dunning(demo_db, gw, Routed("AC_test", "secret", "+15125550100"), settings, today=day(1), terminal="t")
        status = {o.invoice_id: o.status for o in report.outcomes}
        assert status == {refused.invoice_id: "failed", unreachable.invoice_id: "failed",
                          unavailable.invoice_id: "failed", dropped.invoice_id: "unknown", broke.invoice_id: "unknown"}
        assert outbound(stub) == [] and hangup.requests == 1
        # Later the same day the provider works: the ones that surely went nowhere are sent; the others may have
        # reached the customer, so they are never sent again.
        report = run_dunning(demo_db, gw, provider(stub.url), settings, today=day(1), terminal="t")
        surely_not = [refused, unreachable, unavailable]
        assert sorted(o.invoice_id for o in report.outcomes if o.status == "sent") == sorted(
            m.invoice_id for m in surely_not)
        assert sorted(m["to"] for m in outbound(stub)) == sorted(m.phone for m in surely_not)
        assert run_dunning(demo_db, gw, provider(stub.url), settings, today=day(2), terminal="t").outcomes == []
        assert hangup.requests == 1
    hangup.close()
    statuses = {r.invoice_id: r.status for r in messages(demo_db)}
    assert (statuses[dropped.invoice_id], statuses[broke.invoice_id]) == ("unknown", "unknown")
    assert len(audits(demo_db, "dunning.unknown")) == 2


def test_a_failed_text_is_tried_a_few_times_that_day_then_left_to_the_next_step(demo_db, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    refusing = SimulatedSms(reply_after=0.0, responder=None, fail_with="The SMS service refused the message: blocked")
    for _ in range(8):
        run_dunning(demo_db, gw, refusing, settings, today=day(1), terminal="t")
    [row] = messages(demo_db)
    assert row.status == "failed" and row.detail.endswith("(try 5)")
    assert len(audits(demo_db, "dunning.failed")) == 5
    working = sms()
    assert run_dunning(demo_db, gw, working, settings, today=day(2), terminal="t").outcomes == []  # not the next day
    assert run_dunning(demo_db, gw, working, settings, today=day(4), terminal="t").sent == 1  # the next step goes
    assert [m.to for m in working.sent] == [member.phone]


class _HangUpServer:
    """Accepts one HTTP request at a time, reads it, and closes the connection without answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests += 1

    def close(self) -> None:
        self.sock.close()


# --- processes: races and crashes --------------------------------------------------------------------


def _spawn(db_url: str, twilio_url: str, today: dt.date, name: str, kill_at: str = "",
           env: dict[str, str] | None = None) -> forked.ForkedProcess:
    return forked.popen(["-m", "tests.payments.dunning_child", db_url, twilio_url,
                         today.isoformat(), name, *([kill_at] if kill_at else [])],
                        cwd=REPO, stdin=forked.PIPE, stdout=forked.PIPE, stderr=forked.PIPE, text=True,
                        env={**os.environ, **(env or {})})


def _start(procs: list[forked.ForkedProcess]) -> None:
    for p in procs:  # each says "ready" once connected: a signal, not a guess
        line = p.stdout.readline()
        assert line.strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def test_processes_running_dunning_at_once_send_one_text_per_invoice_and_step(demo_db, db_url, settings) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    members = past_due_members(demo_db, gw, 3)
    with TwilioStub() as stub:
        for n in (1, 4):
            # The simulated gateway's latency keeps each link call in flight a while: the racers meet on
            # the same rows instead of one finishing before the others look.
            procs = [_spawn(db_url, stub.url, day(n), f"term-{i}", env={"CLARITY_SIM_GATEWAY_LATENCY": "0.3"})
                     for i in range(3)]
            _start(procs)
            lines = []
            for p in procs:
                out, err = p.communicate(timeout=120)
                assert p.returncode == 0, err
                lines += [line.split("|") for line in out.split()]
            sent = [(inv, int(step)) for inv, step, status in lines if status == "sent"]
            assert sorted(sent) == sorted((m.invoice_id, 1 if n == 1 else 4) for m in members), lines
            assert {status for _, _, status in lines} <= {"sent", "busy"}
            assert Counter(m["to"] for m in outbound(stub)) == Counter({m.phone: 1 if n == 1 else 2 for m in members})
    rows = messages(demo_db)
    assert len(rows) == 6 and {r.status for r in rows} == {"sent"}
    assert len(audits(demo_db, "dunning.sent")) == 6


@pytest.mark.parametrize("kill_at, reached", [("before_send", 0), ("after_send", 1)])
def test_sigkill_while_sending_never_produces_a_second_text(demo_db, db_url, settings, kill_at, reached) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    with TwilioStub() as stub:
        p = _spawn(db_url, stub.url, day(1), "doomed", kill_at)
        _start([p])
        p.communicate(timeout=120)
        assert p.returncode == -signal.SIGKILL
        [row] = messages(demo_db)
        assert row.status == "sending"  # committed before the provider was called
        assert len(outbound(stub)) == reached
        provider = TwilioSms("AC_test", "secret", "+15125550100", api_base=stub.url)
        report = run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="survivor")
        assert report.settled == {"unknown": 1, "failed": 0} and report.outcomes == []
        for n in (1, 2, 3):
            assert run_dunning(demo_db, gw, provider, settings, today=day(n), terminal="survivor").outcomes == []
        assert len(outbound(stub)) == reached  # never a second text for step 1
        assert run_dunning(demo_db, gw, provider, settings, today=day(4), terminal="survivor").sent == 1
        assert len(outbound(stub)) == reached + 1
    assert [(r.step, r.status) for r in messages(demo_db)] == [(1, "unknown"), (4, "sent")]
    assert audits(demo_db, "dunning.unknown")[0].after["was"] == "sending"


def test_sigkill_while_claimed_sends_it_once_later(demo_db, db_url, settings) -> None:  # noqa: ANN001
    """A process killed while asking the gateway for the link had sent nothing: the row is claimed again."""
    gw = SimulatedGateway(demo_db, in_flight_lease=0)  # the dead process's request marker is taken over at once
    [member] = past_due_members(demo_db, gw)
    with TwilioStub() as stub:
        p = _spawn(db_url, stub.url, day(1), "doomed", "link")
        _start([p])
        p.communicate(timeout=120)
        assert p.returncode == -signal.SIGKILL
        assert [r.status for r in messages(demo_db)] == ["claimed"] and outbound(stub) == []
        provider = TwilioSms("AC_test", "secret", "+15125550100", api_base=stub.url)
        report = run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="survivor")
        assert report.settled == {"unknown": 0, "failed": 1} and [o.status for o in report.outcomes] == ["sent"]
        assert run_dunning(demo_db, gw, provider, settings, today=day(1), terminal="survivor").outcomes == []
        assert [m["to"] for m in outbound(stub)] == [member.phone]


def test_the_entry_point_builds_from_settings_and_the_setting_turns_it_off(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.services.dunning import dunning_pass

    gw = SimulatedGateway(demo_db)
    [member] = past_due_members(demo_db, gw)
    off = settings.model_copy(update={"billing": settings.billing.model_copy(update={"dunning_enabled": False})})
    report = dunning_pass(demo_db, off, today=day(1))
    assert not report.enabled and report.outcomes == [] and messages(demo_db) == []
    assert "off" in report.summary()
    report = dunning_pass(demo_db, settings, today=day(1))  # the simulated gateway and SMS provider of settings
    assert report.sent == 1 and "1 sent" in report.summary()
    [row] = messages(demo_db)
    assert (row.invoice_id, row.status, row.terminal) == (member.invoice_id, "sent", settings.terminal_id)
