"""The migration service without a screen, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlmodel import select

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import ValidationFailed
from clarity_tui.services.legacy import export_migrated
from clarity_tui.services.migration import AlreadyMigrated, BillingDateInPast, MigrationError
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.pin_check import NotAManager, PinService
from db.models import (
    AuditLog,
    Customer,
    LegacyMember,
    Membership,
    MembershipVehicle,
    Operator,
    Role,
    SalesOrder,
    SimGatewayObject,
    Vehicle,
    utcnow,
)
from tests.helpers.lanes import NEXT_BILL, Legacy
from tests.helpers.clock import TODAY
from tests.helpers.migration import service, session_of, to_signed
from tests.helpers.cards import card

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

STROKES = [[[0.1, 0.5, 0], [0.3, 0.4, 20], [0.5, 0.6, 40]], [[0.6, 0.5, 90], [0.9, 0.5, 120]]]


def gateway_objects(db, kind: str) -> list[dict]:  # noqa: ANN001
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind))]


def sign(svc, order_id: int) -> None:  # noqa: ANN001
    svc.review(order_id)
    svc.checkout(order_id)
    svc.accept_terms(order_id, svc.current_terms().id, "presented")
    svc.record_signature(order_id, STROKES, "<svg/>", device="simulated Topaz")


def test_match_contact_account_card_no_charge_billing_date_kept(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    # The session already carries the LEGACY badge (exact plate), and the match ranks Jane first.
    assert session_of(db, legacy.jane_session).legacy_member_id == legacy.jane_id
    found = svc.candidates_for_session(legacy.jane_session)
    assert found[0].id == legacy.jane_id and found[0].score == 1.0 and found[0].match == "plate matches"
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    assert (view.kind, view.legacy_member_id, view.plan is not None) == ("migration", legacy.jane_id, True)
    form = svc.contact_form(view.id)
    assert (form.first_name, form.last_name, form.email) == ("Jane", "Doe", "")
    # SMS: the simulated customer answers with their address.
    sent = svc.request_email(view.id, form.phone)
    assert sent.to == legacy.jane_phone and "Reply" in sent.body
    reply = svc.check_reply(sent)
    assert reply.email == f"member{legacy.jane_phone[-4:]}@example.com"
    form.email = reply.email
    view = svc.confirm_contact(view.id, form)
    assert view.customer_name == "Jane Doe" and [v.plate for v in view.vehicles] == [legacy.jane_plate.upper()]
    assert svc.billing_date(view.id).label == f"No payment due today · next charge {NEXT_BILL:%b %d, %Y}"
    svc.attach_reader_card(view.id, card())
    view = svc.review(view.id)
    assert (view.due_today_cents, view.next_billing_on) == (0, NEXT_BILL)
    sign(svc, view.id)
    result = svc.pay(view.id)
    assert result.ok and result.state == "completed"
    # Nothing charged; one SetupIntent; the subscription's trial ends on the legacy date.
    assert gateway_objects(db, "payment_intent") == []
    assert len(gateway_objects(db, "setup_intent")) == 1
    subs = gateway_objects(db, "subscription")
    assert len(subs) == 1
    assert dt.datetime.fromtimestamp(subs[0]["trial_end"], dt.UTC).date() == NEXT_BILL
    with db.read() as s:
        order = s.get(SalesOrder, view.id)
        m = s.get(Membership, order.membership_id)
        lm = s.get(LegacyMember, legacy.jane_id)
        customer = s.get(Customer, order.customer_id)
        assert (m.source, m.status, m.next_billing_on, m.pending_sync) == ("migration", "active", NEXT_BILL, False)
        assert (m.legacy_member_id, m.legacy_id) == (lm.id, lm.legacy_id)
        assert (lm.migrated_customer_id, lm.migrated_by, lm.migrated_terminal) == (customer.id, "Alex Attendant",
                                                                                 "lane-1-term")
        assert customer.email == reply.email and customer.phone_e164 == legacy.jane_phone
        vehicles = {mv.vehicle_id for mv in s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == m.id))}
        assert vehicles == set(order.vehicle_ids)
        actions = {a.action for a in s.exec(select(AuditLog).where(AuditLog.entity_id == str(order.id)))}
    assert {"migration.matched", "migration.sms_sent", "migration.account", "order.signed",
            "order.migration.billing_started", "order.completed", "order.activated", "migration.completed"} <= actions
    session = session_of(db, legacy.jane_session)
    assert session.customer_id == customer.id
    # Export for the old POS: the legacy id with its new billing date.
    rows = export_migrated(db)
    assert [(r["legacy_id"], r["new_next_billing_on"]) for r in rows] == [(lm.legacy_id, NEXT_BILL.isoformat())]
    assert export_migrated(db, since=TODAY + dt.timedelta(days=400)) == []
    # Paying again changes nothing.
    assert svc.pay(view.id).ok and len(gateway_objects(db, "setup_intent")) == 1


def test_misread_plates_get_the_legacy_badge_at_arrival(legacy: Legacy) -> None:
    from clarity_tui.services.board_view import Badge
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent

    sessions = SessionService(legacy.db)
    camera = Actor.system("test-camera")

    def arrive(plate: str, lane: str = "Lane 3") -> Badge:
        sid = sessions.record_plate_read(PlateEvent(plate=plate, lane=lane), camera)
        return sessions.detail(sid).bubble.badge

    assert arrive("B0S 5I2") is Badge.LEGACY  # O read as 0, 1 for I: Bo
    assert arrive("BOS 51", "Lane 2") is Badge.LEGACY  # one character missed
    assert arrive("BOS 5122", "Pre-Gate") is Badge.LEGACY  # one extra
    assert arrive("QQQ 7777") is Badge.NEW  # nobody's
    # Once Bo is migrated, his plate's look-alikes are nobody's legacy record any more (a car
    # not yet on site: "B0S 5I2" still has its open session, and a read of it would move that).
    with legacy.db.write() as s:
        bo = s.get(LegacyMember, legacy.bo_id)
        bo.migrated_at = utcnow()
        s.add(bo)
    assert arrive("BO5 5I2", "Lane 1") is Badge.NEW


def test_fuzzy_plate_match_ranks_candidates_and_phone_search(legacy: Legacy) -> None:
    svc = service(legacy.db)
    found = svc.candidates_for_session(legacy.bo_session)  # read "8OS 512" for "BOS 512"
    assert found[0].id == legacy.bo_id and found[0].score == 0.9 and "look-alike" in found[0].match
    # The read was a look-alike, not exact: the bubble shows LEGACY from the arrival all the same.
    assert session_of(legacy.db, legacy.bo_session).legacy_member_id == legacy.bo_id
    svc.begin(legacy.bo_session, legacy.bo_id)  # "That's Me"
    assert session_of(legacy.db, legacy.bo_session).legacy_member_id == legacy.bo_id
    assert [c.id for c in svc.search("BOS51")][0] == legacy.bo_id  # one character missing
    assert [c.id for c in svc.search("BOS5122")][0] == legacy.bo_id  # one extra
    assert svc.search("ZZZ 9999") == []
    by_phone = svc.search(legacy.jane_phone[2:5] + "-" + legacy.jane_phone[5:8] + "-" + legacy.jane_phone[8:])
    assert [c.id for c in by_phone] == [legacy.jane_id] and by_phone[0].phone_hint.endswith(legacy.jane_phone[-4:])
    with pytest.raises(MigrationError, match="phone"):
        svc.search("512-555-01")
    with pytest.raises(MigrationError, match="Type the plate"):
        svc.search("  ")


def test_several_candidates_are_ranked(legacy: Legacy) -> None:
    db = legacy.db
    from db.models import LegacyMemberPlate

    with db.write() as s:
        others = s.exec(select(LegacyMember).order_by(LegacyMember.id)).all()[2:4]
        for lm, plate in zip(others, ("BOS512", "B0S5I2X"), strict=True):
            p = s.exec(select(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == lm.id)).one()
            p.plate_raw, p.plate_normalized = plate, plate
            s.add(p)
        exact_id, fuzzy_id = others[0].id, others[1].id
    found = service(db).search("BOS 512")
    # Two exact plates first (ties by name), then the one-character-off look-alike "B0S5I2X".
    assert {c.id for c in found[:2]} == {exact_id, legacy.bo_id} and [c.score for c in found[:2]] == [1.0, 1.0]
    assert found[2].id == fuzzy_id and found[2].score == 0.7 and found[2].match == "plate one character off"
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_sms_unanswered_invalid_reply_and_typed_email_validation(legacy: Legacy) -> None:
    silent = SimulatedSms(responder=None)
    svc = service(legacy.db, sms=silent)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    sent = svc.request_email(view.id, legacy.jane_phone)
    assert svc.check_reply(sent).text is None  # never answered
    silent.receive(legacy.jane_phone, "it's jane at home")
    reply = svc.check_reply(sent)
    assert reply.email is None and "no valid email" in reply.problem
    form = svc.contact_form(view.id)
    form.email = "jane@@example"
    with pytest.raises(ValidationFailed) as err:
        svc.confirm_contact(view.id, form)
    assert "email" in err.value.errors
    form.email = ""
    with pytest.raises(ValidationFailed) as err:
        svc.confirm_contact(view.id, form)
    assert "email" in err.value.errors
    with pytest.raises(ValidationFailed) as err:
        svc.request_email(view.id, "1.55E+10")
    assert "phone" in err.value.errors
    form.email = "Jane@Example.com"
    assert svc.confirm_contact(view.id, form).email == "Jane@example.com"


def test_declined_card_then_another_card(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    form = svc.contact_form(view.id)
    form.email = "jane@example.com"
    svc.confirm_contact(view.id, form)
    svc.attach_reader_card(view.id, card("generic_decline"))
    sign(svc, view.id)
    result = svc.pay(view.id)
    assert not result.ok and result.state == "payment_pending" and "declined" in result.message.lower()
    svc.attach_reader_card(view.id, card())
    result = svc.pay(view.id)
    assert result.ok
    assert gateway_objects(db, "payment_intent") == []
    assert len(gateway_objects(db, "subscription")) == 1


def test_billing_date_in_the_past_needs_a_manager(legacy: Legacy) -> None:
    db = legacy.db
    with db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.next_bill_on = TODAY - dt.timedelta(days=3)
        s.add(jane)
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    form = svc.contact_form(view.id)
    form.email = "jane@example.com"
    svc.confirm_contact(view.id, form)
    svc.attach_reader_card(view.id, card())
    date = svc.billing_date(view.id)
    assert date.problem and "in the past" in date.problem and "manager" in date.label
    with pytest.raises(BillingDateInPast, match="Manager override"):
        svc.review(view.id)
    # The approver comes from the one PIN check (services/pin_check): a manager's own PIN.
    pins = PinService(db, "lane-1-term")
    with db.read() as s:
        alex = s.exec(select(Operator).where(Operator.name == "Alex Attendant")).one()
    with pytest.raises(NotAManager):  # an attendant cannot approve, and no attempt is counted
        pins.approve_manager(alex.id, "123456", action="migration.billing_date_override")
    with pytest.raises(PermissionDenied):  # nor be passed off as the approver
        svc.override_billing_date(view.id, TODAY + dt.timedelta(days=5),
                                  Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term", alex.id))
    manager = pins.approve_manager(pins.manager_by_name("Morgan Manager"), "654321",
                                   action="migration.billing_date_override", entity="sales_order", entity_id=view.id)
    with pytest.raises(MigrationError, match="after today"):
        svc.override_billing_date(view.id, TODAY, manager)
    chosen = TODAY + dt.timedelta(days=5)
    date = svc.override_billing_date(view.id, chosen, manager)
    assert (date.effective, date.overridden, date.problem) == (chosen, True, None)
    sign(svc, view.id)
    assert svc.pay(view.id).ok
    with db.read() as s:
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
        audit_row = s.exec(select(AuditLog).where(AuditLog.action == "migration.billing_date_override")).one()
    assert m.next_billing_on == chosen and audit_row.after["manager"] == "Morgan Manager"


def test_migrate_once_second_attempt_is_refused_with_who_and_when(legacy: Legacy) -> None:
    db = legacy.db
    first = service(db, "lane-1-term", name="Alex Attendant")
    assert first.pay(to_signed(first, legacy)).ok
    other = service(db, "lane-2-term", name="Morgan Manager")
    with pytest.raises(AlreadyMigrated, match="already migrated by Alex Attendant on terminal lane-1-term"):
        other.begin(legacy.jane_session, legacy.jane_id)
    found = other.search(legacy.jane_plate)
    assert found[0].migrated and "Alex Attendant" in found[0].migrated


def test_two_terminals_at_once_exactly_one_wins(legacy: Legacy) -> None:
    db = legacy.db
    # Same legacy member (known by phone only: no plate to collide on), two cars, two terminals, both
    # signed: they pay at the same moment.
    from sqlalchemy import delete

    from db.models import LegacyMemberPlate

    with db.write() as s:
        s.exec(delete(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == legacy.jane_id))
    a = service(db, "lane-1-term", name="Alex Attendant")
    b = service(db, "lane-2-term", name="Morgan Manager")
    order_a = to_signed(a, legacy, "a@example.com")
    view_b = b.begin(legacy.stranger_session, legacy.jane_id)
    form = b.contact_form(view_b.id)
    form.email = "b@example.com"
    form.phone = "(512) 555-0199"
    b.confirm_contact(view_b.id, form)
    b.attach_reader_card(view_b.id, card())
    sign(b, view_b.id)
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def run(name: str, svc, order_id: int) -> None:  # noqa: ANN001
        barrier.wait()
        try:
            results[name] = svc.pay(order_id)
        except AlreadyMigrated as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=("a", a, order_a)), threading.Thread(target=run, args=("b", b, view_b.id))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = sorted(type(r).__name__ for r in results.values())
    assert outcomes == ["AlreadyMigrated", "PayResult"], results
    assert len(gateway_objects(db, "subscription")) == 1
    with db.read() as s:
        assert len(s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id,
                                                   Membership.status == "active")).all()) == 1


def test_killed_after_the_card_was_saved_resumes_without_a_second_setup_intent(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    order_id = to_signed(svc, legacy)

    class Killed(BaseException):
        pass

    def die(point: str, entry) -> None:  # noqa: ANN001
        if entry.operation == "card.save" and point == "after_done":
            raise Killed

    svc.billing.processor.observers.append(die)
    with pytest.raises(Killed):
        svc.pay(order_id)
    assert len(gateway_objects(db, "setup_intent")) == 1 and gateway_objects(db, "subscription") == []
    restarted = service(db)  # a new process: start-up recovery, then the flow resumes the order
    assert restarted.recover() == [order_id]
    assert restarted.pay(order_id).ok
    assert len(gateway_objects(db, "setup_intent")) == 1 and len(gateway_objects(db, "subscription")) == 1
    with db.read() as s:
        assert s.get(LegacyMember, legacy.jane_id).migrated_at is not None


def test_cancel_leaves_the_member_unmigrated_and_a_new_attempt_starts_fresh(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    assert svc.cancel(view.id).state == "cancelled"
    with db.read() as s:
        assert s.get(LegacyMember, legacy.jane_id).migrated_at is None
    # A new attempt opens a fresh order.
    again = svc.begin(legacy.jane_session, legacy.jane_id)
    assert again.id != view.id


def test_unmapped_plan_is_refused(legacy: Legacy) -> None:
    with legacy.db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.plan_id, jane.plan_name = None, "Gold Club"
        s.add(jane)
    with pytest.raises(MigrationError, match="Gold Club"):
        service(legacy.db).begin(legacy.jane_session, legacy.jane_id)


def test_vehicles_from_legacy_plates_and_the_misread_session_links_to_the_real_plate(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    view = svc.begin(legacy.bo_session, legacy.bo_id)
    form = svc.contact_form(view.id)
    form.email = "bo@example.com"
    view = svc.confirm_contact(view.id, form)
    assert [v.plate for v in view.vehicles] == ["BOS 512"]  # the legacy plate, not the misread "8OS 512"
    with db.read() as s:
        v = s.exec(select(Vehicle).where(Vehicle.plate_normalized == "BOS512")).one()
    assert session_of(db, legacy.bo_session).vehicle_id == v.id
