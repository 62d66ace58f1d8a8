"""Who may touch an order, and in which state: the refusals of a sale, a plan change and a migration.

Concurrency: one open order per vehicle session (a partial unique index, migration 0004). Two
terminals opening the sale at the same moment: one insert wins, the other gets `OrderBusy` naming
who is selling. Each order belongs to the terminal that opened it (`owned_order`); a stale draft
left by a dead terminal is taken over after `STALE_AFTER`.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.actor import Actor
from clarity_tui.sitetime import local_time
from db.models import OPEN_ORDER_STATES, Operator, OrderProgress, OrderState, SalesOrder, VehicleSession

# A draft nobody touched for this long may be taken over by another terminal.
STALE_AFTER = dt.timedelta(minutes=15)
# The order can still be put together (plan, customer, vehicles, card, promotion).
EDITABLE = (OrderState.DRAFT, OrderState.CHECKOUT, OrderState.TERMS)
# Paid: the membership exists (pending sync while the gateway is unreachable).
PAID = (OrderState.COMPLETED, OrderState.PENDING_SYNC)


class SaleError(UserFacingError):
    """A refused step; str() says what happened and what to do. The order is unchanged."""


class OrderBusy(SaleError):
    """Another terminal is selling to this vehicle."""


class OrderTaken(SaleError):
    """This order is no longer ours (cancelled, taken over, or finished elsewhere)."""


def get_order(s: Session, order_id: int) -> SalesOrder:
    """The order, or OrderTaken when it was deleted meanwhile."""
    order = s.get(SalesOrder, order_id)
    if order is None:
        raise OrderTaken(f"Sale {order_id} no longer exists: start again from the session.")
    return order


def order_key(order: SalesOrder) -> int:
    """The id of an order read from (or flushed to) the database."""
    if order.id is None:
        raise OrderTaken("This sale was never saved: start again from the session.")
    return order.id


def owned_order(s: Session, order_id: int, terminal: str) -> SalesOrder:
    """The order, if this terminal still owns it and it was not cancelled."""
    order = get_order(s, order_id)
    if order.terminal != terminal:
        raise OrderTaken(f"This sale now belongs to terminal {order.terminal}: nothing more can be done "
                         "with it here. Go back to the board.")
    if order.state == OrderState.CANCELLED:
        raise OrderTaken("This sale was cancelled (declined, or taken over after a long pause): start again "
                         "from the session if the customer still wants a membership.")
    return order


def editable_order(s: Session, order_id: int, terminal: str) -> SalesOrder:
    """Our order, before the customer signed."""
    order = owned_order(s, order_id, terminal)
    if order.state not in EDITABLE:
        raise SaleError("The customer has already signed: this sale can no longer be changed.")
    return order


def payable_order(s: Session, order_id: int, terminal: str) -> SalesOrder:
    """The card can change before signing, and again after a decline."""
    order = owned_order(s, order_id, terminal)
    if order.state not in (*EDITABLE, OrderState.SIGNED, OrderState.PAYMENT_PENDING):
        raise SaleError("This sale is already paid.")
    if order.customer_id is None:
        raise SaleError("Choose the customer before the card.")
    return order


def same_operator(order: SalesOrder, actor: Actor) -> bool:
    """An order resumes for the operator who opened it (after an idle sign-out too), not for
    whoever signs in next at the same terminal. Orders opened without sign-in belong to the terminal."""
    return order.operator_id is None or actor.operator_id is None or order.operator_id == actor.operator_id


def open_order(s: Session, session_id: int) -> SalesOrder | None:
    """The session's one open order (the partial unique index allows no second)."""
    return s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id,
                                           col(SalesOrder.state).in_(OPEN_ORDER_STATES))).first()


def paid_not_activated(s: Session, session_id: int) -> SalesOrder | None:
    """A signed order of the session paid before a crash, whose membership has no vehicles yet."""
    return s.exec(select(SalesOrder).join(OrderProgress, col(OrderProgress.order_id) == SalesOrder.id)
                  .where(SalesOrder.session_id == session_id, col(SalesOrder.state).in_(PAID),
                         col(OrderProgress.signature_id).is_not(None), col(OrderProgress.activated_at).is_(None))
                  .order_by(col(SalesOrder.id).desc())).first()


def busy_error(s: Session, other: SalesOrder, vs: VehicleSession, terminal: str, zone: dt.tzinfo) -> OrderBusy:
    """Who holds the session's open order, in words the attendant can act on."""
    since = local_time(other.created_at, zone, "%H:%M")
    money_moving = other.state in (OrderState.PAYMENT_PENDING, OrderState.PAID)
    what = "is taking the payment for" if money_moving else "is already selling a membership to"
    if other.terminal == terminal:
        operator = s.get(Operator, other.operator_id) if other.operator_id else None
        who = operator.name if operator else "Another operator"
        return OrderBusy(f"{who} {what} {vs.plate} on this terminal (started {since}). "
                         f"Only one sale per vehicle: {who} signs back in to finish or cancel it.")
    return OrderBusy(f"Terminal {other.terminal or '?'} {what} {vs.plate} (started {since}). "
                     "Only one sale per vehicle: let them finish, or ask them to cancel theirs.")
