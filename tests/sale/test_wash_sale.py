"""A single wash sold at the lane (issue 18 item 2): from a session, a package and extras, paid card-present on
the reader through the outbox, the receipt by text or email, audited, a normal completed order for the reports.

Real parts: the database (SQLite and PostgreSQL), the outbox and billing hooks, the simulated gateway and card
reader, the simulated SMS provider and mailbox, and real processes racing for one session."""

from __future__ import annotations

import datetime as dt
import signal

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from clarity_tui.config import Settings
from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.orders.guards import OrderBusy
from clarity_tui.services.orders.wash_sale import WashSaleError, WashSaleService
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.receipts import CLAIM_LEASE, ReceiptError, ReceiptSender
from clarity_tui.services.reports import day_report
from clarity_tui.services.wash_menu import MenuError, WashMenu
from clarity_tui.wiring import Services
from db.models import (
    AuditLog,
    Membership,
    MembershipVehicle,
    OrderState,
    Plan,
    Vehicle,
    VehicleSession,
    VisitRefusal,
    Wash,
)
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from tests.helpers.actors import ATTENDANT, MANAGER, SUPPORT
from tests.helpers.lanes import Lanes, arrive
from tests.helpers.sale import EXCLUSIVE, sale_service
from tests.helpers.wash_payment import sim_payment_intents
from tests.helpers.wash import (
    audit_actions,
    charge_rows,
    crash_mid_send,
    lines_of,
    order_row,
    outbox_operations,
    race,
    receipt_row_of,
    wait_receipt,
    wash_lane,
    wash_of_session,
)

pytestmark = pytest.mark.both_databases  # money and a session two terminals share: both databases

CARD_NUMBER = "4242424242424242"  # the simulated reader's card: only its last 4 may appear


def member_on(lanes: Lanes, plan_code: str) -> None:
    """The member's car at Lane 3 is covered by a membership of `plan_code`."""
    with lanes.db.write() as s:
        plan = s.exec(select(Plan).where(Plan.code == plan_code)).one()
        s.exec(update(Membership).where(col(Membership.customer_id) == lanes.member_customer_id)
               .values(plan_id=plan.id))


def test_a_single_wash_is_chosen_paid_on_the_reader_and_its_receipt_texted_once(lanes: Lanes) -> None:
    db = lanes.db
    lane = wash_lane(db, tax=EXCLUSIVE)
    view = lane.service.open_for_session(lanes.unknown)
    assert (view.state, view.plate, view.member_plan, view.paid, view.lines) == ("draft", "NEW-4821", None, False, ())
    view = lane.service.choose(view.order_id, "ultimate", ["tire_shine"])
    assert view.lines == (("Ultimate wash", 2000), ("Tire shine", 300))
    assert (view.package and view.package.code, [e.code for e in view.extras]) == ("ULTIMATE", ["TIRE_SHINE"])
    assert (view.subtotal_cents, view.tax_cents, view.total_cents, view.tax_label) == (2300, 190, 2490,
                                                                                      "Sales tax 8.25%")
    view = lane.service.choose(view.order_id, "BASIC", [])  # changed their mind: the lines are replaced
    assert lines_of(db, view.order_id) == [("package", "BASIC", 1000)]
    view = lane.service.choose(view.order_id, "ULTIMATE", ["TIRE_SHINE"])
    assert lane.service.set_receipt(view.order_id, "(512) 555-0143 ").receipt_to == "+15125550143"

    result = lane.pay(view.order_id)
    assert (result.state, result.paid, result.message) == ("completed", True, None)
    assert wait_receipt(lane, view.order_id) == "sent"

    order = order_row(db, view.order_id)
    assert (order.kind, order.state, order.due_today_cents, order.tax_cents) == ("wash", "completed", 2490, 190)
    assert order.gateway_payment_id and order.completed_at is not None
    assert (order.operator_id, order.terminal, order.lane_id) == (ATTENDANT.operator_id, "lane-1-term",
                                                                  _lane_of(lanes, lanes.unknown))
    wash = wash_of_session(db, lanes.unknown)
    assert wash is not None
    assert (wash.kind, wash.order_id, wash.package_code, wash.extras, wash.dispatch_status) == (
        "retail", view.order_id, "ULTIMATE", ["TIRE_SHINE"], "waiting")
    actions = audit_actions(db, view.order_id)
    for step in ("wash.opened", "wash.chosen", "receipt.contact", "wash.pay", "wash.paid", "receipt.sent"):
        assert step in actions
    assert actions.count("receipt.sent") == 1
    report = day_report(db, dt.datetime.now(dt.UTC).date(), actor=MANAGER)  # the order's day, on the real clock
    assert (report.single_washes.count, report.single_washes.amount_cents, report.sold) == (1, 2490, 0)

    (text,) = lane.sms.sent
    assert text.to == "+15125550143"
    assert "Ultimate wash" in text.body and "+ Tire shine" in text.body and "$24.90" in text.body
    assert "Sales tax 8.25%" in text.body and "•••• 4242" in text.body and CARD_NUMBER not in text.body
    assert lane.service.receipt_text(view.order_id) == text.body
    # Sent once: sending again (another worker, a restart) sends nothing more.
    assert lane.service.receipts is not None and lane.service.receipts.send(view.order_id).status == "sent"
    assert len(lane.sms.sent) == 1
    # One wash per session: opening the session again shows the paid wash.
    again = lane.service.open_for_session(lanes.unknown)
    assert (again.order_id, again.paid) == (view.order_id, True)
    with pytest.raises(WashSaleError, match="^This wash is already paid: it can no longer be changed.$"):
        lane.service.choose(view.order_id, "BASIC", [])
    with pytest.raises(WashSaleError, match="^This wash is paid: a manager refunds it from the order"):
        lane.service.cancel(view.order_id)


