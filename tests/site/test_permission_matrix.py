"""Permissions in every service (issue 15 item 3): every role against every guarded entry point.

On a real database (SQLite) with the demo site: a sale and a migration open at the
terminal, a vehicle waiting, the operators' shifts. For each role every entry point of TABLE is
called as that role:
- allowed: no PermissionDenied (the call may still fail for a domain reason: an order in the wrong
  state, nothing to refund; that is fine);
- refused: PermissionDenied naming the role, and nothing written (every table's rows, and the texts
  sent, are the same before and after).
Every public method of the guarded services is in TABLE or in UNGUARDED (with the reason), so a new
entry point cannot slip in unchecked. CustomerService has its own role tests (tests/customers/test_service.py):
here, every method of it that checks a manager-only permission is in TABLE.

A manager's approval (the billing-date override) is checked on the approver, not on who is signed in:
its row calls it with Alex signed in at the terminal and the role under test as the approver.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlmodel import col, select

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.payments.sim_store import sim_token
from clarity_tui.services import audit_query, card_present, permissions, reader_card, reports, upsell
from clarity_tui.services.commissions import CommissionRates
from clarity_tui.services.orders.wash_sale import WashSaleService
from clarity_tui.services.tunnel_dispatch import TunnelDispatch
from hardware.tunnel.simulated import SimulatedTunnel
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin
from clarity_tui.services.billing import BillingService
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.hosted_card import HostedCardService
from clarity_tui.services.membership_actions import MembershipActions
from clarity_tui.services.migration import MigrationService
from clarity_tui.services.operator_admin import OperatorAdmin
from clarity_tui.services.permissions import MATRIX, Permission, PermissionDenied, allowed, render_table
from clarity_tui.services.orders import SaleService
from clarity_tui.services.sessions import SessionService
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    Operator,
    OperatorShift,
    Role,
    SessionStatus,
    TermsVersion,
    VehicleSession,
)
from hardware.plate_reader import PlateEvent
from tests.helpers.clock import FIXED_NOW
from tests.helpers.ui import make_app, wait_until

TERMINAL = "lane-1-term"
TODAY = FIXED_NOW.date()
STROKES = [[[0.1, 0.5, 0], [0.3, 0.4, 20], [0.5, 0.6, 40]], [[0.6, 0.5, 90], [0.9, 0.5, 120]]]
OPERATORS = {"attendant": "Alex Attendant", "manager": "Morgan Manager", "technician": "Taylor Tech",
             "support": "Sam Support"}
ROLES = ["attendant", "manager", "support", "technician", "system"]
P = Permission


@dataclass
class World:
    db: Any
    sms: SimulatedSms
    actors: dict[str, Actor]
    shifts: dict[int, int]  # operator id -> that operator's shift here
    sale_session: int
    sale_order: int
    mig_session: int
    mig_order: int
    legacy_id: int
    legacy_phone: str
    spare_session: int
    status_session: int
    customer_id: int
    membership_id: int
    membership_version: int
    terms_id: int
    target_operator: int = 0  # an attendant the operator-management rows act on
    inactive_legacy_id: int = 0  # a cancelled legacy member: migrating them needs a manager's approval
    inactive_session: int = 0
    wash_session: int = 0  # a car Alex is selling a single wash (issue 18)
    wash_order: int = 0
    gateway: Any = field(init=False)

    def __post_init__(self) -> None:
        self.gateway = SimulatedGateway(self.db)

    def washes(self, actor: Actor) -> WashSaleService:
        return WashSaleService(self.db, self.gateway, actor, terminal=TERMINAL, today=lambda: TODAY)

    def tunnel(self, actor: Actor) -> TunnelDispatch:
        return TunnelDispatch(self.db, SimulatedTunnel(), actor)

    def sales(self, actor: Actor) -> SaleService:
        return SaleService(self.db, self.gateway, actor, terminal=TERMINAL, today=lambda: TODAY)

    def migration(self, actor: Actor) -> MigrationService:
        return MigrationService(self.db, self.gateway, actor, terminal=TERMINAL, today=lambda: TODAY, sms=self.sms,
                                site_name="Clarity Wash")

    def hosted(self, actor: Actor) -> HostedCardService:
        return HostedCardService(self.db, self.gateway, self.sms, actor, success_url="https://wash.example/saved")

    def actions(self, actor: Actor) -> MembershipActions:
        return MembershipActions(BillingService(self.db, self.gateway, actor))

    def customers(self) -> CustomerService:
        return CustomerService(self.db, gateway=self.gateway, today=lambda: TODAY)

    def operators(self) -> OperatorAdmin:
        return OperatorAdmin(self.db, TERMINAL)

    def version_of_membership(self) -> int:
        """The membership's version now (a manager's earlier rows paused it)."""
        with self.db.read() as s:
            return s.get(Membership, self.membership_id).version

    def refundable_membership(self) -> int:
        """The membership the sale paid for, if it was paid (a manager's row); else the demo's."""
        return self.sales(self.actors["manager"]).order(self.sale_order).membership_id or self.membership_id

    def own_shift(self, actor: Actor) -> int:
        """The actor's own shift (an operator-less actor has none: it gets someone else's)."""
        return self.shifts.get(actor.operator_id or -1) or next(iter(self.shifts.values()))

    def others_shift(self, actor: Actor) -> int:
        return next(shift for op, shift in self.shifts.items() if op != actor.operator_id)


def card() -> CardToken:
    return CardToken(sim_token("ok"), "visa", "4242", 4, 2029)


@pytest.fixture
def world(demo_db) -> World:  # noqa: ANN001
    db = demo_db
    camera = Actor.system("test-camera", TERMINAL)
    with db.write() as s:
        ops = {role: s.exec(select(Operator).where(Operator.name == name)).one() for role, name in OPERATORS.items()}
        actors = {role: Actor(op.name, Role(op.role), TERMINAL, op.id) for role, op in ops.items()}
        shifts = {}
        for op in ops.values():
            shift = OperatorShift(operator_id=op.id, terminal=TERMINAL)  # type: ignore[arg-type]
            s.add(shift)
            s.flush()
            shifts[op.id] = shift.id
        lm = s.exec(select(LegacyMember).where(col(LegacyMember.plan_id).is_not(None),
                                               col(LegacyMember.migrated_at).is_(None))
                    .order_by(col(LegacyMember.id))).first()
        legacy_plate = s.exec(select(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == lm.id)).first()
        customer = s.exec(select(Customer).order_by(col(Customer.id))).first()
        membership = s.exec(select(Membership).where(Membership.status == "active").order_by(col(Membership.id))).first()
        terms = s.exec(select(TermsVersion)).first()
        target = Operator(name="Olive Other", role=Role.ATTENDANT, pin_hash=hash_pin("482915"), failed_attempts=3)
        s.add(target)
        s.flush()
        target_id = target.id
        legacy_id, legacy_phone, plate = lm.id, lm.phone_e164, legacy_plate.plate_raw
        gone = s.exec(select(LegacyMember).where(col(LegacyMember.plan_id).is_not(None),
                                                 col(LegacyMember.migrated_at).is_(None), LegacyMember.id != lm.id)
                      .order_by(col(LegacyMember.id))).first()
        gone.status = "cancelled"
        s.add(gone)
        inactive_legacy_id = gone.id
        ids = (customer.id, membership.id, membership.version, terms.id)
    actors["system"] = camera
    sessions = SessionService(db)
    read = {}
    for name, car, lane in (("sale", "PRM-101", "Lane 1"), ("legacy", plate, "Lane 2"), ("spare", "PRM-303", "Lane 3"),
                            ("status", "PRM-404", "Lane 1"), ("inactive", "PRM-505", "Lane 3"),
                            ("wash", "PRM-606", "Lane 2")):
        read[name] = sessions.record_plate_read(PlateEvent(plate=car, lane=lane, region="US-TX", confidence=0.95), camera)
    # Alex opened a sale and a migration at this terminal (through the services, as the screens do).
    alex = actors["attendant"]
    sms = SimulatedSms(reply_after=0.0)
    w = World(db, sms, actors, shifts, read["sale"], 0, read["legacy"], 0, legacy_id, legacy_phone or "+15125550100",
              read["spare"], read["status"], *ids)
    w.target_operator, w.inactive_legacy_id, w.inactive_session = target_id, inactive_legacy_id, read["inactive"]
    w.sale_order = w.sales(alex).open_for_session(w.sale_session).id
    w.sales(alex).choose_plan(w.sale_order, "BASIC")
    w.mig_order = w.migration(alex).begin(w.mig_session, legacy_id).id
    w.wash_session = read["wash"]
    w.wash_order = w.washes(alex).open_for_session(w.wash_session).order_id
    w.washes(alex).choose(w.wash_order, "BASIC", [])
    return w


@dataclass(frozen=True)
class Entry:
    name: str  # Class.method or module.function; a note in brackets after it
    needs: tuple[Permission, ...]  # allowed when the actor has any of these
    call: Callable[[World, Actor], Any]

    @property
    def method(self) -> str:
        return self.name.split(" (")[0]


E = Entry
# In the order a lane would call them; what ends an order (pay, decline, cancel, expire) comes last.
TABLE = [
    E("SaleService.open_for_session", (P.SELL,), lambda w, a: w.sales(a).open_for_session(w.spare_session)),
    E("SaleService.choose_plan", (P.SELL,), lambda w, a: w.sales(a).choose_plan(w.sale_order, "DELUXE")),
    E("SaleService.set_new_customer", (P.SELL,), lambda w, a: w.sales(a).set_new_customer(
        w.sale_order, ContactForm("Pat", "Perm", "+1 512 555 0142", ""))),
    E("SaleService.link_customer", (P.SELL,), lambda w, a: w.sales(a).link_customer(w.sale_order, w.customer_id)),
    E("SaleService.add_vehicle", (P.SELL,), lambda w, a: w.sales(a).add_vehicle(w.sale_order, "PRM-777")),
    E("SaleService.remove_vehicle", (P.SELL,), lambda w, a: w.sales(a).remove_vehicle(w.sale_order, 999999)),
    E("SaleService.choose_card", (P.SELL,), lambda w, a: w.sales(a).choose_card(w.sale_order, 999999)),
    E("SaleService.attach_reader_card", (P.SELL,), lambda w, a: w.sales(a).attach_reader_card(w.sale_order, card())),
    E("SaleService.key_card", (P.SELL,), lambda w, a: w.sales(a).key_card(w.sale_order, "4242424242424242",
                                                                         "12/30", "123")),
    E("SaleService.apply_promotion", (P.SELL,), lambda w, a: w.sales(a).apply_promotion(w.sale_order, "SAVE20")),
    E("SaleService.clear_promotion", (P.SELL,), lambda w, a: w.sales(a).clear_promotion(w.sale_order)),
    E("card_present.mark_card_present", (P.SELL,), lambda w, a: card_present.mark_card_present(w.db, w.sale_order, a)),
    E("HostedCardService.send_link", (P.SELL,), lambda w, a: w.hosted(a).send_link(w.sale_order)),
    E("HostedCardService.check", (P.SELL,), lambda w, a: w.hosted(a).check(w.sale_order)),
    E("SaleService.review", (P.SELL,), lambda w, a: w.sales(a).review(w.sale_order)),
    E("SaleService.checkout", (P.SELL,), lambda w, a: w.sales(a).checkout(w.sale_order)),
    E("SaleService.accept_terms", (P.SELL,), lambda w, a: w.sales(a).accept_terms(w.sale_order, w.terms_id,
                                                                                 "presented")),
    E("SaleService.record_signature", (P.SELL,), lambda w, a: w.sales(a).record_signature(
        w.sale_order, STROKES, "<svg/>", device="test pad")),
    E("SaleService.pay", (P.SELL,), lambda w, a: w.sales(a).pay(w.sale_order)),
    E("MigrationService.begin", (P.MIGRATE,), lambda w, a: w.migration(a).begin(w.mig_session, w.legacy_id)),
    E("MigrationService.begin (a cancelled legacy member: Alex signed in, the role under test approves)",
      (P.MIGRATE_INACTIVE,), lambda w, a: w.migration(w.actors["attendant"]).begin(
          w.inactive_session, w.inactive_legacy_id, manager=a, reason="came back after a move")),
    E("MigrationService.request_email", (P.MIGRATE,), lambda w, a: w.migration(a).request_email(
        w.mig_order, w.legacy_phone)),
    E("MigrationService.confirm_contact", (P.MIGRATE,), lambda w, a: w.migration(a).confirm_contact(
        w.mig_order, ContactForm("Jane", "Doe", w.legacy_phone, "jane.doe@example.com"))),
    E("MigrationService.use_existing_customer", (P.MIGRATE,), lambda w, a: w.migration(a).use_existing_customer(
        w.mig_order, w.customer_id)),
    E("MigrationService.attach_reader_card", (P.MIGRATE,), lambda w, a: w.migration(a).attach_reader_card(
        w.mig_order, card())),
    E("MigrationService.key_card", (P.MIGRATE,), lambda w, a: w.migration(a).key_card(
        w.mig_order, "4242424242424242", "12/30", "123")),
    E("MigrationService.override_billing_date (Alex signed in, the role under test approves)", (P.BILLING_OVERRIDE,),
      lambda w, a: w.migration(w.actors["attendant"]).override_billing_date(
          w.mig_order, TODAY + dt.timedelta(days=7), a)),
    E("MigrationService.review", (P.MIGRATE,), lambda w, a: w.migration(a).review(w.mig_order)),
    E("MigrationService.checkout", (P.MIGRATE,), lambda w, a: w.migration(a).checkout(w.mig_order)),
    E("MigrationService.accept_terms", (P.MIGRATE,), lambda w, a: w.migration(a).accept_terms(
        w.mig_order, w.terms_id, "presented")),
    E("MigrationService.record_signature", (P.MIGRATE,), lambda w, a: w.migration(a).record_signature(
        w.mig_order, STROKES, "<svg/>", device="test pad")),
    E("MigrationService.pay", (P.MIGRATE,), lambda w, a: w.migration(a).pay(w.mig_order)),
    E("SessionService.set_status", (P.SESSION_STATUS,), lambda w, a: SessionService(w.db).set_status(
        w.status_session, SessionStatus.DONE, a)),
    E("MembershipActions.change", (P.MEMBERSHIP,), lambda w, a: w.actions(a).change(
        a, w.membership_id, w.membership_version, "subscription.pause", {"active"}, "paused")),
    E("MembershipActions.update_card", (P.MEMBERSHIP,), lambda w, a: w.actions(a).update_card(
        a, w.membership_id, w.membership_version, card())),
    E("MembershipActions.refund", (P.REFUND,), lambda w, a: w.actions(a).refund(a, w.sale_order)),
    E("audit_query.query", (P.AUDIT_VIEW,), lambda w, a: audit_query.query(w.db, actor=a)),
    E("reports.day_report", (P.REPORT_VIEW,), lambda w, a: reports.day_report(w.db, TODAY, actor=a)),
    E("reports.shift_report (another operator's shift)", (P.REPORT_VIEW,),
      lambda w, a: reports.shift_report(w.db, w.others_shift(a), actor=a)),
    E("reports.shift_report (own shift)", (P.REPORT_OWN_SHIFT, P.REPORT_VIEW),
      lambda w, a: reports.shift_report(w.db, w.own_shift(a), actor=a)),
    E("CustomerService.refund_membership", (P.REFUND,), lambda w, a: w.customers().refund_membership(
        a, w.refundable_membership(), "1.00")),
    E("CustomerService.set_expiration", (P.EXPIRATION,), lambda w, a: w.customers().set_expiration(
        a, w.membership_id, w.version_of_membership(), TODAY + dt.timedelta(days=400))),
    E("SaleService.decline_terms", (P.SELL,), lambda w, a: w.sales(a).decline_terms(w.sale_order)),
    E("SaleService.cancel", (P.SELL,), lambda w, a: w.sales(a).cancel(w.sale_order)),
    E("MigrationService.decline_terms", (P.MIGRATE,), lambda w, a: w.migration(a).decline_terms(w.mig_order)),
    E("MigrationService.cancel", (P.MIGRATE,), lambda w, a: w.migration(a).cancel(w.mig_order)),
    E("SessionService.expire_stale", (P.SESSION_STATUS,), lambda w, a: SessionService(w.db).expire_stale(
        dt.timedelta(0), a)),
    # Operator management (a manager's row changes Olive Other, an attendant; disabling her comes last).
    E("OperatorAdmin.add", (P.OPERATORS,), lambda w, a: w.operators().add(a, "Nina New", "attendant", "482916")),
    E("OperatorAdmin.set_pin", (P.OPERATORS,), lambda w, a: w.operators().set_pin(a, w.target_operator, "593817")),
    E("OperatorAdmin.unlock", (P.OPERATORS,), lambda w, a: w.operators().unlock(a, w.target_operator)),
    E("OperatorAdmin.disable", (P.OPERATORS,), lambda w, a: w.operators().disable(a, w.target_operator)),
    # Issue 18: the single wash, Join today, the tunnel, commission rates.
    E("WashSaleService.open_for_session", (P.SELL,), lambda w, a: w.washes(a).open_for_session(w.spare_session)),
    E("WashSaleService.choose", (P.SELL,), lambda w, a: w.washes(a).choose(w.wash_order, "DELUXE", [])),
    E("WashSaleService.set_receipt", (P.SELL,), lambda w, a: w.washes(a).set_receipt(w.wash_order,
                                                                                     "+1 512 555 0142")),
    E("upsell.join_today", (P.SELL,), lambda w, a: upsell.join_today(w.sales(a), w.wash_order)),
    E("TunnelDispatch.dispatch_session", (P.SESSION_STATUS,),
      lambda w, a: w.tunnel(a).dispatch_session(w.status_session)),
    E("TunnelDispatch.dispatch", (P.SESSION_STATUS,), lambda w, a: w.tunnel(a).dispatch(999999)),
    E("CommissionRates.set", (P.OPERATORS,), lambda w, a: CommissionRates(w.db).set("sale", 700, actor=a)),
    E("CommissionRates.clear", (P.OPERATORS,), lambda w, a: CommissionRates(w.db).clear("sale", actor=a)),
    E("WashSaleService.pay", (P.SELL,), lambda w, a: w.washes(a).pay(w.wash_order)),
    E("WashSaleService.cancel", (P.SELL,), lambda w, a: w.washes(a).cancel(w.wash_order)),
    # Last: a manager's row deletes a customer (one with no history; a wrong version is refused for a manager).
    E("CustomerService.delete_customer", (P.DELETE,), lambda w, a: w.customers().delete_customer(
        a, w.customer_id, -1)),
]

# Public, and deliberately not guarded: why.
_READ = "a read: writes nothing and moves no money"
UNGUARDED = {
    "SaleService.from_services": "builds the service from the app (its actor is then checked on every step)",
    "SaleService.order": _READ, "SaleService.plans": _READ, "SaleService.garage": _READ,
    "SaleService.preview_promotion": _READ, "SaleService.current_terms": _READ,
    "SaleService.activate": "finishes an order a permitted person already paid: crash recovery must not depend "
                            "on who is signed in when the app restarts",
    "SaleService.recover": "start-up replay of paid orders (same reason as activate)",
    "MigrationService.from_services": "builds the service (see SaleService.from_services)",
    "MigrationService.candidates_for_plate": _READ, "MigrationService.candidates_for_phone": _READ,
    "MigrationService.search": _READ, "MigrationService.candidates_for_session": _READ,
    "MigrationService.legacy": _READ, "MigrationService.order": _READ, "MigrationService.contact_form": _READ,
    "MigrationService.billing_date": _READ, "MigrationService.current_terms": _READ,
    "MigrationService.session_plate": _READ,
    "MigrationService.resume_step": _READ, "MigrationService.open_migration_for_session": _READ,
    "MigrationService.check_reply": "polls the SMS provider for the customer's reply: " + _READ,
    "MigrationService.recover": "start-up replay of paid migrations (see SaleService.recover)",
    "SessionService.from_services": "builds the service (see SaleService.from_services)",
    "SessionService.ensure_site": "boot: creates the site and lanes from the settings",
    "SessionService.lane_ids_by_key": _READ,
    "SessionService.record_plate_read": "the camera's path (a device, authenticated at the webhook, item 4)",
    "SessionService.hold": "who has the session open (a presence marker), not its status",
    "SessionService.claim": "who has the session open (a presence marker), not its status",
    "SessionService.release": "who has the session open (a presence marker), not its status",
    "SessionService.board": _READ, "SessionService.sync_health": _READ, "SessionService.detail": _READ,
    "HostedCardService.from_settings": "builds the service (its actor is checked on every step)",
    "audit_query.parse_since": "parses a time: no data",
    "reports.render_text": "formats a report already allowed: no data",
    "card_present.reader_attended": "marks the reader attended for a call already checked (pay)",
    "card_present.pay_at_reader": "runs a checked call (SaleService.pay) with the reader attended",
    "card_present.takes_first_payment_on_reader": "a settings question: no data",
    "card_present.keyed_entry_mode": "a settings question: no data",
    "card_present.enqueue_charge": "runs inside BillingService's transaction, started by the checked SaleService.pay",
    "card_present.reader_failure": "words an error: no data",
    "card_present.forget_moto": "forgets this lane's MOTO choice once the payment is recorded: no data",
    "WashSaleService.from_services": "builds the service (see SaleService.from_services)",
    "WashSaleService.order": _READ, "WashSaleService.receipt_text": _READ,
    "TunnelDispatch.from_services": "builds the service (see SaleService.from_services)",
    "TunnelDispatch.queued": _READ, "TunnelDispatch.waiting_on_auto_lanes": _READ,
    "TunnelDispatch.auto_dispatch": "sends through the checked dispatch (the app's system actor, auto lanes only)",
    "TunnelDispatch.retry_queued": "sends each car through the checked dispatch",
    "CommissionRates.list": _READ,
    "upsell.first_charge": "the amounts rule: no data", "upsell.wash_paid": _READ, "upsell.holds_credit": _READ,
    "upsell.credit_holders": _READ, "upsell.credit_held": _READ, "upsell.credit_available": _READ,
    "upsell.excess_note": "words a note: no data", "upsell.holder_label": "words a label: no data",
    "upsell.release": "runs inside the checked cancel's transaction (SaleService.cancel, decline_terms)",
    "upsell.released": "runs after the checked decline_terms",
    "reader_card.saves_card_on_reader": "a settings question: no data",
    "reader_card.enqueue_save": "runs inside the caller's transaction (save_card_on_reader)",
    "reader_card.save_card_on_reader": "saves a card on a customer, no charge; what the card is used for is "
                                       "checked (attach_reader_card: sale.sell / legacy.migrate; update_card: "
                                       "membership.manage). It takes no actor today (the device screen calls it).",
    "OperatorAdmin.needs_first_manager": _READ,
    "OperatorAdmin.list": "a read: names, roles and lockouts, never a PIN or its hash",
    "OperatorAdmin.find": "a read: an active operator by name",
    "OperatorAdmin.add_first_manager": "a site with no operators has nobody to approve its first manager; once any "
                                       "operator has a PIN it is refused (SiteAlreadySetUp), whoever asks",
}
CLASSES = [SaleService, MigrationService, SessionService, HostedCardService, MembershipActions, OperatorAdmin,
           WashSaleService, TunnelDispatch, CommissionRates]
MODULES = [audit_query, reports, card_present, reader_card, upsell]
# Classes whose roles are tested elsewhere: only their methods checking a manager-only permission must be in TABLE.
MANAGER_ONLY_IN = [CustomerService]


def manager_only_permissions() -> set[Permission]:
    return {p for p in Permission if MATRIX[p] == {"manager"}}


def public_methods(cls: type) -> dict[str, Any]:
    """Public functions defined on `cls` or a mixin it inherits (not object's)."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, value in vars(klass).items():
            if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod))):
                found[name] = value
    return found


