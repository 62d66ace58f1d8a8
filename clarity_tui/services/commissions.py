"""Operators' commissions (issue 18): earned when an order completes, taken back by a refund in the window.

Earned: a membership sale ("sale"), a migration ("migration"), and an upgrade (a plan change to a higher
tier: "upgrade"; the settings' 0 means none). The operator credited is the one signed in who took the order
(`SalesOrder.operator_id`, set when the order is opened); an order nobody signed in for earns nothing.

The amount, first found wins: a manager's rate for the kind and the order's plan, a manager's rate for the
kind and every plan, then settings (`wash.commissions`: `per_plan_cents[plan code]` for a sale, else
`per_sale_cents`, `per_migration_cents`, `per_upgrade_cents`). It is fixed when earned.

Clawback: a refund of the order within `clawback_days` of its completion reverses the whole commission, a
partial refund too (the common car-wash payroll rule: the sale did not stick). One negative row.

Both hooks run in the caller's transaction (activation, the plan change, the refund's outbox step) and are
replay-safe: the unique (order, entry) constraint lets one row of each kind exist, so a second process
that inserts the same row at the same moment rolls back its savepoint and reads the winner's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plan_pricing import direction, money
from clarity_tui.sitetime import stored_utc
from db.models import (
    Commission,
    CommissionEntry,
    CommissionKind,
    CommissionRate,
    Operator,
    OrderKind,
    OrderState,
    Plan,
    SalesOrder,
    utcnow,
)

# An order that is paid (the gateway confirmed it, or it will replay it): what the reports count as sold.
PAID = (OrderState.COMPLETED, OrderState.PENDING_SYNC)
# The settings' bound on any one commission (config.CommissionConfig).
MAX_RATE_CENTS = 100_000
SYSTEM = Actor.system("commissions")


class CommissionSettings(Protocol):
    """The site's commission settings (config.CommissionConfig), read only here."""

    @property
    def per_sale_cents(self) -> int: ...

    @property
    def per_migration_cents(self) -> int: ...

    @property
    def per_upgrade_cents(self) -> int: ...

    @property
    def per_plan_cents(self) -> Mapping[str, int]: ...

    @property
    def clawback_days(self) -> int: ...


class CommissionRefused(UserFacingError, ValueError):
    """A manager's rate that cannot be set; str() says why and what to do."""


def policy_or_default(policy: CommissionSettings | None) -> CommissionSettings:
    """The settings given, or the defaults a site without a `[wash.commissions]` section runs on."""
    if policy is not None:
        return policy
    from clarity_tui.config import CommissionConfig

    return CommissionConfig()


# --- earning -------------------------------------------------------------------------------------------


def commission_kind(s: Session, order: SalesOrder) -> str | None:
    """What the order earns as: "sale", "migration", "upgrade" (a plan change to a higher tier), or None."""
    if order.kind == OrderKind.SALE:
        return CommissionKind.SALE
    if order.kind == OrderKind.MIGRATION:
        return CommissionKind.MIGRATION
    if order.kind == OrderKind.PLAN_CHANGE and order.from_plan_id and order.plan_id:
        old, new = s.get(Plan, order.from_plan_id), s.get(Plan, order.plan_id)
        if old is not None and new is not None and direction(old, new) == "upgrade":
            return CommissionKind.UPGRADE
    return None


def rate_for(s: Session, kind: str, plan: Plan | None, policy: CommissionSettings | None) -> int:
    """The commission for `kind` on `plan`: the manager's rate for the plan, for every plan, then settings."""
    rates = {r.plan_id: r.amount_cents for r in s.exec(select(CommissionRate).where(CommissionRate.kind == kind))}
    if plan is not None and plan.id in rates:
        return rates[plan.id]
    if None in rates:
        return rates[None]
    p = policy_or_default(policy)
    if kind == CommissionKind.SALE:
        return int(p.per_plan_cents.get(plan.code, p.per_sale_cents) if plan else p.per_sale_cents)
    return p.per_migration_cents if kind == CommissionKind.MIGRATION else p.per_upgrade_cents


