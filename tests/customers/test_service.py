"""The customer record service: validation, audit, optimistic concurrency, permissions, every tab."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import col, select

from clarity_tui.config import SmtpConfig
from clarity_tui.payments.cards import ManualCard
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.customers import (
    ContactForm,
    CustomerError,
    CustomerService,
    InUse,
    StaleRecord,
    ValidationFailed,
)
from clarity_tui.services.mailer import MailError, Mailer
from clarity_tui.services.permissions import MATRIX, Permission, PermissionDenied, allowed
from db.models import AuditLog, Membership, MembershipStatus, PasswordReset, Role, SimGatewayObject, WebLogin
from tests.helpers.actors import ATTENDANT, MANAGER, SUPPORT, TECHNICIAN
from tests.helpers.customers import billed_membership

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


def audits(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))


def new_customer(svc: CustomerService, **kw) -> int:  # noqa: ANN003
    form = ContactForm(first_name=kw.pop("first", "Ada"), last_name=kw.pop("last", "Lovelace"), **kw)
    return svc.create_customer(ATTENDANT, form).id  # type: ignore[return-value]


def test_create_validates_and_audits(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db, phone_region="GB")
    with pytest.raises(ValidationFailed) as bad:
        svc.create_customer(ATTENDANT, ContactForm(phone="12", email="not-an-email", country="USA"))
    assert set(bad.value.errors) == {"first_name", "phone", "email", "country"}
    cid = new_customer(svc, phone="020 7946 0958", email=" Ada@Example.COM ")
    rec = svc.record(cid)
    assert rec.customer.phone_e164 == "+442079460958"  # the site's region (GB) parses national numbers
    assert rec.customer.customer_number.startswith("C") and rec.customer.version == 1
    assert rec.customer.search_last == "lovelace" and rec.customer.phone_rev == "8590649702" + "44"
    [row] = audits(demo_db, "customer.created")[-1:]
    assert row.entity_id == str(cid) and row.after["last_name"] == "Lovelace" and row.actor == ATTENDANT.name


def test_edit_audits_only_what_changed_and_refuses_a_stale_version(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc)
    rec = svc.record(cid)
    form = ContactForm.of(rec.customer)
    form.city, form.answers = "Austin", {"heard_from": "Friend"}
    svc.update_contact(MANAGER, cid, rec.customer.version, form)
    row = audits(demo_db, "customer.updated")[-1]
    assert row.before == {"city": None, "question_answers": None}
    assert row.after == {"city": "Austin", "question_answers": {"heard_from": "Friend"}}
    # Another terminal still holds version 1: refused, naming who changed it and where.
    form.city = "Dallas"
    with pytest.raises(StaleRecord, match=r"changed on another terminal by Morgan Manager \(office-term\) at .*reload"):
        svc.update_contact(SUPPORT, cid, rec.customer.version, form)
    assert svc.record(cid).customer.city == "Austin"


def test_question_answers_must_be_one_of_the_choices(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc)
    rec = svc.record(cid)
    form = ContactForm.of(rec.customer)
    form.answers = {"heard_from": "Carrier pigeon"}
    with pytest.raises(ValidationFailed) as bad:
        svc.update_contact(ATTENDANT, cid, rec.customer.version, form)
    assert "answer:heard_from" in bad.value.errors


def test_permission_matrix_is_enforced_in_the_service(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc)
    version = svc.record(cid).customer.version
    with pytest.raises(PermissionDenied, match="Taylor Tech \\(technician\\) may not edit customer details"):
        svc.update_contact(TECHNICIAN, cid, version, ContactForm(first_name="X"))
    with pytest.raises(PermissionDenied, match="ask a manager"):
        svc.delete_customer(ATTENDANT, cid, version)
    with pytest.raises(PermissionDenied):
        svc.add_benefit(ATTENDANT, cid, "Free wash")
    with pytest.raises(PermissionDenied):
        svc.add_note(ATTENDANT, cid, "VIP", operator_notice=True)
    # Support edits contact details and benefits remotely.
    form = ContactForm.of(svc.record(cid).customer)
    form.city = "Houston"
    svc.update_contact(SUPPORT, cid, version, form)
    svc.add_benefit(SUPPORT, cid, "Free wash")
    assert not allowed(ATTENDANT, Permission.EXPIRATION) and allowed(MANAGER, Permission.EXPIRATION)
    assert all(not allowed(TECHNICIAN, p) for p in MATRIX if p is not Permission.VIEW)


def test_relationships_by_number_shown_from_both_sides(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    mr = new_customer(svc, first="Newmem", last="Mister")
    with pytest.raises(ValidationFailed, match="No customer number"):
        svc.add_relationship(ATTENDANT, mr, "C999999", "household")
    with pytest.raises(ValidationFailed, match="themselves"):
        svc.add_relationship(ATTENDANT, mr, mr, "household")
    svc.add_relationship(ATTENDANT, mr, "c100000", "household")
    with pytest.raises(ValidationFailed, match="already related"):
        svc.add_relationship(ATTENDANT, 1, mr, "household")
    [mine] = svc.record(mr).related
    [theirs] = svc.record(1).related
    assert (mine.other_number, mine.outgoing) == ("C100000", True)
    assert (theirs.other_id, theirs.outgoing, theirs.label) == (mr, False, "Household")
    svc.update_relationship(ATTENDANT, mine.relationship_id, "sold_for")
    assert svc.record(1).related[0].label == "Sold for"
    svc.remove_relationship(ATTENDANT, mine.relationship_id)
    assert svc.record(1).related == [] and len(audits(demo_db, "relationship.removed")) == 1


def _membership(db, status: str) -> Membership:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Membership).where(Membership.status == status).order_by(col(Membership.id))).first()


def test_membership_expiration_is_manager_only_and_versioned(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    m = _membership(demo_db, MembershipStatus.ACTIVE)
    with pytest.raises(PermissionDenied, match="expiration"):
        svc.set_expiration(ATTENDANT, m.id, m.version, "2027-06-30")
    with pytest.raises(ValidationFailed, match="YYYY-MM-DD"):
        svc.set_expiration(MANAGER, m.id, m.version, "30/06/2027")
    svc.set_expiration(MANAGER, m.id, m.version, "2027-06-30")
    with pytest.raises(StaleRecord):
        svc.set_expiration(MANAGER, m.id, m.version, "2027-07-31")
    info = next(x for x in svc.record(m.customer_id).memberships if x.id == m.id)
    assert info.expires_on == dt.date(2027, 6, 30) and info.version == m.version + 1


def test_pause_resume_plan_change_and_cancel_at_period_end(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db, gateway=SimulatedGateway(demo_db))
    m = _membership(demo_db, MembershipStatus.ACTIVE)
    svc.pause_membership(ATTENDANT, m.id, m.version)
    with pytest.raises(CustomerError, match="paused membership cannot be paused"):
        svc.pause_membership(ATTENDANT, m.id, m.version + 1)
    svc.resume_membership(ATTENDANT, m.id, m.version + 1)
    info = next(x for x in svc.record(m.customer_id).memberships if x.id == m.id)
    other = "BASIC" if info.plan_code != "BASIC" else "ULTIMATE"
    direction = svc.change_plan(ATTENDANT, m.id, info.version, other)
    assert direction == ("downgrade" if other == "BASIC" else "upgrade")
    with pytest.raises(ValidationFailed, match="already on"):
        svc.change_plan(ATTENDANT, m.id, info.version + 1, other)
    svc.cancel_at_period_end(ATTENDANT, m.id, info.version + 1)
    info = next(x for x in svc.record(m.customer_id).memberships if x.id == m.id)
    assert info.cancel_at_period_end and info.expires_on == info.next_billing_on and info.plan_code == other
    actions = [a.action for a in audits(demo_db, "membership.pause") + audits(demo_db, "membership.resume")]
    assert actions == ["membership.pause", "membership.resume"]
    with pytest.raises(PermissionDenied):
        svc.pause_membership(TECHNICIAN, m.id, info.version)


def test_gateway_billed_membership_goes_through_the_outbox_and_waits_for_the_network(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.services.billing import BillingService
    from db.models import Outbox

    gw = SimulatedGateway(demo_db)
    m, sub = billed_membership(demo_db, gw, MembershipStatus.ACTIVE)
    svc = CustomerService(demo_db, gateway=gw)
    svc.pause_membership(ATTENDANT, m.id, m.version)
    assert _sim_sub(demo_db, sub)["pause_collection"] is not None
    gw.online = False
    outcome = svc.resume_membership(ATTENDANT, m.id, m.version + 1)
    assert outcome.queued and "sent when the network is back" in outcome.message
    with demo_db.read() as s:
        row = s.get(Membership, m.id)
        assert (row.status, row.pending_sync) == (MembershipStatus.PAUSED, True)  # not resumed until the gateway says so
        pending = s.exec(select(Outbox).where(Outbox.status == "pending")).all()
        assert [r.operation for r in pending] == ["subscription.resume"]
    gw.online = True
    assert [r.status for r in BillingService(demo_db, gw).processor.replay_pending()] == ["synced"]
    with demo_db.read() as s:
        row = s.get(Membership, m.id)
        assert (row.status, row.pending_sync) == (MembershipStatus.ACTIVE, False)
    assert _sim_sub(demo_db, sub)["pause_collection"] is None
    # Undo a scheduled cancel, through the outbox too.
    svc.cancel_at_period_end(ATTENDANT, m.id, m.version + 2)
    assert _sim_sub(demo_db, sub)["cancel_at_period_end"] is True
    svc.keep_membership(ATTENDANT, m.id, m.version + 3)
    assert _sim_sub(demo_db, sub)["cancel_at_period_end"] is False
    with demo_db.read() as s:
        row = s.get(Membership, m.id)
        assert (row.cancel_at_period_end, row.expires_on) == (False, None)
    # A final refusal changes nothing and says so.
    with demo_db.write() as s:
        obj = s.get(SimGatewayObject, sub)
        obj.data = {**obj.data, "status": "canceled"}
    with pytest.raises(CustomerError, match="refused to pause.*Nothing was changed"):
        svc.pause_membership(ATTENDANT, m.id, m.version + 4)
    with demo_db.read() as s:
        row = s.get(Membership, m.id)
        assert (row.status, row.pending_sync) == (MembershipStatus.ACTIVE, False)
    without = CustomerService(demo_db)
    with pytest.raises(CustomerError, match="no gateway is configured"):
        without.pause_membership(ATTENDANT, m.id, m.version + 5)


def _sim_sub(demo_db, sub_id):  # noqa: ANN001, ANN202
    with demo_db.read() as s:
        return dict(s.get(SimGatewayObject, sub_id).data)


def test_past_due_member_new_card_pays_the_open_invoice_once_and_becomes_default(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    m, sub = billed_membership(demo_db, gw, MembershipStatus.PAST_DUE)
    invoice = gw.open_invoice(sub, 2345)  # the renewal failed: Stripe's invoice, extras and proration included
    svc = CustomerService(demo_db, gateway=gw)
    with pytest.raises(CustomerError, match="not saved"):
        svc.update_card(ATTENDANT, m.id, m.version, ManualCard.parse("4000000000000002", "12/30", "123"))
    charges_before = gw.counts("payment_intent")
    pm = svc.update_card(ATTENDANT, m.id, m.version + 1, ManualCard.parse("4242 4242 4242 4242", "12/30", "123"))
    assert (pm.last4, pm.is_default) == ("4242", True) and pm.gateway_token.startswith("pm_")
    # One payment: the open invoice, for the invoice's amount. No separate PaymentIntent.
    assert gw.counts("payment_intent") == charges_before + 1
    with demo_db.read() as s:
        assert s.get(SimGatewayObject, invoice).data["status"] == "paid"
        pis = [o.data for o in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))]
    assert [p["amount"] for p in pis if p.get("invoice") == invoice] == [2345]
    rec = svc.record(m.customer_id)
    assert next(x for x in rec.memberships if x.id == m.id).status == MembershipStatus.ACTIVE
    assert [c.last4 for c in rec.cards if c.is_default] == ["4242"]
    row = audits(demo_db, "invoice.pay.done")[-1]
    assert "4242424242424242" not in str(audits(demo_db, "membership.card_updated")) and row.after["charged_cents"] == 2345


def test_a_declined_invoice_payment_keeps_the_member_past_due_and_the_old_default(demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    m, sub = billed_membership(demo_db, gw, MembershipStatus.PAST_DUE)
    gw.open_invoice(sub, 1999)
    svc = CustomerService(demo_db, gateway=gw)
    with pytest.raises(CustomerError, match="saved but not charged"):
        svc.update_card(ATTENDANT, m.id, m.version, ManualCard.parse("4000000000000341", "12/30", "123"))
    rec = svc.record(m.customer_id)
    assert next(x for x in rec.memberships if x.id == m.id).status == MembershipStatus.PAST_DUE
    assert not [c for c in rec.cards if c.is_default and c.last4 == "0341"]


def test_web_login_password_hash_and_random_password(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc, email="ada@example.com")
    with pytest.raises(ValidationFailed, match="username"):
        svc.create_web_login(ATTENDANT, cid, "a b")
    view, password = svc.create_web_login(ATTENDANT, cid, "Ada@Example.com")
    assert view.username == "ada@example.com" and len(password) >= 12
    with demo_db.read() as s:
        stored = s.exec(select(WebLogin)).one().password_hash
    assert password not in stored and stored.startswith("scrypt$")
    assert svc.verify_web_password("ada@example.com", password)
    other = new_customer(svc, first="Bob")
    with pytest.raises(ValidationFailed, match="taken"):
        svc.create_web_login(ATTENDANT, other, "ada@example.com")
    fresh = svc.random_password(SUPPORT, cid)
    assert fresh != password and svc.verify_web_password("ada@example.com", fresh)
    assert not svc.verify_web_password("ada@example.com", password)
    svc.change_username(ATTENDANT, cid, "ada.l")
    with pytest.raises(PermissionDenied):
        svc.remove_web_login(TECHNICIAN, cid)
    svc.remove_web_login(ATTENDANT, cid)
    assert svc.record(cid).web_login is None
    assert all(password not in str(a.after) for a in audits(demo_db, "weblogin.created"))


def test_password_reset_email_over_real_smtp(demo_db, smtp_server) -> None:  # noqa: ANN001
    mailer = Mailer(SmtpConfig(host=smtp_server.host, port=smtp_server.port, from_address="wash@example.com"))
    svc = CustomerService(demo_db, mailer=mailer, reset_url="https://wash.example/reset")
    cid = new_customer(svc, email="ada@example.com")
    svc.create_web_login(ATTENDANT, cid, "ada")
    assert svc.send_password_reset(ATTENDANT, cid) == "ada@example.com"
    [msg] = smtp_server.messages
    assert msg["To"] == "ada@example.com" and msg["From"] == "wash@example.com"
    body = msg.get_payload()
    token = body.split("https://wash.example/reset?token=")[1].split()[0]
    with demo_db.read() as s:
        reset = s.exec(select(PasswordReset)).one()
    assert token not in reset.token_sha256  # only the hash is kept
    svc.complete_password_reset(token, "correct horse battery")
    assert svc.verify_web_password("ada", "correct horse battery")
    with pytest.raises(CustomerError, match="invalid, used or expired"):
        svc.complete_password_reset(token, "another password")
    assert svc.record(cid).web_login.reset_sent_at is not None  # type: ignore[union-attr]


def test_password_reset_with_the_mail_server_down_says_so_and_keeps_nothing(demo_db) -> None:  # noqa: ANN001
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    svc = CustomerService(demo_db, mailer=Mailer(SmtpConfig(host="127.0.0.1", port=dead_port, timeout=2)))
    cid = new_customer(svc, email="ada@example.com")
    svc.create_web_login(ATTENDANT, cid, "ada")
    with pytest.raises(MailError, match=f"127.0.0.1:{dead_port}.*check the smtp settings"):
        svc.send_password_reset(ATTENDANT, cid)
    with demo_db.read() as s:
        assert s.exec(select(PasswordReset)).all() == []
    no_email = new_customer(svc, first="Bob")
    svc.create_web_login(ATTENDANT, no_email, "bob")
    with pytest.raises(ValidationFailed, match="no email address"):
        svc.send_password_reset(ATTENDANT, no_email)


def test_touchpoints_benefits_and_notes(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc)
    with pytest.raises(ValidationFailed) as bad:
        svc.add_touchpoint(ATTENDANT, cid, "", "tomorrow")
    assert set(bad.value.errors) == {"title", "due_on"}
    tid = svc.add_touchpoint(ATTENDANT, cid, "Call about upgrade", "2026-12-01", 2)
    svc.update_touchpoint(ATTENDANT, tid, "Call about upgrade", "2026-12-02", 2, True)
    [tp] = svc.record(cid).touchpoints
    assert (tp.due_on, tp.assignee_name, tp.done) == (dt.date(2026, 12, 2), "Morgan Manager", True)
    svc.delete_touchpoint(ATTENDANT, tid)

    with pytest.raises(ValidationFailed) as bad:
        svc.add_benefit(MANAGER, cid, "Free wash", quantity="2", remaining="5")
    assert "remaining" in bad.value.errors
    bid = svc.add_benefit(MANAGER, cid, "Free wash", "Sorry for the wait", "3", "", "2027-01-31")
    svc.update_benefit(MANAGER, bid, "Free wash", "Sorry for the wait", "3", "1", "2027-01-31")
    [b] = svc.record(cid).benefits
    assert (b.quantity, b.remaining, b.expires_on) == (3, 1, dt.date(2027, 1, 31))
    svc.remove_benefit(SUPPORT, bid)

    nid = svc.add_note(MANAGER, cid, "Board member: extra care", operator_notice=True)
    plain = svc.add_note(ATTENDANT, cid, "Prefers text messages")
    assert [n.body for n in svc.record(cid).notices] == ["Board member: extra care"]
    with pytest.raises(PermissionDenied, match="operator notices"):
        svc.update_note(ATTENDANT, nid, "changed", True)
    with pytest.raises(PermissionDenied):
        svc.delete_note(ATTENDANT, nid)
    svc.update_note(ATTENDANT, plain, "Prefers email", False)
    svc.delete_note(MANAGER, nid)
    assert [n.body for n in svc.record(cid).notes] == ["Prefers email"]
    for action in ["touchpoint.added", "touchpoint.updated", "touchpoint.removed", "benefit.added", "benefit.updated",
                   "benefit.removed", "note.added", "note.updated", "note.removed"]:
        assert audits(demo_db, action), action


def test_delete_customer(demo_db) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    cid = new_customer(svc)
    svc.add_note(ATTENDANT, cid, "temp")
    svc.add_relationship(ATTENDANT, cid, "C100000", "contact")
    with pytest.raises(StaleRecord):
        svc.delete_customer(MANAGER, cid, 99)
    svc.delete_customer(MANAGER, cid, 1)
    assert svc.find_by_number(f"C{100000 + cid}") is None or svc.find_by_number(f"C{100000 + cid}").id != cid
    assert svc.record(1).related == []
    assert audits(demo_db, "customer.deleted")[-1].before["last_name"] == "Lovelace"
    member = _membership(demo_db, MembershipStatus.ACTIVE)
    with pytest.raises(InUse, match="cannot be deleted"):
        svc.delete_customer(MANAGER, member.customer_id, svc.record(member.customer_id).customer.version)
    assert Role.MANAGER in MATRIX[Permission.DELETE]
