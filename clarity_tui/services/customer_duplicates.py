"""One person, one customer record (issue 14 item 4): a new customer whose phone or email is already on
file is offered the existing record instead of becoming a second one.

    find_duplicate     the customer who already has this phone (E.164) or email (case-insensitive)
    DuplicateCustomer  what CustomerService.create_customer raises (unless told duplicate_ok): the screens
                       offer "Sofia Evans already has this phone number. Use that customer / Go back"
    create_or_reuse    what the sale and the migration call: a retry after a failed or abandoned step
                       finds the customer the previous attempt created (the migration by its legacy
                       member, the sale by the same name, phone and email on a record with no
                       membership) and reuses it instead of creating a duplicate

Values are compared normalised (phonenumbers / email-validator, as the record stores them), through the
record's own search keys (phone_rev, email_lower), which are indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, or_, select

from clarity_tui.services import audit
from clarity_tui.services.customer_input import CustomerError
from clarity_tui.services.customers.base import saved_id
from clarity_tui.services.identity import display_name, fold, phone_reversed_digits
from db.models import Customer, Membership, OrderKind, OrderState, SalesOrder

if TYPE_CHECKING:
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.customers import ContactForm, CustomerService


@dataclass(frozen=True)
class Duplicate:
    customer_id: int
    customer_number: str
    name: str
    fields: tuple[str, ...]  # "phone", "email": what the new details share with this record
    same_name: bool
    has_membership: bool
    on_open_order: bool = False  # another sale or migration (maybe on another terminal) is using them

    @property
    def what(self) -> str:
        words = {"phone": "phone number", "email": "email address"}
        return " and ".join(words[f] for f in self.fields)

    @property
    def message(self) -> str:
        return f"{self.name or 'Customer ' + self.customer_number} already has this {self.what}."

    @property
    def reusable(self) -> bool:
        """The same person on a record with nothing on it yet, and no other order using it: what a failed or
        abandoned attempt leaves."""
        return self.same_name and not self.has_membership and not self.on_open_order


class DuplicateCustomer(CustomerError):
    """The phone or email belongs to an existing customer; nothing was created."""

    def __init__(self, duplicate: Duplicate) -> None:
        self.duplicate = duplicate
        super().__init__(f"{duplicate.message} Use that customer, or go back and check the details.")


def find_duplicate(s: Session, phone_e164: str | None, email: str | None, first_name: str = "",
                   last_name: str = "", *, exclude_id: int | None = None) -> Duplicate | None:
    """The existing customer with this phone or email (the one sharing both first, then the oldest)."""
    email_lower = email.lower() if email else None
    phone_rev = phone_reversed_digits(phone_e164)
    probes = []
    if phone_e164 and phone_rev:
        probes.append(col(Customer.phone_rev) == phone_rev)
    if email_lower:
        probes.append(col(Customer.email_lower) == email_lower)
    if not probes:
        return None
    query = select(Customer).where(or_(*probes))
    if exclude_id is not None:
        query = query.where(col(Customer.id) != exclude_id)
    best: tuple[tuple[int, int], Duplicate] | None = None
    for c in s.exec(query.order_by(col(Customer.id)).limit(50)):
        fields = tuple(f for f, same in (("phone", bool(phone_e164) and c.phone_e164 == phone_e164),
                                         ("email", bool(email_lower) and (c.email or "").lower() == email_lower))
                       if same)
        if not fields:
            continue
        same_name = (fold(c.first_name), fold(c.last_name)) == (fold(first_name), fold(last_name))
        cid = saved_id(c)
        dup = Duplicate(cid, c.customer_number, display_name(c.first_name, c.last_name), fields,
                        same_name, _has_membership(s, cid), _on_open_order(s, cid))
        rank = (-len(fields), -int(same_name))
        if best is None or rank < best[0]:
            best = (rank, dup)
    return best[1] if best else None


def _has_membership(s: Session, customer_id: int) -> bool:
    return s.exec(select(Membership.id).where(Membership.customer_id == customer_id)).first() is not None


def _on_open_order(s: Session, customer_id: int) -> bool:
    return s.exec(select(SalesOrder.id).where(SalesOrder.customer_id == customer_id,
                                              SalesOrder.state != OrderState.CANCELLED)).first() is not None


def refuse_duplicate(s: Session, values: dict[str, Any]) -> None:
    """CustomerService.create_customer's check, on the validated (normalised) values."""
    dup = find_duplicate(s, values.get("phone_e164"), values.get("email"), values.get("first_name") or "",
                         values.get("last_name") or "")
    if dup is not None:
        raise DuplicateCustomer(dup)


def previous_migration_customer(s: Session, legacy_member_id: int) -> Customer | None:
    """The customer an earlier, abandoned migration of this legacy member created (its order cancelled),
    if they have no membership and no other order in progress (another terminal's migration keeps its
    own customer): the retry continues with them."""
    rows = s.exec(select(SalesOrder.customer_id).where(
        SalesOrder.kind == OrderKind.MIGRATION, SalesOrder.legacy_member_id == legacy_member_id,
        SalesOrder.state == OrderState.CANCELLED, col(SalesOrder.customer_id).is_not(None))
        .order_by(col(SalesOrder.id).desc())).all()
    for customer_id in dict.fromkeys(r for r in rows if r is not None):
        if not _has_membership(s, customer_id) and not _on_open_order(s, customer_id):
            found = s.get(Customer, customer_id)
            if found is not None:
                return found
    return None


def create_or_reuse(customers: CustomerService, actor: Actor, form: ContactForm, *,
                    legacy_member_id: int | None = None, order_id: int | None = None) -> Customer:
    """A new customer, or the one an earlier attempt created (see the module docstring). The details
    typed now update the reused record. Raises DuplicateCustomer when the phone or email belongs to
    somebody else (the screen offers that customer), ValidationFailed per field."""
    db = customers.db
    reused: Customer | None = None
    why = ""
    if legacy_member_id is not None:
        with db.read() as s:
            reused = previous_migration_customer(s, legacy_member_id)
            why = "an earlier migration of this legacy member"
    if reused is None:
        try:
            return customers.create_customer(actor, form)
        except DuplicateCustomer as exc:
            if not exc.duplicate.reusable:
                raise
            with db.read() as s:
                reused = s.get(Customer, exc.duplicate.customer_id)
            why = f"same name and {exc.duplicate.what}, no membership yet"
            if reused is None:
                raise
    customer = customers.update_contact(actor, saved_id(reused), reused.version, form)
    with db.write() as s:
        audit.record(s, actor, "customer.reused", "customer", customer.id,
                     after={"customer_number": customer.customer_number, "why": why, "order_id": order_id,
                            "legacy_member_id": legacy_member_id})
    return customer


__all__ = ["Duplicate", "DuplicateCustomer", "create_or_reuse", "find_duplicate", "previous_migration_customer",
           "refuse_duplicate"]
