"""What the single-wash screens read (issue 18): the wash order as a frozen view, how paying ended, and
whose wash the car gets (a member's visit, by the visits' own rule)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session, col, select

from clarity_tui.services import sales_tax
from clarity_tui.services.entitlement import EntitlementPolicy
from clarity_tui.services.receipts import receipt_to
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.wash_menu import MenuItem
from db.models import (
    Membership,
    OrderLine,
    OrderState,
    Plan,
    PlanWashItem,
    SalesOrder,
    VehicleSession,
    WashItem,
    WashItemKind,
)


@dataclass(frozen=True)
class WashOrderView:
    order_id: int
    state: str
    session_id: int | None
    plate: str | None
    customer_id: int | None
    member_plan: str | None  # the entitled member's plan name (their wash is included), else None
    package: MenuItem | None
    extras: tuple[MenuItem, ...]
    lines: tuple[tuple[str, int], ...]  # (label, cents), as priced when chosen
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    paid: bool
    last_error: str | None
    receipt_to: str | None
    tax_label: str = ""  # "Sales tax 8.25%" / "incl. Sales tax 8.25%" / "" (sales_tax.label)


@dataclass(frozen=True)
class WashPayResult:
    state: str
    message: str | None
    paid: bool


def member_plan(s: Session, vs: VehicleSession | None, *, now: dt.datetime, zone: dt.tzinfo,
                grace_days: int) -> tuple[Plan | None, str | None]:
    """(the plan whose wash the car gets, the visit's state) by the visits' own rule (services/visits.py):
    a member's visit, or an entitled member not yet at a lane. Anyone else (over the limit, past due,
    expired, no membership) buys a single wash: no plan."""
    from clarity_tui.services.visits import VisitState, decide

    if vs is None:
        return None, None
    decision = decide(s, vs, now=now, zone=zone, policy=EntitlementPolicy(grace_days=grace_days, zone=zone),
                      record=False)
    if decision.state in (VisitState.VISIT, VisitState.PRE_GATE) and decision.membership_id is not None:
        membership = s.get(Membership, decision.membership_id)
        if membership is not None:
            return s.get(Plan, membership.plan_id), decision.state
    return None, decision.state


def _plans_of(s: Session, item_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not item_ids:
        return out
    for item_id, code in s.exec(select(PlanWashItem.item_id, Plan.code).join(Plan, col(Plan.id) == PlanWashItem.plan_id)
                                .where(col(PlanWashItem.item_id).in_(item_ids))):
        out.setdefault(item_id, []).append(code)
    return out


def wash_order_view(s: Session, order: SalesOrder, plan: Plan | None, tax: TaxSettings | None) -> WashOrderView:
    """The order as the screens show it; `plan`: the member's plan whose wash the car gets."""
    assert order.id is not None, "an order read from the database"
    vs = s.get(VehicleSession, order.session_id) if order.session_id else None
    lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(col(OrderLine.id))).all()
    items = {i.id: i for i in s.exec(select(WashItem).where(col(WashItem.id).in_([ln.item_id for ln in lines])))}
    in_plans = _plans_of(s, [ln.item_id for ln in lines])
    chosen = [MenuItem(ln.item_id, ln.code, ln.name, ln.kind, ln.amount_cents,
                       items[ln.item_id].tunnel_code if ln.item_id in items else 0,
                       bool(items[ln.item_id].active) if ln.item_id in items else False,
                       tuple(sorted(in_plans.get(ln.item_id, ())))) for ln in lines]
    return WashOrderView(
        order_id=order.id, state=order.state, session_id=order.session_id, plate=vs.plate if vs else None,
        customer_id=order.customer_id, member_plan=plan.name if plan else None,
        package=next((c for c in chosen if c.kind == WashItemKind.PACKAGE), None),
        extras=tuple(c for c in chosen if c.kind == WashItemKind.EXTRA),
        lines=tuple((ln.name, ln.amount_cents) for ln in lines), subtotal_cents=order.subtotal_cents,
        tax_cents=order.tax_cents, total_cents=order.due_today_cents,
        paid=order.state == OrderState.COMPLETED, last_error=order.last_error, receipt_to=receipt_to(s, order),
        tax_label=sales_tax.label(tax) if order.tax_cents else "")


__all__ = ["WashOrderView", "WashPayResult", "member_plan", "wash_order_view"]
