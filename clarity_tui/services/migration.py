"""Migrating a legacy POS member at the lane (headless): match, contact, account, card, bill date.

The screens, the CLI and tests drive the same calls:

    match     candidates_for_session / search (plate: fuzzy and ranked; or a typed phone)
    draft     begin             ("That's Me": a MIGRATION order on the session, the legacy plan)
              request_email     (SMS asking for the email) -> check_reply (poll) ... or typed in
              confirm_contact   (every field validated; creates the customer, linked to the legacy
                                 record, vehicles from the legacy plates)
              use_existing_customer (the phone or email is a customer's already: "Use that customer"
                                 migrates the legacy member onto them; nothing is created)
              attach_reader_card | key_card         (saved with a SetupIntent: no charge today)
              billing_date / override_billing_date  (the legacy date; a past one needs a manager)
    checkout  review            (due today 0, next billing = the legacy date)
    terms ... signed            (the shared checkout screens; SaleService does these steps)
    pay                         (claims the legacy member, then BillingService.start_migration:
                                 customer -> card -> subscription with trial_end = the date; then
                                 activation: vehicles on the membership, the session a member)

Migrate once only: `pay` claims the legacy row with a conditional UPDATE (`migrated_at IS NULL`),
in its own transaction and before any gateway call, so of two terminals exactly one wins and the
other is told who migrated the member and when (its order is cancelled, nothing was saved at the
gateway). A killed process resumes through the billing outbox: the same idempotency keys, no
second SetupIntent (see services/billing.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from clarity_tui.messaging.base import MessagingError, SentSms, SmsProvider
from clarity_tui.payments.base import PaymentGateway
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingOutcome
from clarity_tui.services.customers import ContactForm, ValidationFailed, display_phone
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from clarity_tui.services.customer_duplicates import create_or_reuse
from clarity_tui.services.legacy_match import plate_matches
from clarity_tui.services.migration_guard import (  # re-exported: the screens and tests import them from here
    MAX_OVERRIDE_DAYS,
    InactiveLegacyMember,
    MigrationError,
    approve_inactive,
    check_override_day,
    last_billed,
    status_words,
)
from clarity_tui.services.migration_guard import split_vehicle as _split_vehicle
from clarity_tui.services.permissions import Permission, PermissionDenied, guarded, require
from clarity_tui.services.plates import plate_match_score
from clarity_tui.services.promotions import plan_subtotal
from clarity_tui.services.sales import EDITABLE, OrderView, PayResult, SaleService
from clarity_tui.sitetime import local_time
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    MembershipSource,
    MembershipStatus,
    Operator,
    OrderKind,
    OrderProgress,
    OrderState,
    Plan,
    Role,
    SalesOrder,
    VehicleSession,
    utcnow,
)

MAX_CANDIDATES = 8
_EMAIL_TOKEN = re.compile(r"[^\s<>(),;:\"'\[\]]+@[^\s<>(),;:\"'\[\]]+")
_PHONEISH = re.compile(r"^[\d\s().+\-]{7,}$")


class AlreadyMigrated(MigrationError):
    """The legacy member was migrated before (here or on another terminal)."""


class BillingDateInPast(MigrationError):
    """The legacy next billing date is today or earlier: a manager must choose a date."""


# --- matching -----------------------------------------------------------------------------------


MATCH_LABELS = {1.0: "plate matches", 0.9: "plate look-alike (camera misread)", 0.7: "plate one character off"}


@dataclass(frozen=True)
class LegacyCandidate:
    id: int
    source_system: str
    legacy_id: str
    name: str
    plan_name: str | None
    plan_code: str | None
    vehicle: str | None
    plates: tuple[str, ...]
    phone_hint: str
    email: str | None
    next_bill_on: dt.date | None
    status: str | None
    score: float
    match: str
    migrated: str | None = None  # who/when, if this member was already migrated
    last_billed_on: dt.date | None = None  # from the imported row, when the export has it

    @property
    def standing(self) -> str:
        """'status CANCELLED · last billed Oct 03, 2026' (see migration_guard)."""
        return status_words(self.status, self.last_billed_on)

    @property
    def label(self) -> str:
        bill = self.next_bill_on.strftime("%b %d, %Y") if self.next_bill_on else "no date"
        return f"{self.name} · {self.plan_name or '?'} · {', '.join(self.plates) or 'no plate'} · next bill {bill}"


def _hint(phone: str | None) -> str:
    return f"•••-•••-{phone[-4:]}" if phone else "no phone"


def migrated_message(lm: LegacyMember, customer_number: str | None = None, zone: dt.tzinfo = dt.UTC) -> str:
    when = local_time(lm.migrated_at, zone) if lm.migrated_at else "?"
    record = f" Open their customer record #{customer_number} instead." if customer_number else ""
    return (f"{lm.first_name} {lm.last_name} (legacy {lm.legacy_id}) was already migrated by "
            f"{lm.migrated_by or 'someone'} on terminal {lm.migrated_terminal or '?'} at {when}: a member is "
            f"migrated only once.{record}")


@dataclass(frozen=True)
class BillingDate:
    legacy: dt.date | None
    effective: dt.date | None  # the date the subscription is anchored to
    overridden: bool
    problem: str | None  # why it cannot be used (then a manager chooses one)

    @property
    def label(self) -> str:
        if self.effective is None or self.problem:
            return "No payment due today · next charge: a manager must choose the date"
        return f"No payment due today · next charge {self.effective.strftime('%b %d, %Y')}"


@dataclass(frozen=True)
class EmailReply:
    email: str | None  # a valid address found in the reply
    text: str | None  # what the customer wrote (None: no reply yet)
    problem: str | None = None


class MigrationService:
    """Every step of migrating one legacy member. Implements the shared screens' CheckoutBackend.

    Each @guarded step checks legacy.migrate for the actor first (and so do the sale steps it reuses);
    the matching reads are open. The billing-date override is approved by a manager's PIN."""

    permission = Permission.MIGRATE

    def __init__(self, db: Any, gateway: PaymentGateway, actor: Actor, *, terminal: str | None = None,
                 phone_region: str = "US", today: Callable[[], dt.date] | None = None, currency: str = "usd",
                 sms: SmsProvider | None = None, site_name: str = "the car wash", zone: dt.tzinfo = dt.UTC,
                 tax: Any = None) -> None:
        self.db = db
        self.actor = actor
        self.zone = zone  # the site's clock, for times shown to the attendant
        # The site's sales tax: nothing is charged today, but the subscription's renewals carry its rate.
        self.sales = SaleService(db, gateway, actor, terminal=terminal, phone_region=phone_region, today=today,
                                 currency=currency, zone=zone, tax=tax, permission=Permission.MIGRATE)
        self.terminal = self.sales.terminal
        self.today = self.sales.today
        self.phone_region = phone_region
        self.billing = self.sales.billing
        self.customers = self.sales.customers
        self.sms = sms
        self.site_name = site_name

    @classmethod
    def for_app(cls, app: Any) -> MigrationService:
        from clarity_tui.messaging import make_sms_provider
        from clarity_tui.payments import make_gateway

        settings = app.settings
        gateway = getattr(app, "gateway", None) or make_gateway(settings, app.db)
        sms = getattr(app, "sms", None) or make_sms_provider(settings)
        return cls(app.db, gateway, app.actor, terminal=settings.terminal_id, phone_region=settings.site.phone_region,
                   today=app.today, currency=settings.payments.currency, sms=sms,
                   site_name=settings.site.name, zone=settings.site.zone, tax=settings.billing.tax)

    # --- matching ----------------------------------------------------------------------------------

    def candidates_for_plate(self, plate: str, limit: int = MAX_CANDIDATES) -> list[LegacyCandidate]:
        """Legacy members whose plate matches the read, best first (exact, look-alike, one off)."""
        with self.db.read() as s:
            best = plate_matches(s, plate)
            return self._candidates(s, best, limit, lambda sc: MATCH_LABELS.get(sc, "plate"))

    def candidates_for_phone(self, phone: str, limit: int = MAX_CANDIDATES) -> list[LegacyCandidate]:
        try:
            e164 = normalize_phone(phone, self.phone_region)
        except InvalidPhone as exc:
            raise MigrationError(str(exc)) from None
        with self.db.read() as s:
            ids = s.exec(select(LegacyMember.id).where(LegacyMember.phone_e164 == e164)).all()
            return self._candidates(s, {i: 1.0 for i in ids}, limit, lambda _: "phone matches")

    def search(self, text: str) -> list[LegacyCandidate]:
        """What the attendant typed: a phone number (7+ digits) or a plate."""
        text = (text or "").strip()
        if not text:
            raise MigrationError("Type the plate or the customer's phone number.")
        if _PHONEISH.match(text) and sum(c.isdigit() for c in text) >= 7:
            return self.candidates_for_phone(text)
        return self.candidates_for_plate(text)

    def candidates_for_session(self, session_id: int) -> list[LegacyCandidate]:
        with self.db.read() as s:
            vs = s.get(VehicleSession, session_id)
            if vs is None:
                raise MigrationError(f"Session {session_id} no longer exists: go back to the board.")
            plate = vs.plate
        return self.candidates_for_plate(plate)

    def legacy(self, legacy_member_id: int) -> LegacyCandidate:
        with self.db.read() as s:
            found = self._candidates(s, {legacy_member_id: 1.0}, 1, lambda _: "chosen")
        if not found:
            raise MigrationError("That legacy member no longer exists: search again.")
        return found[0]

    def _candidates(self, s: Session, scores: dict[int, float], limit: int,
                    label: Callable[[float], str]) -> list[LegacyCandidate]:
        if not scores:
            return []
        members = s.exec(select(LegacyMember).where(col(LegacyMember.id).in_(list(scores)))).all()
        plates: dict[int, list[str]] = {}
        for p in s.exec(select(LegacyMemberPlate).where(col(LegacyMemberPlate.legacy_member_id).in_(list(scores)))
                        .order_by(col(LegacyMemberPlate.id))):
            plates.setdefault(p.legacy_member_id, []).append(p.plate_raw)
        plans = {p.id: p for p in s.exec(select(Plan))}
        numbers = {}
        migrated_customers = [m.migrated_customer_id for m in members if m.migrated_customer_id]
        if migrated_customers:
            numbers = {c.id: c.customer_number
                       for c in s.exec(select(Customer).where(col(Customer.id).in_(migrated_customers)))}
        out = []
        for m in members:
            plan = plans.get(m.plan_id) if m.plan_id else None
            out.append(LegacyCandidate(
                id=m.id, source_system=m.source_system, legacy_id=m.legacy_id,  # type: ignore[arg-type]
                name=f"{m.first_name} {m.last_name}".strip(), plan_name=m.plan_name,
                plan_code=plan.code if plan else None, vehicle=m.vehicle_desc, plates=tuple(plates.get(m.id, [])),  # type: ignore[arg-type]
                phone_hint=_hint(m.phone_e164), email=m.email, next_bill_on=m.next_bill_on, status=m.status,
                score=scores[m.id], match=label(scores[m.id]), last_billed_on=last_billed(m.raw),  # type: ignore[index]
                migrated=migrated_message(m, numbers.get(m.migrated_customer_id), self.zone) if m.migrated_at else None))
        # Unmigrated first, then the best match; ties by name so the order is stable.
        out.sort(key=lambda c: (c.migrated is not None, -c.score, c.name.casefold(), c.legacy_id))
        return out[:limit]

    # --- "That's Me": the order ------------------------------------------------------------------

    @guarded
    def begin(self, session_id: int, legacy_member_id: int, manager: Actor | None = None,
              reason: str | None = None) -> OrderView:
        """The customer confirmed the match: open (or resume) the migration order on the session. A
        cancelled or terminated legacy member needs `manager` (approved by PIN) and `reason` (audited)."""
        with self.db.read() as s:
            lm = s.get(LegacyMember, legacy_member_id)
            if lm is None:
                raise MigrationError("That legacy member no longer exists: search again.")
            if lm.migrated_at is not None:
                raise AlreadyMigrated(migrated_message(lm, self._customer_number(s, lm.migrated_customer_id), self.zone))
            if lm.plan_id is None:
                raise MigrationError(f"The legacy plan '{lm.plan_name}' is not mapped to a plan here: add it to the "
                                     "import mapping and import again, or sell a new membership instead.")
            approval = approve_inactive(s, lm, manager, reason)  # InactiveLegacyMember: ask a manager
        view = self.sales.open_for_session(session_id)
        if view.kind == OrderKind.MIGRATION and view.legacy_member_id == legacy_member_id:
            return view  # resuming this terminal's migration
        if view.state not in EDITABLE:
            raise MigrationError("A membership is already being paid for this vehicle: finish or cancel it first.")
        with self.db.write() as s:
            order = s.get(SalesOrder, view.id)
            lm = s.get(LegacyMember, legacy_member_id)
            before = audit.snapshot(order, ["kind", "customer_id", "plan_id", "legacy_member_id"])
            order.kind, order.legacy_member_id, order.plan_id = OrderKind.MIGRATION, lm.id, lm.plan_id  # type: ignore[union-attr]
            order.customer_id, order.vehicle_ids, order.payment_method_id = None, [], None  # type: ignore[union-attr]
            order.promotion_id, order.membership_id, order.next_billing_on = None, None, None  # type: ignore[union-attr]
            order.state, order.updated_at = OrderState.DRAFT, utcnow()  # type: ignore[union-attr]
            order.version += 1  # type: ignore[union-attr]
            s.add(order)
            vs = s.get(VehicleSession, session_id)
            if vs is not None and vs.legacy_member_id != lm.id:  # type: ignore[union-attr]
                # Matched by a typed phone or a misread plate: the bubble shows LEGACY too.
                vs.legacy_member_id, vs.version = lm.id, vs.version + 1  # type: ignore[union-attr]
                s.add(vs)
            audit.record(s, self.actor, "migration.matched", "sales_order", order.id, before=before,  # type: ignore[union-attr]
                         after={"legacy_member_id": lm.id, "legacy_id": lm.legacy_id, "plan_id": lm.plan_id})  # type: ignore[union-attr]
            if approval:
                audit.record(s, self.actor, "migration.inactive_approved", "sales_order", order.id, after=approval)  # type: ignore[union-attr]
        return self.order(view.id)

    def order(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.order(order_id))

    @staticmethod
    def _customer_number(s: Session, customer_id: int | None) -> str | None:
        c = s.get(Customer, customer_id) if customer_id else None
        return c.customer_number if c else None

    def _legacy_of(self, s: Session, order: SalesOrder) -> LegacyMember:
        if order.kind != OrderKind.MIGRATION or order.legacy_member_id is None:
            raise MigrationError("This order is not a migration: start again from the session.")
        lm = s.get(LegacyMember, order.legacy_member_id)
        if lm is None:
            raise MigrationError("The legacy member of this migration no longer exists.")
        return lm

    # --- contact -----------------------------------------------------------------------------------

    def contact_form(self, order_id: int) -> ContactForm:
        """Prefilled from the customer (when already created) or the legacy record."""
        with self.db.read() as s:
            order = self.sales._get(s, order_id)
            if order.customer_id:
                return ContactForm.of(s.get(Customer, order.customer_id), self.phone_region)  # type: ignore[arg-type]
            lm = self._legacy_of(s, order)
            return ContactForm(lm.first_name, lm.last_name, display_phone(lm.phone_e164, self.phone_region),
                               lm.email or "")

    @guarded
    def request_email(self, order_id: int, phone: str) -> SentSms:
        """Text the customer asking them to reply with their email."""
        if self.sms is None:
            raise MigrationError("SMS is not set up on this terminal: type the email in.")
        try:
            e164 = normalize_phone(phone, self.phone_region)
        except InvalidPhone as exc:
            raise ValidationFailed({"phone": str(exc)}) from None
        with self.db.read() as s:
            order = self.sales._mine(s, order_id)
            lm = self._legacy_of(s, order)
            first = lm.first_name or "there"
        body = (f"{self.site_name}: Hi {first}, we are moving your wash club membership to our new system. "
                "Reply to this text with your email address. Nothing is charged today.")
        try:
            sent = self.sms.send(e164, body)
        except MessagingError as exc:
            raise MigrationError(f"{exc} Type the email in instead.") from None
        with self.db.write() as s:
            audit.record(s, self.actor, "migration.sms_sent", "sales_order", order_id,
                         after={"to": _hint(e164), "provider": self.sms.name, "message_id": sent.id})
        return sent

    def check_reply(self, sent: SentSms) -> EmailReply:
        """Poll for the customer's reply; the first valid address in it is the email."""
        if self.sms is None:
            return EmailReply(None, None)
        try:
            replies = self.sms.replies_since(sent)
        except MessagingError as exc:
            return EmailReply(None, None, f"{exc}")
        if not replies:
            return EmailReply(None, None)
        text = replies[-1].body.strip()
        for reply in reversed(replies):
            for token in _EMAIL_TOKEN.findall(reply.body):
                try:
                    return EmailReply(normalize_email(token.rstrip(".!?")), reply.body.strip())
                except InvalidEmail:
                    continue
        return EmailReply(None, text, f"The customer replied “{text[:60]}”, which has no valid email address: "
                                      "ask them for it and type it in.")

    @guarded
    def confirm_contact(self, order_id: int, form: ContactForm) -> OrderView:
        """Confirm: every field validated; creates the customer (linked to the legacy record) with
        vehicles from the legacy plates, on the mapped plan. Raises ValidationFailed per field."""
        errors = {}
        if not form.phone.strip():
            errors["phone"] = "Enter the customer's mobile number."
        if not form.email.strip():
            errors["email"] = "Enter the customer's email (or wait for their text reply)."
        with self.db.read() as s:
            order = self.sales._mine(s, order_id)
            if order.state not in EDITABLE:
                raise MigrationError("The customer has already signed: the contact can no longer change here.")
            lm = self._legacy_of(s, order)
            if lm.migrated_at is not None:
                raise AlreadyMigrated(migrated_message(lm, self._customer_number(s, lm.migrated_customer_id), self.zone))
            customer_id, lm_id = order.customer_id, lm.id
            version = s.get(Customer, customer_id).version if customer_id else None  # type: ignore[union-attr]
        if errors:
            raise ValidationFailed(errors)
        try:
            if customer_id is None:  # a retry reuses the customer an abandoned attempt created
                customer = create_or_reuse(self.customers, self.actor, form, legacy_member_id=lm_id, order_id=order_id)
            else:
                customer = self.customers.update_contact(self.actor, customer_id, version, form)  # type: ignore[arg-type]
        except PermissionDenied as exc:
            raise MigrationError(str(exc)) from None
        with self.db.write() as s:
            order = self.sales._mine(s, order_id)
            lm = self._legacy_of(s, order)
            customer = s.get(Customer, customer.id)
            vehicle_ids = self._vehicles(s, order, lm, customer)  # type: ignore[arg-type]
            plan = s.get(Plan, order.plan_id)
            order.customer_id, order.vehicle_ids = customer.id, vehicle_ids  # type: ignore[union-attr]
            self.sales._limit_vehicles(order, plan)  # type: ignore[arg-type]
            self.sales._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "migration.account", "sales_order", order.id,
                         after={"customer_id": customer.id, "customer_number": customer.customer_number,  # type: ignore[union-attr]
                                "legacy_id": lm.legacy_id, "vehicle_ids": list(order.vehicle_ids or []),
                                "plan_id": order.plan_id})
        return self.order(order_id)

    @guarded
    def use_existing_customer(self, order_id: int, customer_id: int) -> OrderView:
        """The contact step's "Use that customer" (confirm_contact raised DuplicateCustomer): the legacy
        member is migrated onto the customer who already has the phone or email, whose record is kept as it
        is. Their garage gets the legacy plates and the session's car; the membership is created on them at
        `pay`. No customer is created. Refused when they already have a current membership (it would be
        billed twice) or when this migration already has another customer."""
        with self.db.read() as s:
            order = self.sales._mine(s, order_id)
            if order.state not in EDITABLE:
                raise MigrationError("The customer has already signed: the contact can no longer change here.")
            lm = self._legacy_of(s, order)
            if lm.migrated_at is not None:
                raise AlreadyMigrated(migrated_message(lm, self._customer_number(s, lm.migrated_customer_id), self.zone))
            if order.customer_id == customer_id:
                return self.order(order_id)  # already theirs (a second press, a retry)
            if order.customer_id is not None:
                raise MigrationError("This migration already has its customer: go back to the match and start "
                                     "again to use another one.")
            customer = s.get(Customer, customer_id)
            if customer is None:
                raise MigrationError("That customer no longer exists: check the details and Confirm again.")
            current = self.sales._current_membership(s, customer_id)
            if current is not None:
                plan = s.get(Plan, current.plan_id)
                raise MigrationError(
                    f"{customer.first_name} {customer.last_name} (#{customer.customer_number}) already has a "
                    f"{plan.name if plan else 'current'} membership: migrating onto them would bill them twice. "
                    "Go back and check the details, or change their membership on their record.")
        with self.db.write() as s:
            order = self.sales._mine(s, order_id)
            lm = self._legacy_of(s, order)
            customer = s.get(Customer, customer_id)
            vehicle_ids = self._vehicles(s, order, lm, customer)  # type: ignore[arg-type]
            plan = s.get(Plan, order.plan_id)
            order.customer_id, order.vehicle_ids = customer.id, vehicle_ids  # type: ignore[union-attr]
            self.sales._limit_vehicles(order, plan)  # type: ignore[arg-type]
            self.sales._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "migration.existing_customer_used", "sales_order", order.id,
                         after={"legacy_member_id": lm.id, "legacy_id": lm.legacy_id, "customer_id": customer.id,  # type: ignore[union-attr]
                                "customer_number": customer.customer_number,  # type: ignore[union-attr]
                                "vehicle_ids": list(order.vehicle_ids or []), "plan_id": order.plan_id})
        return self.order(order_id)

    def _vehicles(self, s: Session, order: SalesOrder, lm: LegacyMember, customer: Customer) -> list[int]:
        """The legacy plates become the customer's vehicles; the session's car is linked to its match
        (the camera may have misread it), or added when the legacy record does not have it."""
        vs = s.get(VehicleSession, order.session_id) if order.session_id else None
        region = vs.plate_region if vs else ""
        colour, make, model = _split_vehicle(lm.vehicle_desc)
        ids: list[int] = []
        session_vehicle = None
        best = 0.0
        for p in s.exec(select(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == lm.id)
                        .order_by(col(LegacyMemberPlate.id))):
            score = plate_match_score(vs.plate, p.plate_normalized) if vs else 0.0
            details = (vs.make or make, vs.model or model, vs.colour or colour) if vs and score > best else (make, model, colour)
            v = self.sales._garage_vehicle(s, customer, p.plate_raw, region, *details)
            if v.id not in ids:
                ids.append(v.id)  # type: ignore[arg-type]
            if score > best:
                best, session_vehicle = score, v
        if vs is not None and session_vehicle is None:
            session_vehicle = self.sales._garage_vehicle(s, customer, vs.plate, vs.plate_region, vs.make, vs.model,
                                                         vs.colour)
            ids.insert(0, session_vehicle.id)  # type: ignore[arg-type]
        if vs is not None and session_vehicle is not None:
            ids.remove(session_vehicle.id)  # type: ignore[arg-type]
            ids.insert(0, session_vehicle.id)  # type: ignore[arg-type]
            before = audit.snapshot(vs, ["customer_id", "vehicle_id"])
            vs.customer_id, vs.vehicle_id = customer.id, session_vehicle.id
            vs.version += 1
            s.add(vs)
            audit.record(s, self.actor, "session.customer_linked", "vehicle_session", vs.id, before=before,
                         after=audit.snapshot(vs, ["customer_id", "vehicle_id"]))
        return ids

    # --- the card and the billing date -------------------------------------------------------------

    @guarded
    def attach_reader_card(self, order_id: int, token: Any) -> OrderView:
        return _migration_view(self.sales.attach_reader_card(order_id, token))

    @guarded
    def key_card(self, order_id: int, number: str, expiry: str, cvc: str) -> OrderView:
        return _migration_view(self.sales.key_card(order_id, number, expiry, cvc))

    def billing_date(self, order_id: int) -> BillingDate:
        with self.db.read() as s:
            order = self.sales._get(s, order_id)
            lm = self._legacy_of(s, order)
            return self._billing_date(order, lm)

    def _billing_date(self, order: SalesOrder, lm: LegacyMember) -> BillingDate:
        today = self.today()
        overridden = order.next_billing_on is not None and order.next_billing_on != lm.next_bill_on
        day = order.next_billing_on or lm.next_bill_on
        problem = None
        if day is None:
            problem = ("The legacy record has no next billing date: a manager must choose the date of the first "
                       "charge (Manager override).")
        elif day <= today:
            what = "today" if day == today else f"in the past ({day.strftime('%b %d, %Y')})"
            problem = (f"The legacy next billing date is {what}: keeping it would charge the member today. "
                       "A manager must choose the date of the first charge (Manager override).")
        return BillingDate(lm.next_bill_on, day, overridden, problem)

    def override_billing_date(self, order_id: int, day: dt.date, manager: Actor) -> BillingDate:
        """A manager chooses the first billing date (after today, within MAX_OVERRIDE_DAYS).

        `manager` is who approved it: from the one PIN check (PinService.approve_manager, behind the
        ManagerPinModal), or the manager signed in at this terminal. Checked again here: the permission,
        and an active manager's operator row. The audit row names them (name and operator id)."""
        check_override_day(day, self.today())
        require(manager, Permission.BILLING_OVERRIDE)
        with self.db.write() as s:
            approver = s.get(Operator, manager.operator_id) if manager.operator_id is not None else None
            if approver is None or not approver.active or Role(approver.role) != Role.MANAGER:
                raise PermissionDenied("Only an active manager can choose the billing date: ask a manager to "
                                       "approve it with their PIN.")
            order = self.sales._mine(s, order_id)
            if order.state not in EDITABLE:
                raise MigrationError("The customer has already signed: the billing date can no longer change.")
            lm = self._legacy_of(s, order)
            before = {"next_billing_on": (order.next_billing_on or lm.next_bill_on)}
            order.next_billing_on = day
            self.sales._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "migration.billing_date_override", "sales_order", order.id,
                         before={k: v.isoformat() if v else None for k, v in before.items()},
                         after={"next_billing_on": day.isoformat(), "manager": approver.name,
                                "manager_operator_id": approver.id, "legacy_next_bill_on":
                                    lm.next_bill_on.isoformat() if lm.next_bill_on else None})
            return self._billing_date(order, lm)

    # --- checkout (the shared screens' backend) -------------------------------------------------------

    @guarded
    def review(self, order_id: int) -> OrderView:
        """Fix the amounts (nothing due today) and the next billing date for the checkout summary."""
        with self.db.write() as s:
            order = self.sales._editable(s, order_id)
            lm = self._legacy_of(s, order)
            missing = [w for w, v in (("the contact details (Confirm)", order.customer_id),
                                      ("a card on file", order.payment_method_id)) if v is None]
            if missing:
                raise MigrationError(f"The migration needs {' and '.join(missing)} before checkout.")
            date = self._billing_date(order, lm)
            if date.problem:
                raise BillingDateInPast(date.problem)
            plan = s.get(Plan, order.plan_id)
            order.subtotal_cents = plan_subtotal(plan, max(1, len(order.vehicle_ids or [])))  # type: ignore[arg-type]
            order.discount_cents = order.due_today_cents = order.tax_cents = 0
            order.next_billing_on = date.effective
            self.sales._touch(s, order, OrderState.CHECKOUT)
            audit.record(s, self.actor, "order.reviewed", "sales_order", order.id,
                         after=audit.snapshot(order, ["subtotal_cents", "due_today_cents", "next_billing_on", "kind"]))
        return self.order(order_id)

    @guarded
    def checkout(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.checkout(order_id))

    def current_terms(self) -> Any:
        return self.sales.current_terms()

    @guarded
    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView:
        return _migration_view(self.sales.accept_terms(order_id, terms_version_id, how))

    @guarded
    def decline_terms(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.decline_terms(order_id))

    @guarded
    def record_signature(self, order_id: int, strokes: Any, svg: str, *, device: str,
                         signer_name: str | None = None) -> OrderView:
        return _migration_view(self.sales.record_signature(order_id, strokes, svg, device=device,
                                                           signer_name=signer_name))

    # --- paying (no charge) and activating -------------------------------------------------------------

    @guarded
    def pay(self, order_id: int) -> PayResult:
        """Agree was pressed: claim the legacy member (once only), save the card and anchor the
        subscription to the billing date (nothing charged), then activate. Safe to call again."""
        with self.db.read() as s:
            order = self.sales._mine(s, order_id)
            if order.kind != OrderKind.MIGRATION:
                raise MigrationError("This order is not a migration.")
            if order.state not in (OrderState.SIGNED, OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC,
                                   OrderState.COMPLETED):
                raise MigrationError("The customer must sign before the membership is set up.")
            state = order.state
        if state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
            self._claim(order_id)
            with self.db.read() as s:
                anchor = s.get(SalesOrder, order_id).next_billing_on  # type: ignore[union-attr]
            try:
                outcome: BillingOutcome = self.billing.start_migration(order_id, anchor, today=self.today())  # type: ignore[arg-type]
            except Exception as exc:
                from clarity_tui.payments.errors import PaymentError

                if isinstance(exc, PaymentError):
                    raise MigrationError(str(exc)) from exc
                raise
            if not (outcome.completed or outcome.pending_sync):
                return PayResult(outcome.state, outcome.message, False)
        activated = self.sales.activate(order_id)
        view = self.order(order_id)
        if activated:
            with self.db.write() as s:
                audit.record(s, self.actor, "migration.completed", "sales_order", order_id,
                             after={"legacy_member_id": view.legacy_member_id, "next_billing_on":
                                    view.next_billing_on.isoformat() if view.next_billing_on else None})
        return PayResult(view.state, view.last_error, activated)

    def _claim(self, order_id: int) -> None:
        """Mark the legacy member migrated by this order, or raise AlreadyMigrated (and cancel ours)."""
        now = utcnow()
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            lm_id = order.legacy_member_id  # type: ignore[union-attr]
            won = s.execute(update(LegacyMember)
                            .where(col(LegacyMember.id) == lm_id, col(LegacyMember.migrated_at).is_(None))
                            .values(migrated_at=now, migrated_by=self.actor.name[:120],
                                    migrated_terminal=self.terminal[:64],
                                    migrated_customer_id=order.customer_id)).rowcount  # type: ignore[union-attr]
            lm = s.get(LegacyMember, lm_id)
            s.refresh(lm)  # type: ignore[arg-type]
            ours = lm.migrated_customer_id == order.customer_id  # type: ignore[union-attr]
            if won or ours:
                if order.membership_id is None:  # type: ignore[union-attr]
                    m = Membership(customer_id=order.customer_id, plan_id=order.plan_id,  # type: ignore[union-attr, arg-type]
                                   status=MembershipStatus.ACTIVE, source=MembershipSource.MIGRATION,
                                   started_on=self.today(), next_billing_on=order.next_billing_on,  # type: ignore[union-attr]
                                   # The legacy POS was paid up to the billing date the member keeps.
                                   paid_through=order.next_billing_on,  # type: ignore[union-attr]
                                   legacy_member_id=lm.id, legacy_id=lm.legacy_id, pending_sync=True)  # type: ignore[union-attr]
                    s.add(m)
                    s.flush()
                    order.membership_id = m.id  # type: ignore[union-attr]
                    s.add(order)
                    audit.record(s, self.actor, "membership.create", "membership", m.id, after=audit.snapshot(m))
                if won:
                    audit.record(s, self.actor, "legacy.migrated", "legacy_member", lm.id,  # type: ignore[union-attr]
                                 after={"legacy_id": lm.legacy_id, "customer_id": order.customer_id,  # type: ignore[union-attr]
                                        "terminal": self.terminal, "order_id": order_id})
                return
            message = migrated_message(lm, self._customer_number(s, lm.migrated_customer_id), self.zone)  # type: ignore[arg-type]
        # Lost the race: nothing reached the gateway; this order ends here.
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            self.sales._cancel_row(s, order, "migration.refused_already_migrated", {"reason": message})  # type: ignore[arg-type]
        raise AlreadyMigrated(message)

    @guarded
    def cancel(self, order_id: int) -> OrderView:
        """Abandon the migration before it completed; the legacy member can be migrated later."""
        view = self.sales.cancel(order_id)
        if view.state == OrderState.CANCELLED and view.legacy_member_id and view.customer_id:
            with self.db.write() as s:
                released = s.execute(update(LegacyMember).where(
                    col(LegacyMember.id) == view.legacy_member_id,
                    col(LegacyMember.migrated_customer_id) == view.customer_id)
                    .values(migrated_at=None, migrated_by=None, migrated_terminal=None,
                            migrated_customer_id=None)).rowcount
                if released:
                    audit.record(s, self.actor, "legacy.migration_released", "legacy_member", view.legacy_member_id,
                                 after={"order_id": order_id})
        return view

    def recover(self) -> list[int]:
        """Start-up: finish migrations a crash or the network left half done (no second SetupIntent)."""
        return self.sales.recover()

    def resume_step(self, view: OrderView) -> str:
        """Where the flow picks up an order: contact, card, summary, terms, signature, pay or done."""
        if view.activated:
            return "done"
        if view.state == OrderState.DRAFT:
            return "contact" if view.customer_id is None else "card"
        if view.state == OrderState.CHECKOUT:
            return "summary"
        if view.state == OrderState.TERMS:
            return "signature" if view.terms_accepted_how else "terms"
        return "pay"

    def open_migration_for_session(self, session_id: int) -> OrderView | None:
        """This terminal's unfinished migration on the session (to resume it), if any."""
        with self.db.read() as s:
            order = s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id,
                                                    SalesOrder.kind == OrderKind.MIGRATION,
                                                    SalesOrder.terminal == self.terminal)
                           .order_by(col(SalesOrder.id).desc())).first()
            if order is None or order.state == OrderState.CANCELLED:
                return None
            progress = s.get(OrderProgress, order.id)
            if progress is not None and progress.activated_at is not None:
                return None
            return _migration_view(self.sales._view(s, order))


def _migration_view(view: OrderView) -> OrderView:
    """A migration charges nothing today (the sale view prices a draft as a sale)."""
    if view.kind != OrderKind.MIGRATION or (view.due_today_cents == 0 and view.discount_cents == 0
                                            and view.tax_cents == 0):
        return view
    return replace(view, due_today_cents=0, discount_cents=0, tax_cents=0)


__all__ = [
    "AlreadyMigrated", "BillingDate", "BillingDateInPast", "EmailReply", "InactiveLegacyMember", "LegacyCandidate",
    "MAX_OVERRIDE_DAYS", "MigrationError", "MigrationService", "check_override_day",
]