def test_an_email_given_after_the_payment_gets_the_receipt_at_once_and_once(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "DELUXE", [])
    assert lane.pay(order_id).paid
    assert receipt_row_of(lanes.db, order_id) is None  # no contact given: nothing to send
    lane.service.set_receipt(order_id, " Pat.Lee@Example.com")
    assert wait_receipt(lane, order_id) == "sent"
    (mail,) = lane.mail.sent
    assert mail.to == "Pat.Lee@example.com" and "Deluxe wash" in mail.body and "$15.00" in mail.body
    assert mail.subject == "Your receipt from Clarity Express Wash"
    with pytest.raises(ReceiptError, match=r"^The receipt was already sent to Pat\.Lee@example\.com: it is sent once\.$"):
        lane.service.set_receipt(order_id, "+15125550143")
    assert len(lane.mail.sent) == 1 and lane.sms.sent == []


@pytest.mark.parametrize(("contact", "message"), [
    ("", "Enter the customer's mobile number or email address for the receipt."),
    ("12", "'12' is not a valid US phone number: check the digits, or start with + and the country code. The "
           "receipt goes by text to a mobile number, or by email."),
    ("pat@", "'pat@' is not a valid email address: There must be something after the @-sign. The receipt goes by "
             "text to a mobile number, or by email."),
])
def test_a_bad_receipt_contact_gets_one_clear_sentence(lanes: Lanes, contact: str, message: str) -> None:
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    with pytest.raises(ReceiptError) as err:
        lane.service.set_receipt(order_id, contact)
    assert str(err.value) == message
    assert receipt_row_of(lanes.db, order_id) is None


def test_a_receipt_the_provider_refuses_leaves_the_wash_paid(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db, sms=SimulatedSms(responder=None, fail_with="The number cannot receive texts."))
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert lane.pay(order_id).paid
    assert wait_receipt(lane, order_id) == "unsent"
    row = receipt_row_of(lanes.db, order_id)
    assert row is not None and row.last_error == "The number cannot receive texts."
    assert order_row(lanes.db, order_id).state == "completed"
    assert "receipt.failed" in audit_actions(lanes.db, order_id)


def test_a_receipt_left_unsent_by_a_crash_is_sent_once_at_the_next_start(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db)
    receipts = lane.service.receipts
    lane.service.receipts = None  # the lane stopped right after the payment: its receipt never went
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert lane.pay(order_id).paid
    row = receipt_row_of(lanes.db, order_id)
    assert row is not None and row.status == "waiting"
    assert receipts is not None
    assert [o.status for o in receipts.send_due()] == ["sent"]
    assert receipts.send_due() == []  # nothing left: never twice
    assert len(lane.sms.sent) == 1


