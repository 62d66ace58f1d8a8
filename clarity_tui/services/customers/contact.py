"""The General tab's writes: create a customer, edit the contact details and answers, delete the record.

Contact edits are optimistic: the caller passes the `Customer.version` it loaded; a save against a newer
version is refused with `StaleRecord` naming who changed it, where and when."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import InUse, ValidationFailed
from clarity_tui.services.customers.base import CustomerServiceBase, saved_id
from clarity_tui.services.customers.views import ContactForm
from clarity_tui.services.identity import (
    InvalidEmail,
    InvalidPhone,
    customer_search_keys,
    display_name,
    normalize_email,
    normalize_phone,
)
from clarity_tui.services.permissions import Permission, require
from db.models import (
    AccountBenefit,
    Customer,
    CustomerRelationship,
    Membership,
    Note,
    PasswordReset,
    PaymentMethod,
    QuestionPrompt,
    SalesOrder,
    Signature,
    Touchpoint,
    Vehicle,
    VehicleSession,
    WebLogin,
)

CONTACT_FIELDS = ["first_name", "last_name", "phone_e164", "email", "address_line1", "address_line2",
                  "city", "region", "postal_code", "country", "question_answers"]
_ADDRESS_LIMITS = {"address_line1": 120, "address_line2": 120, "city": 80, "region": 40, "postal_code": 16}


class ContactEdits(CustomerServiceBase):
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
        prompts = {p.key: p for p in s.exec(select(QuestionPrompt).where(col(QuestionPrompt.active).is_(True)))}
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
        values: dict[str, Any] = {}
        for key, limit in _ADDRESS_LIMITS.items():
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
            values.update(customer_search_keys(values["first_name"], values["last_name"], values["email"],
                                               values["phone_e164"]))
            c = Customer(customer_number=self._next_number(s), **values)
            s.add(c)
            s.flush()
            audit.record(s, actor, "customer.created", "customer", c.id, after=audit.snapshot(c, ["customer_number", *CONTACT_FIELDS]))
            return c

    def update_contact(self, actor: Actor, customer_id: int, expected_version: int, form: ContactForm) -> Customer:
        require(actor, Permission.EDIT_CONTACT)
        with self.db.write() as s:
            c = self._customer(s, customer_id, lock=True)
            if c.version != expected_version:
                raise self._stale(s, "customer", customer_id, display_name(c.first_name, c.last_name) or c.customer_number)
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
            self._delete_belongings(s, customer_id)
            s.flush()
            s.delete(c)
            audit.record(s, actor, "customer.deleted", "customer", customer_id, before=before)

    @staticmethod
    def _delete_belongings(s: Session, customer_id: int) -> None:
        """What the record alone holds goes with it; vehicles and plate reads stay, with no customer."""
        for model, column in ((CustomerRelationship, CustomerRelationship.customer_id),
                              (CustomerRelationship, CustomerRelationship.related_customer_id),
                              (Touchpoint, Touchpoint.customer_id), (AccountBenefit, AccountBenefit.customer_id),
                              (Note, Note.customer_id)):
            for row in s.exec(select(model).where(col(column) == customer_id)):
                s.delete(row)
        login = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
        if login is not None:
            for reset in s.exec(select(PasswordReset).where(PasswordReset.web_login_id == saved_id(login))):
                s.delete(reset)
            s.delete(login)
        for v in s.exec(select(Vehicle).where(Vehicle.customer_id == customer_id)):
            v.customer_id = None
        for vs in s.exec(select(VehicleSession).where(VehicleSession.customer_id == customer_id)):
            vs.customer_id = None
