"""Who the legacy member is: the candidates a plate or a phone finds, and the "already migrated" refusal."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.services import audit
from clarity_tui.services.migration_guard import MigrationError, last_billed, status_words
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.sitetime import local_time
from db.models import Customer, LegacyMember, LegacyMemberPlate, OrderKind, OrderState, Plan, SalesOrder, VehicleSession

MAX_CANDIDATES = 8
MATCH_LABELS = {1.0: "plate matches", 0.9: "plate look-alike (camera misread)", 0.7: "plate one character off"}
_PHONEISH = re.compile(r"^[\d\s().+\-]{7,}$")


class AlreadyMigrated(MigrationError):
    """The legacy member was migrated before (here or on another terminal)."""


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


def looks_like_phone(text: str) -> bool:
    """What the attendant typed is a phone number (7 digits or more), not a plate."""
    return bool(_PHONEISH.match(text)) and sum(c.isdigit() for c in text) >= 7


def phone_hint(phone: str | None) -> str:
    return f"•••-•••-{phone[-4:]}" if phone else "no phone"


def migrated_message(lm: LegacyMember, customer_number: str | None = None, zone: dt.tzinfo = dt.UTC) -> str:
    when = local_time(lm.migrated_at, zone) if lm.migrated_at else "?"
    record = f" Open their customer record #{customer_number} instead." if customer_number else ""
    return (f"{lm.first_name} {lm.last_name} (legacy {lm.legacy_id}) was already migrated by "
            f"{lm.migrated_by or 'someone'} on terminal {lm.migrated_terminal or '?'} at {when}: a member is "
            f"migrated only once.{record}")


def customer_number(s: Session, customer_id: int | None) -> str | None:
    c = s.get(Customer, customer_id) if customer_id else None
    return c.customer_number if c else None


def already_migrated(s: Session, lm: LegacyMember, zone: dt.tzinfo) -> AlreadyMigrated:
    return AlreadyMigrated(migrated_message(lm, customer_number(s, lm.migrated_customer_id), zone))


def legacy_of(s: Session, order: SalesOrder) -> LegacyMember:
    """The legacy member a migration order migrates."""
    if order.kind != OrderKind.MIGRATION or order.legacy_member_id is None:
        raise MigrationError("This order is not a migration: start again from the session.")
    lm = s.get(LegacyMember, order.legacy_member_id)
    if lm is None:
        raise MigrationError("The legacy member of this migration no longer exists.")
    return lm


def legacy_candidates(s: Session, scores: dict[int, float], limit: int, label: Callable[[float], str],
                      zone: dt.tzinfo) -> list[LegacyCandidate]:
    """The scored legacy members as the match screen lists them: unmigrated first, then the best match."""
    if not scores:
        return []
    members = s.exec(select(LegacyMember).where(col(LegacyMember.id).in_(list(scores)))).all()
    plates: dict[int, list[str]] = {}
    for p in s.exec(select(LegacyMemberPlate).where(col(LegacyMemberPlate.legacy_member_id).in_(list(scores)))
                    .order_by(col(LegacyMemberPlate.id))):
        plates.setdefault(p.legacy_member_id, []).append(p.plate_raw)
    plans = {p.id: p for p in s.exec(select(Plan))}
    numbers: dict[int | None, str] = {}
    migrated_customers = [m.migrated_customer_id for m in members if m.migrated_customer_id]
    if migrated_customers:
        numbers = {c.id: c.customer_number
                   for c in s.exec(select(Customer).where(col(Customer.id).in_(migrated_customers)))}
    out = []
    for m in members:
        if m.id is None:
            continue
        plan = plans.get(m.plan_id) if m.plan_id else None
        out.append(LegacyCandidate(
            id=m.id, source_system=m.source_system, legacy_id=m.legacy_id,
            name=f"{m.first_name} {m.last_name}".strip(), plan_name=m.plan_name,
            plan_code=plan.code if plan else None, vehicle=m.vehicle_desc, plates=tuple(plates.get(m.id, [])),
            phone_hint=phone_hint(m.phone_e164), email=m.email, next_bill_on=m.next_bill_on, status=m.status,
            score=scores[m.id], match=label(scores[m.id]), last_billed_on=last_billed(m.raw),
            migrated=migrated_message(m, numbers.get(m.migrated_customer_id), zone) if m.migrated_at else None))
    # Unmigrated first, then the best match; ties by name so the order is stable.
    out.sort(key=lambda c: (c.migrated is not None, -c.score, c.name.casefold(), c.legacy_id))
    return out[:limit]


def make_migration_order(s: Session, steps: OrderSteps, order: SalesOrder, legacy_member_id: int, session_id: int,
                         approval: dict[str, Any] | None) -> None:
    """"That's Me": the session's draft becomes the migration of the legacy member, on its mapped plan."""
    lm = s.get(LegacyMember, legacy_member_id)
    if lm is None:
        raise MigrationError("That legacy member no longer exists: search again.")
    before = audit.snapshot(order, ["kind", "customer_id", "plan_id", "legacy_member_id"])
    order.kind, order.legacy_member_id, order.plan_id = OrderKind.MIGRATION, lm.id, lm.plan_id
    order.customer_id, order.vehicle_ids, order.payment_method_id = None, [], None
    order.promotion_id, order.membership_id, order.next_billing_on = None, None, None
    steps.touch(s, order, OrderState.DRAFT)
    vs = s.get(VehicleSession, session_id)
    if vs is not None and vs.legacy_member_id != lm.id:
        # Matched by a typed phone or a misread plate: the bubble shows LEGACY too.
        vs.legacy_member_id, vs.version = lm.id, vs.version + 1
        s.add(vs)
    audit.record(s, steps.actor, "migration.matched", "sales_order", order.id, before=before,
                 after={"legacy_member_id": lm.id, "legacy_id": lm.legacy_id, "plan_id": lm.plan_id})
    if approval:
        audit.record(s, steps.actor, "migration.inactive_approved", "sales_order", order.id, after=approval)