def entry_points() -> set[str]:
    found = set()
    for cls in CLASSES:
        for name, value in vars(cls).items():
            if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod))):
                found.add(f"{cls.__name__}.{name}")
    names = "|".join(p.name for p in manager_only_permissions())
    for cls in MANAGER_ONLY_IN:
        for name, value in public_methods(cls).items():
            source = inspect.getsource(getattr(value, "__func__", value))
            if re.search(rf"\bPermission\.({names})\b", source):
                found.add(f"{cls.__name__}.{name}")
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[1]
        for name, value in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == module.__name__:
                found.add(f"{short}.{name}")
    return found


def test_every_public_entry_point_is_in_the_table_or_a_listed_exception() -> None:
    checked = {e.method for e in TABLE}
    assert not checked & set(UNGUARDED), "both checked and listed as unguarded"
    listed = checked | set(UNGUARDED)
    public = entry_points()
    assert public - listed == set(), "new entry points: add each to TABLE (and check it in the service) or to UNGUARDED"
    assert listed - public == set(), "stale names in TABLE / UNGUARDED"


def test_the_docstring_table_is_the_matrix() -> None:
    assert render_table() in (permissions.__doc__ or ""), (
        "services/permissions.py's docstring table differs from MATRIX; paste this:\n" + render_table())
    assert set(MATRIX) == set(Permission)


