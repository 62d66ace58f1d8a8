""""Join today" (issue 18 item 4): a membership sold right after a single wash, whose first charge is
the plan price less what the wash just paid, never below zero.

The membership order points at the wash (`credit_order_id`) and carries the part of the wash's payment
it uses (`credit_cents`). A wash's payment is "held" by a live membership order: one that is neither
cancelled nor refunded in full. While it is held, that part of the wash cannot be refunded
(membership_actions.refund); refunding the membership order in full, or cancelling it before payment,
releases it.

The amounts rule lives in `first_charge`: the promotion comes off the plan price, tax is added (or is
included) on what is left, then the wash credit comes off the total, like money already paid: the
customer pays exactly the membership's total less what the wash cost them, tax and all.

Concurrency: joining and refunding lock the wash order's row (FOR UPDATE on PostgreSQL; SQLite's write
transactions are serial), so two terminals cannot both spend the same wash, nor refund what is spent.
Module-level imports stay light: billing and the order views import the rule from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.membership_rules import current_membership
from clarity_tui.services.membership_steps import refunds_in_flight
from clarity_tui.services.permissions import require
from clarity_tui.services.plan_pricing import money
from db.models import OrderKind, OrderState, Plan, SalesOrder

if TYPE_CHECKING:
    from clarity_tui.services.orders.checkout import OrderSteps
    from clarity_tui.services.orders.sale import SaleService
    from clarity_tui.services.orders.views import OrderView

# The one line checkout, the signature and the receipt show.
CREDIT_LABEL = "Today's wash credit"
# Orders that hold no credit: they were never sold.
_DEAD_STATES = (OrderState.CANCELLED, OrderState.FAILED)


class UpsellRefused(UserFacingError, ValueError):
    """"Join today" was refused; str() says why and what to do. Nothing was changed."""


def first_charge(total_cents: int, credit_cents: int) -> tuple[int, int]:
    """(due today, credit used): the credit comes off the total (after promotion and tax), never below zero."""
    used = min(max(credit_cents, 0), max(total_cents, 0))
    return total_cents - used, used


def wash_paid(s: Session, wash: SalesOrder) -> int:
    """What the wash's customer paid and still has paid: its charge less refunds, done or on their way."""
    if not wash.gateway_payment_id or wash.id is None:
        return 0
    return max(0, wash.due_today_cents - (wash.refunded_cents or 0) - refunds_in_flight(s, wash.id))


def holds_credit(order: SalesOrder) -> bool:
    """A membership order spends its credit unless it was cancelled (or failed) or refunded in full."""
    if order.state in _DEAD_STATES or not order.credit_cents:
        return False
    return not (order.gateway_payment_id and order.due_today_cents
                and (order.refunded_cents or 0) >= order.due_today_cents)


def credit_holders(s: Session, wash_order: SalesOrder, *, besides: int | None = None) -> list[SalesOrder]:
    """The live membership orders spending part of the wash's payment (other than `besides`)."""
    rows = s.exec(select(SalesOrder).where(SalesOrder.credit_order_id == wash_order.id)
                  .order_by(col(SalesOrder.id))).all()
    return [o for o in rows if o.id != besides and holds_credit(o)]


def credit_held(s: Session, wash_order: SalesOrder) -> int:
    """The part of the wash's payment spent on a live membership order (not cancelled, not fully refunded)."""
    return sum(o.credit_cents for o in credit_holders(s, wash_order))


def credit_available(s: Session, order: SalesOrder) -> int:
    """What `order`'s wash can still give it: what the wash paid, less what other live orders hold."""
    wash = s.get(SalesOrder, order.credit_order_id) if order.credit_order_id else None
    if wash is None:
        return 0
    return max(0, wash_paid(s, wash) - sum(o.credit_cents for o in credit_holders(s, wash, besides=order.id)))


def excess_note(available_cents: int, used_cents: int, plan_name: str) -> str | None:
    """The clear sentence for a wash that paid more than the first charge (None when it did not)."""
    if available_cents <= used_cents:
        return None
    return (f"The wash paid {money(available_cents)}, more than the {money(used_cents)} first charge of "
            f"{plan_name}: the first charge is $0.00 (never below zero), and the {money(available_cents - used_cents)} "
            "left stays on the wash order, to refund there if the customer asks.")


def release(s: Session, order: SalesOrder) -> None:
    """A cancelled membership order gives its wash credit back: only sold orders keep `credit_order_id`."""
    if order.credit_order_id is None:
        return
    order.credit_order_id, order.credit_cents = None, 0
    s.add(order)


def holder_label(s: Session, holder: SalesOrder) -> str:
    plan = s.get(Plan, holder.plan_id) if holder.plan_id else None
    return f"membership order #{holder.id}" + (f" ({plan.name})" if plan else "")


