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
    terms ... signed            (the shared checkout steps: orders/checkout.py)
    pay                         (claims the legacy member, then BillingService.start_migration:
                                 customer -> card -> subscription with trial_end = the date; then
                                 activation: vehicles on the membership, the session a member)

The work is in the sibling modules; this class keeps every public step (the permission matrix
checks each one on it), which is why the module is over 400 lines. Migrate once only: see claim.py. A killed process resumes through the billing outbox: the same
idempotency keys, no second SetupIntent (see services/billing.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from clarity_tui.messaging.base import MessagingError, SentSms, SmsProvider
from clarity_tui.payments.errors import PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import ContactForm, ValidationFailed, display_phone
from clarity_tui.services.customer_duplicates import create_or_reuse
from clarity_tui.services.commissions import CommissionSettings
from clarity_tui.services.identity import InvalidPhone, normalize_phone
from clarity_tui.services.legacy_match import plate_matches
from clarity_tui.services.migration.billing_date import (
    BillingDate,
    billing_date_of,
    fix_for_checkout,
    override_billing_date,
)
from clarity_tui.services.migration.claim import claim_legacy_member, release_legacy_member
from clarity_tui.services.migration.contact import (
    EmailReply,
    email_in_replies,
    email_request,
    put_customer_on_order,
    refuse_a_member,
)
from clarity_tui.services.migration.matching import (
    MATCH_LABELS,
    MAX_CANDIDATES,
    LegacyCandidate,
    already_migrated,
    legacy_candidates,
    legacy_of,
    looks_like_phone,
    make_migration_order,
    phone_hint,
)
from clarity_tui.services.migration_guard import MigrationError, approve_inactive, check_override_day
from clarity_tui.services.orders import EDITABLE, OrderView, PayResult, SaleService
from clarity_tui.services.orders.guards import get_order
from clarity_tui.services.permissions import Permission, PermissionDenied, guarded, require
from clarity_tui.services.sales_tax import TaxSettings
from db.engine import Database
from db.models import (
    Customer,
    LegacyMember,
    Operator,
    OrderKind,
    OrderProgress,
    OrderState,
    Role,
    SalesOrder,
    TermsVersion,
    VehicleSession,
)

if TYPE_CHECKING:
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.wiring import Services


class MigrationService:
    """Every step of migrating one legacy member. Implements the shared screens' CheckoutBackend.

    Each @guarded step checks legacy.migrate for the actor first (and so do the sale steps it reuses);
    the matching reads are open. The billing-date override is approved by a manager's PIN."""

    permission = Permission.MIGRATE

    def __init__(self, db: Database, gateway: PaymentGateway, actor: Actor, *, terminal: str | None = None,
                 phone_region: str = "US", today: Callable[[], dt.date] | None = None, currency: str = "usd",
                 sms: SmsProvider | None = None, site_name: str = "the car wash", zone: dt.tzinfo = dt.UTC,
                 tax: TaxSettings | None = None, commissions: CommissionSettings | None = None) -> None:
        self.db = db
        self.actor = actor
        # The site's sales tax: nothing is charged today, but the subscription's renewals carry its rate.
        self.sales = SaleService(db, gateway, actor, terminal=terminal, phone_region=phone_region, today=today,
                                 currency=currency, zone=zone, tax=tax, permission=Permission.MIGRATE,
                                 commissions=commissions)
        self.steps = self.sales.steps
        self.terminal = self.sales.terminal
        self.phone_region = phone_region
        self.billing = self.sales.billing
        self.customers = self.sales.customers
        self.sms = sms
        self.site_name = site_name

    @property
    def today(self) -> Callable[[], dt.date]:
        return self.steps.today

    @property
    def zone(self) -> dt.tzinfo:
        """The site's clock, for times shown to the attendant."""
        return self.steps.zone

    @classmethod
    def from_services(cls, services: Services, actor: Actor | None = None) -> MigrationService:
        """Built from the running terminal's services, for `actor` (the terminal's system actor if None)."""
        settings = services.settings
        return cls(services.db, services.gateway, actor or Actor.system("migration", services.terminal),
                   terminal=services.terminal, phone_region=settings.site.phone_region, today=services.today,
                   currency=settings.payments.currency, sms=services.messaging, site_name=settings.site.name,
                   zone=settings.site.zone, tax=settings.billing.tax, commissions=settings.wash.commissions)

    # --- matching ----------------------------------------------------------------------------------

    def candidates_for_plate(self, plate: str, limit: int = MAX_CANDIDATES) -> list[LegacyCandidate]:
        """Legacy members whose plate matches the read, best first (exact, look-alike, one off)."""
        with self.db.read() as s:
            return legacy_candidates(s, plate_matches(s, plate), limit, lambda sc: MATCH_LABELS.get(sc, "plate"),
                                     self.zone)

    def candidates_for_phone(self, phone: str, limit: int = MAX_CANDIDATES) -> list[LegacyCandidate]:
        try:
            e164 = normalize_phone(phone, self.phone_region)
        except InvalidPhone as exc:
            raise MigrationError(str(exc)) from None
        with self.db.read() as s:
            ids = s.exec(select(LegacyMember.id).where(LegacyMember.phone_e164 == e164)).all()
            return legacy_candidates(s, {i: 1.0 for i in ids if i is not None}, limit, lambda _: "phone matches",
                                     self.zone)

    def search(self, text: str) -> list[LegacyCandidate]:
        """What the attendant typed: a phone number (7+ digits) or a plate."""
        text = (text or "").strip()
        if not text:
            raise MigrationError("Type the plate or the customer's phone number.")
        return self.candidates_for_phone(text) if looks_like_phone(text) else self.candidates_for_plate(text)

    def session_plate(self, session_id: int) -> str:
        """The plate the session was read with ("?" once the session is gone), for the match screen."""
        with self.db.read() as s:
            vs = s.get(VehicleSession, session_id)
            return vs.plate if vs else "?"

    def candidates_for_session(self, session_id: int) -> list[LegacyCandidate]:
        with self.db.read() as s:
            vs = s.get(VehicleSession, session_id)
            if vs is None:
                raise MigrationError(f"Session {session_id} no longer exists: go back to the board.")
            plate = vs.plate
        return self.candidates_for_plate(plate)

    def legacy(self, legacy_member_id: int) -> LegacyCandidate:
        with self.db.read() as s:
            found = legacy_candidates(s, {legacy_member_id: 1.0}, 1, lambda _: "chosen", self.zone)
        if not found:
            raise MigrationError("That legacy member no longer exists: search again.")
        return found[0]

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
                raise already_migrated(s, lm, self.zone)
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
            make_migration_order(s, self.steps, get_order(s, view.id), legacy_member_id, session_id, approval)
        return self.order(view.id)

    def order(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.order(order_id))

    # --- contact -----------------------------------------------------------------------------------

    def contact_form(self, order_id: int) -> ContactForm:
        """Prefilled from the customer (when already created) or the legacy record."""
        with self.db.read() as s:
            order = get_order(s, order_id)
            customer = s.get(Customer, order.customer_id) if order.customer_id else None
            if customer is not None:
                return ContactForm.of(customer, self.phone_region)
            lm = legacy_of(s, order)
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
            first = legacy_of(s, self.steps.owned(s, order_id)).first_name
        try:
            sent = self.sms.send(e164, email_request(self.site_name, first))
        except MessagingError as exc:
            raise MigrationError(f"{exc} Type the email in instead.") from None
        with self.db.write() as s:
            audit.record(s, self.actor, "migration.sms_sent", "sales_order", order_id,
                         after={"to": phone_hint(e164), "provider": self.sms.name, "message_id": sent.id})
        return sent

    def check_reply(self, sent: SentSms) -> EmailReply:
        """Poll for the customer's reply; the first valid address in it is the email."""
        if self.sms is None:
            return EmailReply(None, None)
        try:
            replies = self.sms.replies_since(sent)
        except MessagingError as exc:
            return EmailReply(None, None, f"{exc}")
        return email_in_replies(replies)

    def _contact_open(self, order_id: int) -> SalesOrder:
        """The order, while its contact may still change (read in the caller's session)."""
        with self.db.read() as s:
            order = self.steps.owned(s, order_id)
            if order.state not in EDITABLE:
                raise MigrationError("The customer has already signed: the contact can no longer change here.")
            lm = legacy_of(s, order)
            if lm.migrated_at is not None:
                raise already_migrated(s, lm, self.zone)
            return order

    @guarded
    def confirm_contact(self, order_id: int, form: ContactForm) -> OrderView:
        """Confirm: every field validated; creates the customer (linked to the legacy record) with
        vehicles from the legacy plates, on the mapped plan. Raises ValidationFailed per field."""
        errors = {}
        if not form.phone.strip():
            errors["phone"] = "Enter the customer's mobile number."
        if not form.email.strip():
            errors["email"] = "Enter the customer's email (or wait for their text reply)."
        order = self._contact_open(order_id)
        customer_id, lm_id = order.customer_id, order.legacy_member_id
        with self.db.read() as s:
            existing = s.get(Customer, customer_id) if customer_id else None
            version = existing.version if existing else None
        if errors:
            raise ValidationFailed(errors)
        try:
            if customer_id is None or version is None:  # a retry reuses the customer an abandoned attempt created
                customer = create_or_reuse(self.customers, self.actor, form, legacy_member_id=lm_id, order_id=order_id)
            else:
                customer = self.customers.update_contact(self.actor, customer_id, version, form)
        except PermissionDenied as exc:
            raise MigrationError(str(exc)) from None
        with self.db.write() as s:
            order = self.steps.owned(s, order_id)
            lm = legacy_of(s, order)
            row = s.get(Customer, customer.id)
            if row is None:
                raise MigrationError("The customer was removed meanwhile: check the details and Confirm again.")
            put_customer_on_order(s, self.steps, order, lm, row)
            audit.record(s, self.actor, "migration.account", "sales_order", order.id,
                         after={"customer_id": row.id, "customer_number": row.customer_number,
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
        order = self._contact_open(order_id)
        if order.customer_id == customer_id:
            return self.order(order_id)  # already theirs (a second press, a retry)
        if order.customer_id is not None:
            raise MigrationError("This migration already has its customer: go back to the match and start "
                                 "again to use another one.")
        with self.db.read() as s:
            refuse_a_member(s, customer_id)
        with self.db.write() as s:
            order = self.steps.owned(s, order_id)
            lm = legacy_of(s, order)
            customer = s.get(Customer, customer_id)
            if customer is None:
                raise MigrationError("That customer no longer exists: check the details and Confirm again.")
            put_customer_on_order(s, self.steps, order, lm, customer)
            audit.record(s, self.actor, "migration.existing_customer_used", "sales_order", order.id,
                         after={"legacy_member_id": lm.id, "legacy_id": lm.legacy_id, "customer_id": customer.id,
                                "customer_number": customer.customer_number,
                                "vehicle_ids": list(order.vehicle_ids or []), "plan_id": order.plan_id})
        return self.order(order_id)

    # --- the card and the billing date -------------------------------------------------------------

    @guarded
    def attach_reader_card(self, order_id: int, token: Any) -> OrderView:
        return _migration_view(self.sales.attach_reader_card(order_id, token))

    @guarded
    def key_card(self, order_id: int, number: str, expiry: str, cvc: str) -> OrderView:
        return _migration_view(self.sales.key_card(order_id, number, expiry, cvc))

    def billing_date(self, order_id: int) -> BillingDate:
        with self.db.read() as s:
            order = get_order(s, order_id)
            return billing_date_of(order, legacy_of(s, order), self.today())

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
            return override_billing_date(s, self.steps, order_id, day, approver, self.today())

    # --- checkout (the shared screens' backend) -------------------------------------------------------

    @guarded
    def review(self, order_id: int) -> OrderView:
        """Fix the amounts (nothing due today) and the next billing date for the checkout summary."""
        with self.db.write() as s:
            fix_for_checkout(s, self.steps, order_id, self.today())
        return self.order(order_id)

    @guarded
    def checkout(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.checkout(order_id))

    def current_terms(self) -> TermsVersion:
        return self.sales.current_terms()

    @guarded
    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView:
        return _migration_view(self.sales.accept_terms(order_id, terms_version_id, how))

    @guarded
    def decline_terms(self, order_id: int) -> OrderView:
        return _migration_view(self.sales.decline_terms(order_id))

    @guarded
    def record_signature(self, order_id: int, strokes: Sequence[Sequence[Sequence[float]]], svg: str, *,
                         device: str, signer_name: str | None = None) -> OrderView:
        return _migration_view(self.sales.record_signature(order_id, strokes, svg, device=device,
                                                           signer_name=signer_name))

    # --- paying (no charge) and activating -------------------------------------------------------------

    @guarded
    def pay(self, order_id: int) -> PayResult:
        """Agree was pressed: claim the legacy member (once only), save the card and anchor the
        subscription to the billing date (nothing charged), then activate. Safe to call again."""
        with self.db.read() as s:
            order = self.steps.owned(s, order_id)
            if order.kind != OrderKind.MIGRATION:
                raise MigrationError("This order is not a migration.")
            if order.state not in (OrderState.SIGNED, OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC,
                                   OrderState.COMPLETED):
                raise MigrationError("The customer must sign before the membership is set up.")
            state = order.state
        if state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
            claim_legacy_member(self.steps, order_id, self.today())
            with self.db.read() as s:
                anchor = get_order(s, order_id).next_billing_on
            if anchor is None:
                raise MigrationError("The migration has no billing date: review it again.")
            try:
                outcome = self.billing.start_migration(order_id, anchor, today=self.today())
            except PaymentError as exc:
                raise MigrationError(str(exc)) from exc
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

    @guarded
    def cancel(self, order_id: int) -> OrderView:
        """Abandon the migration before it completed; the legacy member can be migrated later."""
        view = self.sales.cancel(order_id)
        if view.state == OrderState.CANCELLED and view.legacy_member_id and view.customer_id:
            release_legacy_member(self.steps, order_id, view.legacy_member_id, view.customer_id)
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
            return _migration_view(self.steps.view(s, order))


def _migration_view(view: OrderView) -> OrderView:
    """A migration charges nothing today (the sale view prices a draft as a sale)."""
    if view.kind != OrderKind.MIGRATION or (view.due_today_cents == 0 and view.discount_cents == 0
                                            and view.tax_cents == 0):
        return view
    return replace(view, due_today_cents=0, discount_cents=0, tax_cents=0)