def test_every_manager_only_permission_has_a_row() -> None:
    """Operator management, refunds, billing overrides, migrating a cancelled member, expiration dates,
    deleting customers: each is run against every role."""
    covered = {p for e in TABLE for p in e.needs}
    assert manager_only_permissions() - covered == set()


def test_who_may_do_what_at_the_lane_and_the_office() -> None:
    """The decisions of issue 15, spelled out (the docstring says why)."""
    expected = {
        P.SELL: {"attendant", "manager"},
        P.MIGRATE: {"attendant", "manager"},
        P.SESSION_STATUS: {"attendant", "manager", "system"},
        P.BILLING_OVERRIDE: {"manager"},
        P.REFUND: {"manager"},
        P.OPERATORS: {"manager"},
        P.AUDIT_VIEW: {"manager", "support"},
        P.REPORT_VIEW: {"manager", "support"},
        P.REPORT_OWN_SHIFT: {"attendant", "manager", "support"},
    }
    assert {p: set(MATRIX[p]) for p in expected} == expected
    technician, camera = Actor("Taylor Tech", Role.TECHNICIAN), Actor.system("plate-camera")
    assert not any(allowed(technician, p) for p in expected)
    assert [p for p in Permission if allowed(camera, p)] == [P.VIEW, P.SESSION_STATUS]
    with pytest.raises(PermissionDenied, match=r"^Taylor Tech \(technician\) may not sell memberships: ask an "
                                               r"attendant or manager to do it\.$"):
        permissions.require(technician, P.SELL)
    with pytest.raises(PermissionDenied, match=r"plate-camera \(system\) may not view the audit trail: ask a manager "
                                               r"or support to do it\."):
        permissions.require(camera, P.AUDIT_VIEW)