def _paid_wash(s: Session, wash_order_id: int, *, lock: bool = False) -> SalesOrder:
    """The wash order, if it is a paid single wash with money left on it; else UpsellRefused."""
    wash = s.get(SalesOrder, wash_order_id, with_for_update=lock)
    if wash is None or wash.kind != OrderKind.WASH:
        raise UpsellRefused(f"Order {wash_order_id} is not a single wash: \"Join today\" credits a wash the "
                            "customer has just paid for.")
    if wash.state != OrderState.COMPLETED or not wash.gateway_payment_id:
        raise UpsellRefused(f"The wash (order #{wash_order_id}) is not paid yet: take the wash's payment first, "
                            "then offer \"Join today\".")
    if wash_paid(s, wash) <= 0:
        raise UpsellRefused(f"The wash (order #{wash_order_id}) was refunded, so there is nothing to credit: "
                            "sell the membership at its full price.")
    return wash


def _check_free(s: Session, wash: SalesOrder, order_id: int | None) -> None:
    holders = credit_holders(s, wash, besides=order_id)
    if holders:
        raise UpsellRefused(f"The wash (order #{wash.id}) is already credited to {holder_label(s, holders[0])}: "
                            "a wash credits one membership only. Sell this one at its full price.")


def join_today(sale: SaleService, wash_order_id: int, *, session_id: int | None = None) -> OrderView:
    """Open (or reuse) the wash's session's membership order with the wash's payment as its credit, the
    wash's customer linked. `session_id`: the session the attendant is on (the wash must be its own).

    Raises UpsellRefused (not paid, refunded, already credited, another session's, a member already),
    or the sale's OrderBusy when another terminal is selling to the car."""
    require(sale.actor, sale.permission)
    with sale.db.read() as s:
        wash = _paid_wash(s, wash_order_id)
        if wash.session_id is None or (session_id is not None and wash.session_id != session_id):
            raise UpsellRefused(f"The wash (order #{wash_order_id}) was sold to another car's session: open that "
                                "session to offer \"Join today\", or sell this membership at its full price.")
        open_id = _open_order_id(s, wash.session_id)
        _check_free(s, wash, open_id)  # before a draft is opened for nothing
        customer_id = wash.customer_id
        if customer_id is not None and current_membership(s, customer_id) is not None:
            raise UpsellRefused("The customer is already a member: \"Join today\" sells a new membership. Change "
                                "their plan from their record instead.")
        wash_session = wash.session_id
    view = sale.open_for_session(wash_session)
    with sale.db.write() as s:
        wash = _paid_wash(s, wash_order_id, lock=True)  # joins and refunds of this wash queue up here
        if view.kind not in (OrderKind.SALE, OrderKind.PLAN_CHANGE):
            raise UpsellRefused(f"The car's order #{view.id} is still open: finish or cancel it, then offer "
                                "\"Join today\".")
        order = sale.steps.editable(s, view.id)
        if order.credit_order_id not in (None, wash.id):
            raise UpsellRefused(f"This sale already credits wash order #{order.credit_order_id}: one wash per "
                                "membership.")
        if order.kind == OrderKind.PLAN_CHANGE:
            raise UpsellRefused("The customer is already a member: \"Join today\" sells a new membership. Change "
                                "their plan from their record instead.")
        _check_free(s, wash, order.id)
        before = audit.snapshot(order, ["credit_order_id", "credit_cents"])
        order.credit_order_id = wash.id
        order.credit_cents = credit_available(s, order)
        sale.steps.touch(s, order, OrderState.DRAFT)  # the amounts change: review fixes them again
        audit.record(s, sale.actor, "order.upsell_credit", "sales_order", order.id, before=before,
                     after={"credit_order_id": wash.id, "credit_cents": order.credit_cents})
        link = customer_id if order.customer_id is None and customer_id is not None else None
        view = sale.steps.view(s, order)
    return sale.link_customer(view.id, link) if link is not None else view


def _open_order_id(s: Session, session_id: int) -> int | None:
    from clarity_tui.services.orders.guards import open_order

    order = open_order(s, session_id)
    return order.id if order is not None else None


def released(steps: OrderSteps, view: OrderView) -> OrderView:
    """After a cancel: a cancelled order's wash credit is released (nothing was sold with it)."""
    if view.credit_order_id is None or view.state != OrderState.CANCELLED:
        return view
    with steps.db.write() as s:
        order = s.get(SalesOrder, view.id)
        if order is None or order.state != OrderState.CANCELLED:
            return view
        audit.record(s, steps.actor, "order.upsell_credit_released", "sales_order", order.id,
                     before={"credit_order_id": order.credit_order_id, "credit_cents": order.credit_cents})
        release(s, order)
        return steps.view(s, order)
