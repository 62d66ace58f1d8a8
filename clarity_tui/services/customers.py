"""The customer record: contact details and question prompts, related customers, memberships,
web login, touchpoints, account benefits and notes.

Every change checks the actor's permission (`services.permissions`, matrix in its docstring),
validates its input (raising `ValidationFailed` with a message per field, so a form keeps what
was typed), and writes an audit row with before/after in the same transaction.

Contact edits are optimistic: the caller passes the `Customer.version` it loaded; a save against
a newer version is refused with `StaleRecord` naming who changed it, where and when.
Membership changes do the same with `Membership.version`, and call the payment gateway (injected)
for memberships billed by a gateway subscription, outside any database transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin, verify_pin
from clarity_tui.services.identity import (
    InvalidEmail,
    InvalidPhone,
    customer_search_keys,
    normalize_email,
    normalize_phone,
)
from clarity_tui.services.customer_input import (  # the record's refusals, re-exported from here
    CustomerError,
    InUse,
    NotFound,
    StaleRecord,
    ValidationFailed,
    parse_date,
    parse_int,
)
from clarity_tui.services.customer_memberships import CustomerMemberships
from clarity_tui.services.mailer import Mailer, MailSender, make_mailer
from clarity_tui.services.permissions import Permission, PermissionDenied, require
from db.engine import Database
from db.models import (
    AccountBenefit,
    AuditLog,
    Customer,
    CustomerRelationship,
    Membership,
    MembershipStatus,
    MembershipVehicle,
    Note,
    Operator,
    PasswordReset,
    PaymentMethod,
    Plan,
    QuestionPrompt,
    RelationshipKind,
    SalesOrder,
    Signature,
    Touchpoint,
    Vehicle,
    VehicleSession,
    WebLogin,
    utcnow,
)

__all__ = [
    "BENEFIT_TYPES", "RELATIONSHIP_LABELS", "ContactForm", "CustomerError", "CustomerRecord", "CustomerService",
    "NotFound", "PermissionDenied", "StaleRecord", "ValidationFailed",
]

RELATIONSHIP_LABELS = {
    RelationshipKind.HOUSEHOLD: "Household",
    RelationshipKind.BUSINESS: "Business",
    RelationshipKind.CONTACT: "Contact",
    RelationshipKind.SOLD_FOR: "Sold for",
}
BENEFIT_TYPES = ["Free wash", "Wash upgrade", "Vacuum token", "Gift credit", "Courtesy rewash"]
CONTACT_FIELDS = ["first_name", "last_name", "phone_e164", "email", "address_line1", "address_line2",
                  "city", "region", "postal_code", "country", "question_answers"]
RESET_TOKEN_HOURS = 24
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,119}$")


# --- views -------------------------------------------------------------------------


@dataclass
class ContactForm:
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    email: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    answers: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, c: Customer, phone_region: str = "US") -> ContactForm:
        return cls(c.first_name, c.last_name, display_phone(c.phone_e164, phone_region), c.email or "", c.address_line1 or "",
                   c.address_line2 or "", c.city or "", c.region or "", c.postal_code or "", c.country or "",
                   dict(c.question_answers or {}))


@dataclass(frozen=True)
class RelatedView:
    relationship_id: int
    kind: str
    other_id: int
    other_number: str
    other_name: str
    # True when this record is the one the relationship was added on ("Mrs is household of Mr").
    outgoing: bool

    @property
    def label(self) -> str:
        return RELATIONSHIP_LABELS.get(RelationshipKind(self.kind), self.kind)


@dataclass(frozen=True)
class MembershipInfo:
    id: int
    plan_code: str
    plan_name: str
    tier: int
    status: str
    started_on: dt.date
    expires_on: dt.date | None
    next_billing_on: dt.date | None
    cancel_at_period_end: bool
    pending_sync: bool
    version: int
    gateway_subscription_id: str | None
    vehicles: tuple[str, ...]
    benefits: tuple[str, ...]
    max_vehicles: int
    # A downgrade waiting for the next billing date: "changes to Basic Wash Club on 2026-12-14".
    scheduled_change: str | None = None
    vehicle_limit: int = 1


@dataclass(frozen=True)
class WebLoginView:
    id: int
    username: str
    has_password: bool
    must_change_password: bool
    reset_sent_at: dt.datetime | None


@dataclass(frozen=True)
class TouchpointView:
    id: int
    title: str
    due_on: dt.date | None
    assignee_id: int | None
    assignee_name: str
    done: bool


@dataclass(frozen=True)
class NoteView:
    id: int
    body: str
    operator_notice: bool
    author: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass
class CustomerRecord:
    customer: Customer
    related: list[RelatedView]
    memberships: list[MembershipInfo]
    web_login: WebLoginView | None
    touchpoints: list[TouchpointView]
    benefits: list[AccountBenefit]
    notes: list[NoteView]
    prompts: list[QuestionPrompt]
    operators: list[tuple[int, str]]
    plans: list[tuple[str, str, int]]
    cards: list[PaymentMethod]

    @property
    def notices(self) -> list[NoteView]:
        return [n for n in self.notes if n.operator_notice]

    @property
    def name(self) -> str:
        return f"{self.customer.first_name} {self.customer.last_name}".strip()


def display_phone(e164: str | None, site_region: str = "US") -> str:
    """National format for the site's own country, international (+44 20 ...) otherwise,
    so the number reads right and parses back to the same E.164 when the form is saved."""
    import phonenumbers

    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    same = phonenumbers.region_code_for_number(number) == site_region.upper()
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


# --- parsing helpers --------------------------------------------------------------------


def _reset_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- the service -------------------------------------------------------------------------


class CustomerService(CustomerMemberships):
    def __init__(self, db: Database, *, phone_region: str = "US", gateway: PaymentGateway | None = None,
                 mailer: Mailer | MailSender | None = None, reset_url: str = "https://example.invalid/reset-password",
                 today: Callable[[], dt.date] | None = None, tax: Any = None) -> None:
        self.db = db
        self.today = today or dt.date.today  # the site's day: plan changes and scheduled downgrades
        self.tax = tax  # the site's sales tax (settings.billing.tax): on an upgrade's charge today
        self.phone_region = phone_region
        self.gateway = gateway
        self.mailer = mailer
        self.reset_url = reset_url

    @classmethod
    def from_settings(cls, db: Database, settings: Any, gateway: PaymentGateway | None = None,
                      today: Callable[[], dt.date] | None = None) -> CustomerService:
        return cls(db, phone_region=settings.site.phone_region, gateway=gateway, mailer=make_mailer(settings),
                   reset_url=settings.smtp.reset_url, today=today, tax=settings.billing.tax)

    # --- reading ----------------------------------------------------------------------

    def find_by_number(self, number: str) -> Customer | None:
        with self.db.read() as s:
            return s.exec(select(Customer).where(Customer.customer_number == number.strip().upper())).first()

    def record(self, customer_id: int) -> CustomerRecord:
        with self.db.read() as s:
            c = s.get(Customer, customer_id)
            if c is None:
                raise NotFound(f"Customer {customer_id} no longer exists: it may have been deleted on another terminal.")
            operators = {o.id: o.name for o in s.exec(select(Operator).order_by(Operator.name))}
            return CustomerRecord(
                customer=c,
                related=self._related(s, customer_id),
                memberships=self._memberships(s, customer_id),
                web_login=self._web_login(s, customer_id),
                touchpoints=[
                    TouchpointView(t.id, t.title, t.due_on, t.assignee_operator_id,  # type: ignore[arg-type]
                                   operators.get(t.assignee_operator_id, "") if t.assignee_operator_id else "", t.done)
                    for t in s.exec(select(Touchpoint).where(Touchpoint.customer_id == customer_id)
                                    .order_by(col(Touchpoint.done), col(Touchpoint.due_on), col(Touchpoint.id)))
                ],
                benefits=list(s.exec(select(AccountBenefit).where(AccountBenefit.customer_id == customer_id).order_by(col(AccountBenefit.id)))),
                notes=[
                    NoteView(n.id, n.body, n.operator_notice, operators.get(n.author_operator_id, "") if n.author_operator_id else "",  # type: ignore[arg-type]
                             n.created_at, n.updated_at)
                    for n in s.exec(select(Note).where(Note.customer_id == customer_id).order_by(col(Note.id)))
                ],
                prompts=list(s.exec(select(QuestionPrompt).where(QuestionPrompt.active == True).order_by(col(QuestionPrompt.position)))),  # noqa: E712
                operators=[(oid, name) for oid, name in operators.items()],  # type: ignore[misc]
                plans=[(p.code, p.name, p.tier) for p in s.exec(select(Plan).where(Plan.active == True).order_by(col(Plan.tier), col(Plan.price_cents)))],  # noqa: E712
                cards=list(s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id, col(PaymentMethod.detached_at).is_(None)).order_by(col(PaymentMethod.id)))),
            )

    def operator_notices(self, customer_id: int) -> list[NoteView]:
        return self.record(customer_id).notices

    def prompts(self) -> list[QuestionPrompt]:
        with self.db.read() as s:
            return list(s.exec(select(QuestionPrompt).where(QuestionPrompt.active == True).order_by(col(QuestionPrompt.position))))  # noqa: E712

    def _related(self, s: Session, customer_id: int) -> list[RelatedView]:
        rows = s.exec(select(CustomerRelationship).where(or_(
            CustomerRelationship.customer_id == customer_id, CustomerRelationship.related_customer_id == customer_id,
        )).order_by(col(CustomerRelationship.id))).all()
        other_ids = {r.related_customer_id if r.customer_id == customer_id else r.customer_id for r in rows}
        others = {c.id: c for c in s.exec(select(Customer).where(col(Customer.id).in_(other_ids)))} if other_ids else {}
        out = []
        for r in rows:
            outgoing = r.customer_id == customer_id
            other = others[r.related_customer_id if outgoing else r.customer_id]
            out.append(RelatedView(r.id, r.kind, other.id, other.customer_number,  # type: ignore[arg-type]
                                   f"{other.first_name} {other.last_name}".strip(), outgoing))
        return out

    def _memberships(self, s: Session, customer_id: int) -> list[MembershipInfo]:
        out = []
        rows = s.exec(select(Membership, Plan).join(Plan, col(Plan.id) == Membership.plan_id)
                      .where(Membership.customer_id == customer_id).order_by(col(Membership.id))).all()
        from clarity_tui.services.membership_actions import effective_plan_id
        from clarity_tui.services.plan_changes import scheduled_note
        from clarity_tui.services.plan_pricing import vehicle_limit

        for m, plan in rows:
            vehicles = s.exec(select(Vehicle).join(MembershipVehicle, col(MembershipVehicle.vehicle_id) == Vehicle.id)
                              .where(MembershipVehicle.membership_id == m.id).order_by(col(Vehicle.id))).all()
            # A downgrade whose date has passed shows as done, before the billing sync applies it.
            plan = s.get(Plan, effective_plan_id(m, self.today())) or plan
            scheduled = s.get(Plan, m.scheduled_plan_id) if m.scheduled_plan_id and plan.id != m.scheduled_plan_id \
                else None
            out.append(MembershipInfo(
                m.id, plan.code, plan.name, plan.tier, m.status, m.started_on, m.expires_on, m.next_billing_on,  # type: ignore[arg-type]
                m.cancel_at_period_end, m.pending_sync, m.version, m.gateway_subscription_id,
                tuple(" ".join(x for x in (v.plate, v.colour, v.make, v.model) if x) for v in vehicles),
                tuple(plan.benefits or ()), plan.max_vehicles,
                scheduled_note(scheduled.name, m.scheduled_plan_on) if scheduled else None, vehicle_limit(plan),
            ))
        # Current memberships first.
        order = {MembershipStatus.ACTIVE: 0, MembershipStatus.PAST_DUE: 1, MembershipStatus.PAUSED: 2}
        return sorted(out, key=lambda m: (order.get(MembershipStatus(m.status), 3), -m.id))

    def _web_login(self, s: Session, customer_id: int) -> WebLoginView | None:
        w = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
        if w is None:
            return None
        return WebLoginView(w.id, w.username, bool(w.password_hash), w.must_change_password, w.reset_sent_at)  # type: ignore[arg-type]

    # --- shared write helpers -----------------------------------------------------------------

    def _customer(self, s: Session, customer_id: int, *, lock: bool = False) -> Customer:
        c = s.get(Customer, customer_id, with_for_update=lock or None)
        if c is None:
            raise NotFound(f"Customer {customer_id} no longer exists: it may have been deleted on another terminal.")
        return c

    def _stale(self, s: Session, entity: str, entity_id: int, what: str) -> StaleRecord:
        # Only the actions that bump the version say who made ours stale.
        versioned = col(AuditLog.action).like("membership.%") if entity == "membership" else col(AuditLog.action) == "customer.updated"
        last = s.exec(select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id), versioned)
                      .order_by(col(AuditLog.id).desc())).first()
        if last is None:
            return StaleRecord(f"{what} was changed on another terminal: reload it (your changes are still on screen).")
        when = last.at.astimezone().strftime("%Y-%m-%d %H:%M")
        where = f" ({last.terminal})" if last.terminal else ""
        return StaleRecord(f"{what} was changed on another terminal by {last.actor}{where} at {when}: "
                           "reload to see their change, then make yours again (your typing is still on screen).")

    def _touch(self, c: Customer) -> None:
        c.version += 1
        c.updated_at = utcnow()

    # --- contact details (General tab) -------------------------------------------------------------

    def _validate_contact(self, s: Session, form: ContactForm) -> dict[str, Any]:
        errors: dict[str, str] = {}
        first, last = form.first_name.strip(), form.last_name.strip()
        if not first and not last:
            errors["first_name"] = "Enter a first or last name."
        for key, value, limit in (("first_name", first, 80), ("last_name", last, 80)):
            if len(value) > limit:
                errors[key] = f"The name is longer than {limit} characters."
        phone = None
        if form.phone.strip():
            try:
                phone = normalize_phone(form.phone, self.phone_region)
            except InvalidPhone as exc:
                errors["phone"] = str(exc)
        email = None
        if form.email.strip():
            try:
                email = normalize_email(form.email)
            except InvalidEmail as exc:
                errors["email"] = str(exc)
        country = form.country.strip().upper() or None
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            errors["country"] = f"Country '{form.country}' must be a 2-letter code such as US, GB or CA."
        answers: dict[str, str] = {}
        prompts = {p.key: p for p in s.exec(select(QuestionPrompt).where(QuestionPrompt.active == True))}  # noqa: E712
        for key, answer in (form.answers or {}).items():
            if answer in (None, ""):
                continue
            prompt = prompts.get(key)
            if prompt is None:
                errors[f"answer:{key}"] = f"The question '{key}' no longer exists: reload the record."
            elif prompt.choices and answer not in prompt.choices:
                errors[f"answer:{key}"] = f"'{answer}' is not one of the answers to \"{prompt.text}\"."
            else:
                answers[key] = str(answer)[:200]
        limits = {"address_line1": 120, "address_line2": 120, "city": 80, "region": 40, "postal_code": 16}
        values: dict[str, Any] = {}
        for key, limit in limits.items():
            value = getattr(form, key).strip()
            if len(value) > limit:
                errors[key] = f"{key.replace('_', ' ').capitalize()} is longer than {limit} characters."
            values[key] = value or None
        if errors:
            raise ValidationFailed(errors)
        values.update(first_name=first, last_name=last, phone_e164=phone, email=email, country=country,
                      question_answers=answers or None)
        return values

    def _next_number(self, s: Session) -> str:
        n = (s.exec(select(func.max(Customer.id))).one() or 0) + 100000
        while True:
            n += 1
            number = f"C{n}"
            if s.exec(select(Customer.id).where(Customer.customer_number == number)).first() is None:
                return number

    def create_customer(self, actor: Actor, form: ContactForm, *, duplicate_ok: bool = False) -> Customer:
        """Raises ValidationFailed per field, or DuplicateCustomer when the phone or email is already a
        customer's (services/customer_duplicates.py) unless duplicate_ok."""
        require(actor, Permission.CREATE)
        with self.db.write() as s:
            values = self._validate_contact(s, form)
            if not duplicate_ok:
                from clarity_tui.services.customer_duplicates import refuse_duplicate

                refuse_duplicate(s, values)
            c = Customer(customer_number=self._next_number(s), **values,
                         **customer_search_keys(values["first_name"], values["last_name"], values["email"], values["phone_e164"]))
            s.add(c)
            s.flush()
            audit.record(s, actor, "customer.created", "customer", c.id, after=audit.snapshot(c, ["customer_number", *CONTACT_FIELDS]))
            return c

    def update_contact(self, actor: Actor, customer_id: int, expected_version: int, form: ContactForm) -> Customer:
        require(actor, Permission.EDIT_CONTACT)
        with self.db.write() as s:
            c = self._customer(s, customer_id, lock=True)
            if c.version != expected_version:
                raise self._stale(s, "customer", customer_id, f"{c.first_name} {c.last_name}".strip() or c.customer_number)
            values = self._validate_contact(s, form)
            before = audit.snapshot(c, CONTACT_FIELDS) or {}
            changed = {k: v for k, v in values.items() if getattr(c, k) != v}
            if not changed:
                return c
            for key, value in changed.items():
                setattr(c, key, value)
            for key, value in customer_search_keys(c.first_name, c.last_name, c.email, c.phone_e164).items():
                setattr(c, key, value)
            self._touch(c)
            audit.record(s, actor, "customer.updated", "customer", c.id,
                         before={k: before[k] for k in changed}, after={k: audit._jsonable(v) for k, v in changed.items()})
            return c

    def delete_customer(self, actor: Actor, customer_id: int, expected_version: int) -> None:
        require(actor, Permission.DELETE)
        with self.db.write() as s:
            c = self._customer(s, customer_id, lock=True)
            if c.version != expected_version:
                raise self._stale(s, "customer", customer_id, c.customer_number)
            blockers = []
            if s.exec(select(Membership.id).where(Membership.customer_id == customer_id)).first():
                blockers.append("a membership")
            if s.exec(select(SalesOrder.id).where(SalesOrder.customer_id == customer_id)).first():
                blockers.append("sales history")
            if s.exec(select(PaymentMethod.id).where(PaymentMethod.customer_id == customer_id)).first():
                blockers.append("a saved card")
            if s.exec(select(Signature.id).where(Signature.customer_id == customer_id)).first():
                blockers.append("signed terms")
            if blockers:
                raise InUse(f"{c.customer_number} has {', '.join(blockers)}: it cannot be deleted without losing history. "
                            "Cancel the membership instead, or add a note.")
            before = audit.snapshot(c, ["customer_number", *CONTACT_FIELDS])
            for model, column in ((CustomerRelationship, CustomerRelationship.customer_id),
                                  (CustomerRelationship, CustomerRelationship.related_customer_id),
                                  (Touchpoint, Touchpoint.customer_id), (AccountBenefit, AccountBenefit.customer_id),
                                  (Note, Note.customer_id)):
                for row in s.exec(select(model).where(column == customer_id)):
                    s.delete(row)
            login = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
            if login is not None:
                for reset in s.exec(select(PasswordReset).where(PasswordReset.web_login_id == login.id)):
                    s.delete(reset)
                s.delete(login)
            for v in s.exec(select(Vehicle).where(Vehicle.customer_id == customer_id)):
                v.customer_id = None
            for vs in s.exec(select(VehicleSession).where(VehicleSession.customer_id == customer_id)):
                vs.customer_id = None
            s.flush()
            s.delete(c)
            audit.record(s, actor, "customer.deleted", "customer", customer_id, before=before)

    # --- related customers -------------------------------------------------------------------------

    def add_relationship(self, actor: Actor, customer_id: int, other: str | int, kind: str) -> RelatedView:
        require(actor, Permission.RELATIONSHIP)
        errors: dict[str, str] = {}
        if kind not in {k.value for k in RelationshipKind}:
            errors["kind"] = "Choose the kind of relationship (household, business, contact or sold for)."
        with self.db.write() as s:
            me = self._customer(s, customer_id)
            if isinstance(other, int):
                target = s.get(Customer, other)
            else:
                number = (other or "").strip().upper()
                target = s.exec(select(Customer).where(Customer.customer_number == number)).first() if number else None
                if not number:
                    errors["other"] = "Enter the related customer's number, or search for them."
            if target is None and "other" not in errors:
                errors["other"] = f"No customer number '{other}': check it, or search for the customer."
            elif target is not None and target.id == me.id:
                errors["other"] = "A customer cannot be related to themselves."
            if errors:
                raise ValidationFailed(errors)
            assert target is not None
            dup = s.exec(select(CustomerRelationship).where(CustomerRelationship.kind == kind, or_(
                (col(CustomerRelationship.customer_id) == me.id) & (col(CustomerRelationship.related_customer_id) == target.id),
                (col(CustomerRelationship.customer_id) == target.id) & (col(CustomerRelationship.related_customer_id) == me.id),
            ))).first()
            if dup is not None:
                raise ValidationFailed({"other": f"{target.first_name} {target.last_name} is already related to this customer as "
                                                 f"{RELATIONSHIP_LABELS[RelationshipKind(kind)].lower()}."})
            rel = CustomerRelationship(customer_id=me.id, related_customer_id=target.id, kind=kind)  # type: ignore[arg-type]
            s.add(rel)
            s.flush()
            audit.record(s, actor, "relationship.added", "customer", me.id,
                         after={"relationship_id": rel.id, "related": target.customer_number, "kind": kind})
            return RelatedView(rel.id, kind, target.id, target.customer_number, f"{target.first_name} {target.last_name}".strip(), True)  # type: ignore[arg-type]

    def update_relationship(self, actor: Actor, relationship_id: int, kind: str) -> None:
        require(actor, Permission.RELATIONSHIP)
        if kind not in {k.value for k in RelationshipKind}:
            raise ValidationFailed({"kind": "Choose the kind of relationship (household, business, contact or sold for)."})
        with self.db.write() as s:
            rel = s.get(CustomerRelationship, relationship_id)
            if rel is None:
                raise NotFound("That relationship was removed on another terminal: reload the record.")
            before = {"kind": rel.kind}
            rel.kind = kind
            audit.record(s, actor, "relationship.updated", "customer", rel.customer_id, before=before,
                         after={"relationship_id": rel.id, "kind": kind})

    def remove_relationship(self, actor: Actor, relationship_id: int) -> None:
        require(actor, Permission.RELATIONSHIP)
        with self.db.write() as s:
            rel = s.get(CustomerRelationship, relationship_id)
            if rel is None:
                raise NotFound("That relationship was already removed: reload the record.")
            before = audit.snapshot(rel, ["id", "customer_id", "related_customer_id", "kind"])
            s.delete(rel)
            audit.record(s, actor, "relationship.removed", "customer", rel.customer_id, before=before)

    # --- web login ------------------------------------------------------------------------------------

    def _check_username(self, s: Session, username: str, login_id: int | None) -> str:
        name = (username or "").strip().lower()
        if not _USERNAME.match(name):
            raise ValidationFailed({"username": "A username has 3 to 120 letters, digits or . _ @ + - (starting with a letter or digit)."})
        taken = s.exec(select(WebLogin).where(WebLogin.username == name)).first()
        if taken is not None and taken.id != login_id:
            raise ValidationFailed({"username": f"The username '{name}' is taken: choose another."})
        return name

    @staticmethod
    def new_password() -> str:
        return secrets.token_urlsafe(9)  # 12 characters, ~72 bits

    def create_web_login(self, actor: Actor, customer_id: int, username: str) -> tuple[WebLoginView, str]:
        """Create the login with a random password; the password is returned once and never stored."""
        require(actor, Permission.WEB_LOGIN)
        password = self.new_password()
        with self.db.write() as s:
            self._customer(s, customer_id)
            if s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first() is not None:
                raise ValidationFailed({"username": "This customer already has a web login: change its username instead."})
            name = self._check_username(s, username, None)
            login = WebLogin(customer_id=customer_id, username=name, password_hash=hash_pin(password), must_change_password=True)
            s.add(login)
            s.flush()
            audit.record(s, actor, "weblogin.created", "customer", customer_id, after={"username": name})
            return WebLoginView(login.id, name, True, True, None), password  # type: ignore[arg-type]

    def change_username(self, actor: Actor, customer_id: int, username: str) -> None:
        require(actor, Permission.WEB_LOGIN)
        with self.db.write() as s:
            login = self._login(s, customer_id)
            name = self._check_username(s, username, login.id)
            before = {"username": login.username}
            login.username = name
            login.updated_at = utcnow()
            audit.record(s, actor, "weblogin.renamed", "customer", customer_id, before=before, after={"username": name})

    def random_password(self, actor: Actor, customer_id: int) -> str:
        """A new temporary password (shown once); the customer must change it at next sign-in."""
        require(actor, Permission.WEB_LOGIN)
        password = self.new_password()
        with self.db.write() as s:
            login = self._login(s, customer_id)
            login.password_hash = hash_pin(password)
            login.must_change_password = True
            login.updated_at = utcnow()
            audit.record(s, actor, "weblogin.password_generated", "customer", customer_id, after={"username": login.username})
        return password

    def remove_web_login(self, actor: Actor, customer_id: int) -> None:
        require(actor, Permission.WEB_LOGIN)
        with self.db.write() as s:
            login = self._login(s, customer_id)
            for reset in s.exec(select(PasswordReset).where(PasswordReset.web_login_id == login.id)):
                s.delete(reset)
            s.flush()
            s.delete(login)
            audit.record(s, actor, "weblogin.removed", "customer", customer_id, before={"username": login.username})

    def _login(self, s: Session, customer_id: int) -> WebLogin:
        login = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
        if login is None:
            raise NotFound("This customer has no web login: create one first.")
        return login

    def send_password_reset(self, actor: Actor, customer_id: int) -> str:
        """Email a one-time reset link (valid 24 h) over SMTP. Returns the address it went to."""
        require(actor, Permission.WEB_LOGIN)
        if self.mailer is None:
            raise CustomerError("No mail server is configured on this terminal: set the smtp settings.")
        token = secrets.token_urlsafe(32)
        with self.db.write() as s:
            c = self._customer(s, customer_id)
            login = self._login(s, customer_id)
            if not c.email:
                raise ValidationFailed({"email": "The customer has no email address: add one on the General tab first."})
            reset = PasswordReset(web_login_id=login.id, token_sha256=_reset_token_digest(token), sent_to=c.email,  # type: ignore[arg-type]
                                  expires_at=utcnow() + dt.timedelta(hours=RESET_TOKEN_HOURS))
            s.add(reset)
            s.flush()
            reset_id, to, username, name = reset.id, c.email, login.username, c.first_name or c.last_name
        body = (f"Hello {name},\n\nA password reset was requested for your car wash account ({username}).\n"
                f"Choose a new password here within {RESET_TOKEN_HOURS} hours:\n\n{self.reset_url}?token={token}\n\n"
                "If you did not ask for this, ignore this email: your password is unchanged.\n")
        try:
            self.mailer.send(to, "Reset your car wash account password", body)
        except Exception:
            with self.db.write() as s:
                row = s.get(PasswordReset, reset_id)
                if row is not None:
                    s.delete(row)
            raise
        with self.db.write() as s:
            login = self._login(s, customer_id)
            login.reset_sent_at = utcnow()
            audit.record(s, actor, "weblogin.reset_sent", "customer", customer_id, after={"username": username, "to": to})
        return to

    def complete_password_reset(self, token: str, new_password: str) -> None:
        """What the web portal calls with the emailed token (one use, before it expires)."""
        if len(new_password) < 8:
            raise ValidationFailed({"password": "Choose a password of at least 8 characters."})
        with self.db.write() as s:
            reset = s.exec(select(PasswordReset).where(PasswordReset.token_sha256 == _reset_token_digest(token))).first()
            if reset is None or reset.used_at is not None or reset.expires_at < utcnow():
                raise CustomerError("This reset link is invalid, used or expired: ask for a new one.")
            login = s.get(WebLogin, reset.web_login_id)
            assert login is not None
            login.password_hash = hash_pin(new_password)
            login.must_change_password = False
            reset.used_at = utcnow()
            audit.record(s, Actor(name=f"web:{login.username}"), "weblogin.password_reset", "customer", login.customer_id)

    def verify_web_password(self, username: str, password: str) -> bool:
        with self.db.read() as s:
            login = s.exec(select(WebLogin).where(WebLogin.username == username.strip().lower())).first()
            return bool(login and login.password_hash and verify_pin(password, login.password_hash))

    # --- touchpoints ---------------------------------------------------------------------------------------

    def _touchpoint_values(self, s: Session, title: str, due_on: str | dt.date | None, assignee_id: int | None) -> dict[str, Any]:
        errors: dict[str, str] = {}
        title = (title or "").strip()
        if not title:
            errors["title"] = "Enter what needs doing."
        elif len(title) > 200:
            errors["title"] = "The task is longer than 200 characters."
        date = parse_date(due_on, "Due date", errors, "due_on")
        if assignee_id is not None and s.get(Operator, assignee_id) is None:
            errors["assignee"] = "That operator no longer exists: choose another."
        if errors:
            raise ValidationFailed(errors)
        return {"title": title, "due_on": date, "assignee_operator_id": assignee_id}

    def add_touchpoint(self, actor: Actor, customer_id: int, title: str, due_on: str | dt.date | None = None,
                       assignee_id: int | None = None, done: bool = False) -> int:
        require(actor, Permission.TOUCHPOINT)
        with self.db.write() as s:
            self._customer(s, customer_id)
            tp = Touchpoint(customer_id=customer_id, done=done, done_at=utcnow() if done else None,
                            **self._touchpoint_values(s, title, due_on, assignee_id))
            s.add(tp)
            s.flush()
            audit.record(s, actor, "touchpoint.added", "customer", customer_id, after=audit.snapshot(tp, ["id", "title", "due_on", "assignee_operator_id", "done"]))
            return tp.id  # type: ignore[return-value]

    def update_touchpoint(self, actor: Actor, touchpoint_id: int, title: str, due_on: str | dt.date | None,
                          assignee_id: int | None, done: bool) -> None:
        require(actor, Permission.TOUCHPOINT)
        fields = ["title", "due_on", "assignee_operator_id", "done"]
        with self.db.write() as s:
            tp = s.get(Touchpoint, touchpoint_id)
            if tp is None:
                raise NotFound("That touchpoint was removed on another terminal: reload the record.")
            before = audit.snapshot(tp, fields)
            for key, value in self._touchpoint_values(s, title, due_on, assignee_id).items():
                setattr(tp, key, value)
            if done != tp.done:
                tp.done, tp.done_at = done, (utcnow() if done else None)
            audit.record(s, actor, "touchpoint.updated", "customer", tp.customer_id, before=before, after=audit.snapshot(tp, fields))

    def delete_touchpoint(self, actor: Actor, touchpoint_id: int) -> None:
        require(actor, Permission.TOUCHPOINT)
        with self.db.write() as s:
            tp = s.get(Touchpoint, touchpoint_id)
            if tp is None:
                raise NotFound("That touchpoint was already removed: reload the record.")
            before = audit.snapshot(tp, ["id", "title", "due_on", "done"])
            s.delete(tp)
            audit.record(s, actor, "touchpoint.removed", "customer", tp.customer_id, before=before)

    # --- account benefits --------------------------------------------------------------------------------------

    def _benefit_values(self, kind: str, description: str, quantity: str | int, remaining: str | int | None,
                        expires_on: str | dt.date | None) -> dict[str, Any]:
        errors: dict[str, str] = {}
        if kind not in BENEFIT_TYPES:
            errors["kind"] = f"Choose a benefit type: {', '.join(BENEFIT_TYPES)}."
        qty = parse_int(quantity, "Quantity", errors, "quantity", minimum=1)
        left = qty if remaining in (None, "") else parse_int(remaining, "Remaining", errors, "remaining", minimum=0)  # type: ignore[arg-type]
        if "quantity" not in errors and "remaining" not in errors and left > qty:
            errors["remaining"] = f"Remaining ({left}) cannot be more than the quantity ({qty})."
        date = parse_date(expires_on, "Expiry date", errors, "expires_on")
        description = (description or "").strip()
        if len(description) > 200:
            errors["description"] = "The description is longer than 200 characters."
        if errors:
            raise ValidationFailed(errors)
        return {"kind": kind, "description": description or None, "quantity": qty, "remaining": left, "expires_on": date}

    def add_benefit(self, actor: Actor, customer_id: int, kind: str, description: str = "", quantity: str | int = 1,
                    remaining: str | int | None = None, expires_on: str | dt.date | None = None) -> int:
        require(actor, Permission.BENEFIT)
        values = self._benefit_values(kind, description, quantity, remaining, expires_on)
        with self.db.write() as s:
            self._customer(s, customer_id)
            b = AccountBenefit(customer_id=customer_id, **values)
            s.add(b)
            s.flush()
            audit.record(s, actor, "benefit.added", "customer", customer_id, after=audit.snapshot(b, ["id", *values]))
            return b.id  # type: ignore[return-value]

    def update_benefit(self, actor: Actor, benefit_id: int, kind: str, description: str, quantity: str | int,
                       remaining: str | int | None, expires_on: str | dt.date | None) -> None:
        require(actor, Permission.BENEFIT)
        values = self._benefit_values(kind, description, quantity, remaining, expires_on)
        with self.db.write() as s:
            b = s.get(AccountBenefit, benefit_id)
            if b is None:
                raise NotFound("That benefit was removed on another terminal: reload the record.")
            before = audit.snapshot(b, list(values))
            for key, value in values.items():
                setattr(b, key, value)
            audit.record(s, actor, "benefit.updated", "customer", b.customer_id, before=before, after=audit.snapshot(b, list(values)))

    def remove_benefit(self, actor: Actor, benefit_id: int) -> None:
        require(actor, Permission.BENEFIT)
        with self.db.write() as s:
            b = s.get(AccountBenefit, benefit_id)
            if b is None:
                raise NotFound("That benefit was already removed: reload the record.")
            before = audit.snapshot(b, ["id", "kind", "description", "quantity", "remaining", "expires_on"])
            s.delete(b)
            audit.record(s, actor, "benefit.removed", "customer", b.customer_id, before=before)

    # --- notes ---------------------------------------------------------------------------------------------------

    def _note_body(self, body: str) -> str:
        body = (body or "").strip()
        if not body:
            raise ValidationFailed({"body": "Write the note first."})
        if len(body) > 4000:
            raise ValidationFailed({"body": "The note is longer than 4000 characters."})
        return body

    def add_note(self, actor: Actor, customer_id: int, body: str, operator_notice: bool = False) -> int:
        require(actor, Permission.NOTE)
        if operator_notice:
            require(actor, Permission.OPERATOR_NOTICE)
        text = self._note_body(body)
        with self.db.write() as s:
            self._customer(s, customer_id)
            n = Note(customer_id=customer_id, body=text, operator_notice=operator_notice, author_operator_id=actor.operator_id)
            s.add(n)
            s.flush()
            audit.record(s, actor, "note.added", "customer", customer_id, after={"note_id": n.id, "body": text, "operator_notice": operator_notice})
            return n.id  # type: ignore[return-value]

    def update_note(self, actor: Actor, note_id: int, body: str, operator_notice: bool) -> None:
        require(actor, Permission.NOTE)
        text = self._note_body(body)
        with self.db.write() as s:
            n = s.get(Note, note_id)
            if n is None:
                raise NotFound("That note was removed on another terminal: reload the record.")
            if n.operator_notice or operator_notice:
                require(actor, Permission.OPERATOR_NOTICE)
            before = {"body": n.body, "operator_notice": n.operator_notice}
            n.body, n.operator_notice, n.updated_at = text, operator_notice, utcnow()
            audit.record(s, actor, "note.updated", "customer", n.customer_id, before=before, after={"note_id": n.id, "body": text, "operator_notice": operator_notice})

    def delete_note(self, actor: Actor, note_id: int) -> None:
        require(actor, Permission.NOTE)
        with self.db.write() as s:
            n = s.get(Note, note_id)
            if n is None:
                raise NotFound("That note was already removed: reload the record.")
            if n.operator_notice:
                require(actor, Permission.OPERATOR_NOTICE)
            before = {"note_id": n.id, "body": n.body, "operator_notice": n.operator_notice}
            s.delete(n)
            audit.record(s, actor, "note.removed", "customer", n.customer_id, before=before)