def fingerprint(w: World) -> tuple:
    """Every row of every table, and the texts sent: what a refused call must leave as it was."""
    engine = w.db.engine
    tables = sorted(t for t in sa_inspect(engine).get_table_names() if t != "alembic_version")
    with engine.connect() as conn:
        rows = tuple((t, tuple(sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{t}"')))))
                     for t in tables)
    return rows, len(w.sms.sent)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_against_every_guarded_entry_point(world: World, role: str) -> None:
    actor = world.actors[role]
    problems: list[str] = []
    state = None  # the fingerprint, while nothing was allowed to write since it was taken
    for entry in TABLE:
        expect = any(allowed(actor, p) for p in entry.needs)
        if not expect and state is None:
            state = fingerprint(world)
        try:
            entry.call(world, actor)
        except PermissionDenied as exc:
            if expect:
                problems.append(f"{entry.name}: {role} was refused: {exc}")
            elif f"({role})" not in str(exc) or "may not" not in str(exc):
                problems.append(f"{entry.name}: the refusal does not say who and what: {exc}")
            elif fingerprint(world) != state:
                problems.append(f"{entry.name}: refused, but something was written")
            continue
        except Exception as exc:  # noqa: BLE001 - a domain refusal is fine when the role is allowed
            if not expect:
                problems.append(f"{entry.name}: {role} must be refused, got {type(exc).__name__}: {exc}")
            elif "may not" in str(exc):
                problems.append(f"{entry.name}: {role} refused in other words: {exc}")
        else:
            if not expect:
                problems.append(f"{entry.name}: {role} must be refused, and it went through")
        state = None  # an allowed call may have written
    assert problems == []


def test_system_actors_keep_the_automatic_paths(world: World) -> None:
    """The camera opens and moves sessions, the tunnel closes them, stale ones expire, and a paid
    order left by a crash is still finished at start-up, whoever (or whatever) runs it."""
    camera, tunnel = Actor.system("plate-camera", TERMINAL), Actor.system("simulated-tunnel", TERMINAL)
    sessions = SessionService(world.db)
    sid = sessions.record_plate_read(PlateEvent(plate="AUTO-1", lane="Lane 1"), camera)
    assert sessions.record_plate_read(PlateEvent(plate="AUTO-1", lane="Lane 2"), camera) == sid
    sessions.set_status(sid, SessionStatus.DONE, tunnel)
    assert sessions.expire_stale(dt.timedelta(0), tunnel, SessionStatus.DONE) >= 1
    with world.db.read() as s:
        assert s.get(VehicleSession, sid).status == SessionStatus.DONE
    assert world.sales(Actor.system("start-up")).recover() == []  # runs; nothing was left paid


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_technician_is_told_who_can_instead_of_a_traceback(world: World, settings) -> None:  # noqa: ANN001
    from textual.widgets import Button, Static

    from clarity_tui.screens.audit import AuditScreen
    from clarity_tui.screens.report import ReportScreen
    from clarity_tui.screens.session_detail import SessionDetailScreen

    app = make_app(settings, world.db, actor=world.actors["technician"])

    def said(text: str) -> bool:
        return any(text in str(n.message) for n in app._notifications)

    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(SessionDetailScreen(world.status_session))
        screen = app.screen
        await wait_until(pilot, lambda: screen.detail is not None, "the session")
        # The actions the role cannot take are greyed out, and say why.
        assert all(screen.query_one(f"#{b}", Button).disabled for b in ("purchase", "migrate", "done"))
        assert not screen.query_one("#customer-record", Button).disabled
        for key, words in (("f2", "Taylor Tech (technician) may not sell memberships: ask an attendant or manager"),
                           ("f3", "Taylor Tech (technician) may not migrate legacy members"),
                           ("f6", "Taylor Tech (technician) may not change a vehicle's status")):
            await pilot.press(key)
            await wait_until(pilot, lambda words=words: said(words), f"the refusal after {key}")
        assert app.screen is screen
        with world.db.read() as s:
            assert s.get(VehicleSession, world.status_session).status == SessionStatus.WAITING
        await pilot.press("escape")

        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        detail = app.screen.query_one("#audit-detail", Static)
        await wait_until(pilot, lambda: "may not view the audit trail: ask a manager or support" in str(detail.render()),
                         "the audit refusal")
        await pilot.press("escape")

        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen), "the report screen")
        body = app.screen.query_one("#report-body", Static)
        await wait_until(pilot, lambda: "Taylor Tech (technician) may not view reports" in str(body.render()),
                         "the report refusal")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_attendant_sees_their_shift_report_but_not_the_day_or_the_audit(world: World, settings) -> None:  # noqa: ANN001
    from textual.widgets import Static

    from clarity_tui.screens.audit import AuditScreen
    from clarity_tui.screens.report import ReportScreen

    alex = world.actors["attendant"]
    app = make_app(settings, world.db, actor=alex)
    app.operator_session.shift_id = world.shifts[alex.operator_id]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.report is not None,
                         "the shift report")
        body = app.screen.query_one("#report-body", Static)
        assert f"Shift {app.operator_session.shift_id}: Alex Attendant" in str(body.render())
        await pilot.press("d")
        await wait_until(pilot, lambda: "Alex Attendant (attendant) may not view reports of the whole site"
                         in str(body.render()), "the day refused")
        await pilot.press("escape")
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        detail = app.screen.query_one("#audit-detail", Static)
        await wait_until(pilot, lambda: "Alex Attendant (attendant) may not view the audit trail" in str(detail.render()),
                         "the audit refusal")