def earn(s: Session, order: SalesOrder, policy: CommissionSettings | None) -> Commission | None:
    """The order's commission, credited now if it is paid and earns one (in the caller's transaction).
    Idempotent: the earned row already there is returned as it is."""
    if order.id is None or order.state not in PAID or order.operator_id is None:
        return None
    found = _entry(s, order.id, CommissionEntry.EARNED)
    if found is not None:
        return found
    kind = commission_kind(s, order)
    if kind is None:
        return None
    plan = s.get(Plan, order.plan_id) if order.plan_id else None
    amount = rate_for(s, kind, plan, policy)
    if amount <= 0:
        return None  # the site pays nothing for this kind (e.g. upgrades at 0)
    row = Commission(order_id=order.id, operator_id=order.operator_id, kind=kind, entry=CommissionEntry.EARNED,
                     amount_cents=amount, at=utcnow())
    return _insert(s, row, "commission.earned", {"plan": plan.code if plan else None})


def claw_back(s: Session, order_id: int, clawback_days: int | None,
              now: dt.datetime | None = None) -> Commission | None:
    """A refund of the order: its commission is reversed in full when the refund comes within
    `clawback_days` of the order's completion (None: whenever it comes), in the caller's transaction.
    Idempotent."""
    earned = _entry(s, order_id, CommissionEntry.EARNED)
    if earned is None:
        return None
    found = _entry(s, order_id, CommissionEntry.CLAWBACK)
    if found is not None:
        return found
    order = s.get(SalesOrder, order_id)
    completed = stored_utc(order.completed_at if order is not None and order.completed_at else earned.at)
    now = now or utcnow()
    if clawback_days is not None and now - completed > dt.timedelta(days=clawback_days):
        return None  # outside the window: the operator keeps it
    row = Commission(order_id=order_id, operator_id=earned.operator_id, kind=earned.kind,
                     entry=CommissionEntry.CLAWBACK, amount_cents=-earned.amount_cents, at=now)
    return _insert(s, row, "commission.clawed_back", {"clawback_days": clawback_days})


def reverse(s: Session, order_id: int) -> Commission | None:
    """An order cancelled after it earned (a pending sync the gateway then refused for good): the
    commission is reversed whatever the window, since the sale never happened."""
    return claw_back(s, order_id, None)


def _entry(s: Session, order_id: int, entry: str) -> Commission | None:
    return s.exec(select(Commission).where(Commission.order_id == order_id, Commission.entry == entry)).first()


def _insert(s: Session, row: Commission, action: str, extra: dict[str, Any]) -> Commission:
    try:
        with s.begin_nested():
            s.add(row)
    except IntegrityError:  # another process wrote the order's row first: theirs stands
        winner = _entry(s, row.order_id, row.entry)
        assert winner is not None  # the constraint that refused ours is that row
        return winner
    audit.record(s, SYSTEM, action, "sales_order", row.order_id,
                 after={"operator_id": row.operator_id, "kind": row.kind, "amount_cents": row.amount_cents, **extra})
    return row


# --- what the reports read ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorCommission:
    """One operator's commissions in a window: earned, clawed back (a positive amount), net."""

    operator: str
    earned_count: int
    earned_cents: int
    clawback_count: int
    clawback_cents: int

    @property
    def net_cents(self) -> int:
        return self.earned_cents - self.clawback_cents


def operator_commissions(s: Session, start: dt.datetime, end: dt.datetime,
                         operator_id: int | None = None) -> list[OperatorCommission]:
    """Commission rows dated in [start, end), per operator (a clawback counts when the refund came)."""
    q = (select(Operator.name, Commission.entry, func.count(), func.sum(Commission.amount_cents))
         .join(Operator, col(Operator.id) == Commission.operator_id)
         .where(Commission.at >= start, Commission.at < end)
         .group_by(Operator.name, Commission.entry))
    if operator_id is not None:
        q = q.where(Commission.operator_id == operator_id)
    totals: dict[str, dict[str, tuple[int, int]]] = {}
    for name, entry, n, amount in s.exec(q):
        totals.setdefault(name, {})[entry] = (int(n), abs(int(amount or 0)))
    return [OperatorCommission(name, *t.get(CommissionEntry.EARNED, (0, 0)), *t.get(CommissionEntry.CLAWBACK, (0, 0)))
            for name, t in sorted(totals.items())]


# --- a manager's rates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateView:
    kind: str
    plan_code: str | None  # None: every plan
    amount_cents: int
    source: str  # "manager" (a row) or "settings"
    set_by: str | None = None