def test_the_receipt_has_its_own_row_and_never_an_outbox_row(lanes: Lanes) -> None:
    db = lanes.db
    lane = wash_lane(db)
    before = outbox_operations(db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert outbox_operations(db) == before  # the contact is not a gateway call
    assert lane.pay(order_id).paid
    assert wait_receipt(lane, order_id) == "sent"
    (charge,) = charge_rows(db, order_id)
    assert outbox_operations(db) == [*before, charge.operation]  # the card charge, and nothing for the receipt
    row = receipt_row_of(db, order_id)
    assert row is not None and row.sent_at is not None
    assert (row.channel, row.to, row.status, row.attempts, row.last_error, row.claimed_until) == (
        "sms", "+15125550143", "sent", 1, None, None)
    assert lane.service.open_for_session(lanes.unknown).receipt_to == "+15125550143"  # the view reads it there


def test_an_unsent_receipt_is_sent_by_the_next_try(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db, sms=SimulatedSms(responder=None, fail_with="The provider is unreachable."))
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert lane.pay(order_id).paid
    assert wait_receipt(lane, order_id) == "unsent"
    unsent = receipt_row_of(lanes.db, order_id)
    assert unsent is not None and unsent.last_error == "The provider is unreachable."
    sms = SimulatedSms(responder=None)
    retry = ReceiptSender(lanes.db, sms=sms, mailer=None, actor=ATTENDANT)
    assert [(o.status, o.to) for o in retry.send_due()] == [("sent", "+15125550143")]
    assert retry.send_due() == [] and len(sms.sent) == 1
    row = receipt_row_of(lanes.db, order_id)
    assert row is not None and (row.status, row.attempts, row.last_error) == ("sent", unsent.attempts + 1, None)


def test_a_sender_killed_mid_send_holds_the_receipt_until_its_lease_runs_out(lanes: Lanes) -> None:
    db = lanes.db
    lane = wash_lane(db)
    lane.service.receipts = None  # sent by the processes below
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert lane.pay(order_id).paid
    assert crash_mid_send(db.url, order_id) == -signal.SIGKILL
    row = receipt_row_of(db, order_id)
    assert row is not None and (row.status, row.attempts) == ("sending", 1) and row.claimed_until is not None
    sms = SimulatedSms(responder=None)
    now = ReceiptSender(db, sms=sms, mailer=None, actor=ATTENDANT)
    assert now.send_due() == [] and now.send(order_id).status == "sending"  # its claim still holds: no text
    assert sms.sent == []
    after_lease = ReceiptSender(db, sms=sms, mailer=None, actor=ATTENDANT,
                                clock=lambda: dt.datetime.now(dt.UTC) + CLAIM_LEASE + dt.timedelta(seconds=1))
    assert [o.status for o in after_lease.send_due()] == ["sent"]
    assert after_lease.send_due() == [] and len(sms.sent) == 1
    assert audit_actions(db, order_id).count("receipt.sent") == 1


def test_a_declined_card_keeps_the_wash_payable_and_the_next_card_pays_once(lanes: Lanes) -> None:
    db = lanes.db
    lane = wash_lane(db, reader=SimulatedCardReader(delay=0, outcome=Outcome.DECLINE))
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", ["CERAMIC"])
    declined = lane.pay(order_id)
    assert (declined.state, declined.paid) == ("payment_pending", False)
    assert declined.message and "declined" in declined.message.lower()
    assert wash_of_session(db, lanes.unknown) is None
    view = lane.service.choose(order_id, "BASIC", [])  # after a decline the wash may change
    assert view.total_cents == 1000 and view.last_error is None
    lane.reader = SimulatedCardReader(delay=0)
    assert lane.pay(order_id).paid
    rows = charge_rows(db, order_id)
    assert [r.status for r in rows] == ["failed", "done"]
    assert rows[0].idempotency_key != rows[1].idempotency_key
    assert (rows[1].payload or {})["amount_cents"] == 1000
    assert lane.pay(order_id).paid and len(charge_rows(db, order_id)) == 2  # paying again charges nothing


def test_a_payment_whose_answer_was_lost_is_finished_by_paying_again_never_twice(lanes: Lanes) -> None:
    db = lanes.db
    lane = wash_lane(db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "DELUXE", [])
    gateway = lane.service.gateway
    assert isinstance(gateway, SimulatedGateway)
    gateway.inject_fault("payment_intent.process", drop=True)  # charged, but the answer is lost
    lost = lane.pay(order_id)
    assert not lost.paid and lost.message
    with pytest.raises(WashSaleError, match=r"^The card payment is not finished yet: take the payment again to "
                                            r"finish it \(nothing is charged twice\), or cancel the wash\.$"):
        lane.service.choose(order_id, "BASIC", [])
    assert lane.pay(order_id).paid
    (row,) = charge_rows(db, order_id)  # the same row, the same key
    assert row.status == "done"
    assert [p["status"] for p in sim_payment_intents(db)] == ["succeeded"]


def test_a_member_buys_the_extras_their_plan_lacks_on_their_visit(lanes: Lanes) -> None:
    db = lanes.db
    member_on(lanes, "DELUXE")
    lane = wash_lane(db)
    view = lane.service.open_for_session(lanes.member)
    assert view.member_plan == "Deluxe Wash Club"
    with pytest.raises(MenuError, match="^Tire shine is already in the Deluxe Wash Club plan: the member gets it at "
                                        "no charge.$"):
        lane.service.choose(view.order_id, None, ["TIRE_SHINE"])
    with pytest.raises(MenuError, match="^Choose an extra to sell: the Deluxe Wash Club plan already includes"):
        lane.service.choose(view.order_id, None, [])
    view = lane.service.choose(view.order_id, None, ["CERAMIC"])
    assert (view.package, view.lines, view.total_cents) == (None, (("Ceramic seal", 500),), 500)
    assert lane.pay(view.order_id).paid
    wash = wash_of_session(db, lanes.member)
    assert wash is not None and wash.order_id == view.order_id and "CERAMIC" in (wash.extras or [])
    assert wash.kind == "member"  # the visit the camera read recorded, with the extras the member paid
    assert "Deluxe Wash Club: wash included" in lane.service.receipt_text(view.order_id)


def test_a_members_extras_wait_for_the_lane_where_the_visit_is_recorded(lanes: Lanes) -> None:
    db = lanes.db
    with db.write() as s:  # another member, on Deluxe, whose car is read at the Pre-Gate
        deluxe = s.exec(select(Plan).where(Plan.code == "DELUXE")).one()
        row = s.exec(select(Membership, MembershipVehicle, Vehicle)
                     .join(MembershipVehicle, col(MembershipVehicle.membership_id) == col(Membership.id))
                     .join(Vehicle, col(Vehicle.id) == col(MembershipVehicle.vehicle_id))
                     .where(Membership.status == "active", Membership.customer_id != lanes.member_customer_id)
                     .order_by(col(Membership.id))).first()
        assert row is not None and deluxe.id is not None
        membership, _, car = row
        membership.plan_id = deluxe.id
        s.add(membership)
        plate = car.plate
    session = arrive(db, plate, lane="Pre-Gate")
    lane = wash_lane(db)
    view = lane.service.open_for_session(session)
    assert view.member_plan == "Deluxe Wash Club"
    with pytest.raises(WashSaleError, match="^Deluxe Wash Club members' extras are sold at the lane, where their "
                                            "visit is recorded: sell them there, or choose a package.$"):
        lane.service.choose(view.order_id, None, ["CERAMIC"])
    assert lane.service.choose(view.order_id, "ULTIMATE", []).total_cents == 2000  # a wash above the plan's


def test_a_member_over_the_limit_buys_a_single_wash_like_anyone(lanes: Lanes) -> None:
    db = lanes.db
    member_on(lanes, "ULTIMATE")
    with db.write() as s:
        vs = s.get(VehicleSession, lanes.member)
        member = s.exec(select(Membership).where(Membership.customer_id == lanes.member_customer_id)).first()
        assert vs is not None and vs.vehicle_id is not None and member is not None and member.id is not None
        for wash in s.exec(select(Wash).where(Wash.session_id == lanes.member)):  # over the limit: no visit
            s.delete(wash)
        s.add(VisitRefusal(session_id=lanes.member, vehicle_id=vs.vehicle_id, membership_id=member.id,
                           lane_id=vs.lane_id))
    lane = wash_lane(db)
    view = lane.service.open_for_session(lanes.member)
    assert view.member_plan is None
    with pytest.raises(MenuError, match="^Choose a package first: extras are sold with a single wash.$"):
        lane.service.choose(view.order_id, None, ["CERAMIC"])
    assert lane.service.choose(view.order_id, "ULTIMATE", ["CERAMIC"]).total_cents == 2500


def test_a_package_retired_after_it_was_chosen_is_not_charged(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    with pytest.raises(WashSaleError, match=r"^Choose the package \(and any extras\) before taking the payment\.$"):
        lane.pay(order_id)
    lane.service.choose(order_id, "DELUXE", [])
    WashMenu(lanes.db, MANAGER).retire("DELUXE")
    with pytest.raises(WashSaleError, match="^Deluxe wash is no longer sold: choose another package. Nothing was "
                                            "charged.$"):
        lane.pay(order_id)
    assert charge_rows(lanes.db, order_id) == [] and order_row(lanes.db, order_id).state == "draft"


def test_cancel_before_paying_and_who_may_sell(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    assert lane.service.cancel(order_id).state == OrderState.CANCELLED
    assert "wash.cancelled" in audit_actions(lanes.db, order_id)
    fresh = lane.service.open_for_session(lanes.unknown)
    assert fresh.order_id != order_id and fresh.state == "draft"
    membership_sale = sale_service(lanes.db).open_for_session(lanes.ivana)  # Ivana is being sold a membership
    with pytest.raises(WashSaleError, match="^A membership sale for .+ is open on this terminal: finish or cancel it "
                                            "first, then sell the single wash.$"):
        lane.service.open_for_session(lanes.ivana)
    assert order_row(lanes.db, membership_sale.id).state == "draft"  # left as it was
    support = wash_lane(lanes.db, actor=SUPPORT, terminal="ssh").service
    with pytest.raises(PermissionDenied):
        support.open_for_session(lanes.ivana)
    with lanes.db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.actor == SUPPORT.name)).all() == []


def test_two_terminals_opening_one_car_at_once_make_one_wash_order(lanes: Lanes) -> None:
    got = race(lanes.db.url, "open", lanes.unknown, ["lane-1-term", "lane-2-term"])
    outcomes = sorted(kind for kind, _ in got.values())
    assert outcomes == ["busy", "opened"]
    busy = next(detail for kind, detail in got.values() if kind == "busy")
    assert "NEW-4821" in busy and "Only one sale per vehicle" in busy
    # The terminal that lost sees who holds it, also afterwards.
    loser = next(t for t, (kind, _) in got.items() if kind == "busy")
    with pytest.raises(OrderBusy):
        wash_lane(lanes.db, actor=Actor("other", ATTENDANT.role, loser), terminal=loser).service.open_for_session(
            lanes.unknown)


def test_two_processes_sending_one_receipt_at_once_send_it_once(lanes: Lanes) -> None:
    lane = wash_lane(lanes.db)
    lane.service.receipts = None  # sent by the racers below
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    lane.service.choose(order_id, "BASIC", [])
    lane.service.set_receipt(order_id, "+15125550143")
    assert lane.pay(order_id).paid
    got = race(lanes.db.url, "receipt", order_id, ["lane-1-term", "lane-2-term", "office-term"])
    assert sum(texts for _, texts in got.values()) == 1
    assert sorted(status for status, _ in got.values()).count("sent") >= 1
    assert audit_actions(lanes.db, order_id).count("receipt.sent") == 1


def test_the_running_terminal_builds_the_service_from_its_services(lanes: Lanes, settings: Settings) -> None:
    services = Services(settings, lanes.db, messaging=SimulatedSms(responder=None))
    service = WashSaleService.from_services(services, ATTENDANT)
    assert (service.terminal, service.actor, service.receipts is not None) == ("lane-1-term", ATTENDANT, True)
    view = service.open_for_session(lanes.unknown)
    assert service.choose(view.order_id, "BASIC", ["CERAMIC"]).total_cents == 1500


def _lane_of(lanes: Lanes, session_id: int) -> int:
    with lanes.db.read() as s:
        vs = s.get(VehicleSession, session_id)
        assert vs is not None
        return vs.lane_id
