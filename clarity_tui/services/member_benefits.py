"""Extra benefits on a membership (seed 002: staff "manually edit a member's expiration date as well as
additional member benefits"), beside the plan's own.

They are the member's account benefits (db.models.AccountBenefit: type, description, quantity, remaining,
expiry), so the record's Account Benefits tab, the Membership tab and the session screen show the same rows;
what this module adds is granting and removing them from a membership (a manager: Permission.BENEFIT, checked
here), audited against the membership, and the one line that describes a member's live extras.

An extra added here belongs to its membership (AccountBenefit.membership_id, migration 0011): it is shown
with that membership while it is current, never with another membership of the same customer, and not at
all once its membership has ended. Rows with no membership (account benefits, and extras added before
0011) are shown with whichever membership the customer has, as before.
No Textual here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, or_, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import CustomerError, NotFound, ValidationFailed
from clarity_tui.services.customers.account_items import benefit_values
from clarity_tui.services.customers.base import saved_id
from clarity_tui.services.permissions import Permission, require
from db.engine import Database
from clarity_tui.services.membership_rules import is_current
from db.models import AccountBenefit, Membership

FIELDS = ["id", "customer_id", "membership_id", "kind", "description", "quantity", "remaining", "expires_on"]


@dataclass(frozen=True)
class ExtraBenefit:
    id: int
    kind: str
    description: str | None
    quantity: int
    remaining: int
    expires_on: dt.date | None

    @property
    def label(self) -> str:
        """'Free wash (birthday) 2 of 3 left, until 2026-12-31'."""
        what = f"{self.kind} ({self.description})" if self.description else self.kind
        count = f"{self.remaining} left" if self.remaining == self.quantity else f"{self.remaining} of {self.quantity} left"
        until = f", until {self.expires_on.isoformat()}" if self.expires_on else ""
        return f"{what} {count}{until}"


def live(benefits: Iterable[Any], today: dt.date) -> list[ExtraBenefit]:
    """The benefits that can still be used today (some left, not expired), oldest first."""
    return [ExtraBenefit(b.id, b.kind, b.description, b.quantity, b.remaining, b.expires_on) for b in benefits
            if b.remaining > 0 and (b.expires_on is None or b.expires_on >= today)]


def of_membership(benefits: Iterable[Any], membership_id: int, status: str, today: dt.date) -> list[ExtraBenefit]:
    """The live extras shown with one of the customer's memberships: its own while it is current, and the
    rows that belong to no membership (account benefits, rows from before migration 0011).

    `benefits` are the customer's AccountBenefit rows; another membership's extras are never among them."""
    own = is_current(status)
    return live([b for b in benefits
                 if b.membership_id is None or (own and b.membership_id == membership_id)], today)


def extras_line(extras: list[ExtraBenefit]) -> str:
    return "; ".join(e.label for e in extras)


class MemberBenefits:
    def __init__(self, db: Database, today: Callable[[], dt.date] | None = None) -> None:
        self.db = db
        self.today = today or dt.date.today

    def extras(self, membership_id: int | None) -> list[ExtraBenefit]:
        """The live extra benefits shown with a membership (the car's, on the session screen): see
        of_membership. None for no membership, or one that no longer exists."""
        if membership_id is None:
            return []
        with self.db.read() as s:
            m = s.get(Membership, membership_id)
            if m is None:
                return []
            rows = s.exec(select(AccountBenefit).where(
                AccountBenefit.customer_id == m.customer_id,
                or_(col(AccountBenefit.membership_id).is_(None), AccountBenefit.membership_id == m.id),
            ).order_by(col(AccountBenefit.id))).all()
            return of_membership(rows, saved_id(m), m.status, self.today())

    def _membership(self, s: Session, membership_id: int) -> Membership:
        m = s.get(Membership, membership_id)
        if m is None:
            raise NotFound("That membership no longer exists: reload the record.")
        return m

    def add(self, actor: Actor, membership_id: int, kind: str, description: str = "", quantity: str | int = 1,
            expires_on: str | dt.date | None = None) -> int:
        """Grant an extra benefit to a current membership's member. Managers (or a manager's PIN) only."""
        require(actor, Permission.BENEFIT)
        values = benefit_values(kind, description, quantity, None, expires_on)
        if values["expires_on"] is not None and values["expires_on"] < self.today():
            raise ValidationFailed({"expires_on": "The expiry date has passed: choose today or a later date."})
        with self.db.write() as s:
            m = self._membership(s, membership_id)
            if not is_current(m.status):
                raise CustomerError(f"This membership is {str(m.status).replace('_', ' ')}: extra benefits go on a "
                                    "current membership.")
            b = AccountBenefit(customer_id=m.customer_id, membership_id=m.id, **values)
            s.add(b)
            s.flush()
            audit.record(s, actor, "membership.benefit_added", "membership", membership_id,
                         after=audit.snapshot(b, FIELDS))
            return saved_id(b)

    def remove(self, actor: Actor, membership_id: int, benefit_id: int) -> None:
        require(actor, Permission.BENEFIT)
        with self.db.write() as s:
            m = self._membership(s, membership_id)
            b = s.get(AccountBenefit, benefit_id)
            if b is None or b.customer_id != m.customer_id or b.membership_id not in (None, m.id):
                raise NotFound("That benefit was already removed: reload the record.")
            before = audit.snapshot(b, FIELDS)
            s.delete(b)
            audit.record(s, actor, "membership.benefit_removed", "membership", membership_id, before=before)