class CommissionRates:
    """The rates a manager sets (they win over settings), and the table in force."""

    def __init__(self, db: Any, policy: CommissionSettings | None = None) -> None:
        self.db = db
        self.policy = policy

    def list(self) -> list[RateView]:
        """Every rate in force: the manager's rows, then what settings give where no row does."""
        p = policy_or_default(self.policy)
        with self.db.read() as s:
            codes = {plan.id: plan.code for plan in s.exec(select(Plan))}
            rows = s.exec(select(CommissionRate).order_by(col(CommissionRate.kind), col(CommissionRate.id))).all()
        out = [RateView(r.kind, codes.get(r.plan_id) if r.plan_id else None, r.amount_cents, "manager", r.set_by)
               for r in rows]
        every_plan = {r.kind for r in rows if r.plan_id is None}
        by_plan = {(r.kind, codes.get(r.plan_id)) for r in rows if r.plan_id is not None}
        defaults = {CommissionKind.SALE: p.per_sale_cents, CommissionKind.MIGRATION: p.per_migration_cents,
                    CommissionKind.UPGRADE: p.per_upgrade_cents}
        for kind, cents in defaults.items():
            if kind not in every_plan:
                out.append(RateView(kind, None, cents, "settings"))
        if CommissionKind.SALE not in every_plan:  # a manager's every-plan rate wins over settings' per plan
            out.extend(RateView(CommissionKind.SALE, code, cents, "settings")
                       for code, cents in sorted(p.per_plan_cents.items())
                       if (CommissionKind.SALE, code) not in by_plan)
        return out

    def set(self, kind: str, amount_cents: int, plan_code: str | None = None, *, actor: Actor) -> RateView:
        """A manager's rate for `kind` on one plan (or every plan): it wins over settings. Audited."""
        require(actor, Permission.OPERATORS)
        kind = _kind(kind)
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or not 0 <= amount_cents <= MAX_RATE_CENTS:
            raise CommissionRefused(f"A commission is a whole number from 0 to {MAX_RATE_CENTS} cents "
                                    f"({money(MAX_RATE_CENTS)}): e.g. 500 for $5.00.")
        with self.db.write() as s:
            plan = _plan(s, plan_code)
            plan_id = plan.id if plan else None
            row = s.exec(select(CommissionRate).where(CommissionRate.kind == kind,
                                                      CommissionRate.plan_id == plan_id)).first()
            before = audit.snapshot(row, ["amount_cents", "set_by"]) if row else None
            if row is None:
                row = CommissionRate(kind=kind, plan_id=plan_id, amount_cents=amount_cents)
                try:
                    with s.begin_nested():
                        s.add(row)
                except IntegrityError:  # another manager set it this instant: ours is the later word
                    row = s.exec(select(CommissionRate).where(CommissionRate.kind == kind,
                                                              CommissionRate.plan_id == plan_id)).one()
            row.amount_cents, row.set_by, row.updated_at = amount_cents, actor.name[:120], utcnow()
            s.add(row)
            s.flush()
            audit.record(s, actor, "commission_rate.set", "commission_rate", row.id, before=before,
                         after={"kind": kind, "plan": plan.code if plan else None, "amount_cents": amount_cents})
            return RateView(kind, plan.code if plan else None, amount_cents, "manager", row.set_by)

    def clear(self, kind: str, plan_code: str | None = None, *, actor: Actor) -> bool:
        """Remove a manager's rate (settings apply again). False when there was none. Audited."""
        require(actor, Permission.OPERATORS)
        kind = _kind(kind)
        with self.db.write() as s:
            plan = _plan(s, plan_code)
            row = s.exec(select(CommissionRate).where(CommissionRate.kind == kind,
                                                      CommissionRate.plan_id == (plan.id if plan else None))).first()
            if row is None:
                return False
            audit.record(s, actor, "commission_rate.cleared", "commission_rate", row.id,
                         before={"kind": kind, "plan": plan.code if plan else None, "amount_cents": row.amount_cents})
            s.delete(row)
            return True


def _kind(kind: str) -> str:
    value = kind.strip().lower()
    if value not in set(CommissionKind):
        raise CommissionRefused(f"There is no commission kind {kind!r}: choose sale, migration or upgrade.")
    return value


def _plan(s: Session, plan_code: str | None) -> Plan | None:
    if plan_code is None or not plan_code.strip():
        return None
    plan = s.exec(select(Plan).where(Plan.code == plan_code.strip().upper())).first()
    if plan is None:
        codes = ", ".join(s.exec(select(Plan.code).order_by(col(Plan.tier), col(Plan.code))).all())
        raise CommissionRefused(f"There is no plan {plan_code.strip().upper()!r}: choose one of {codes or 'the plans'}.")
    return plan
