"""One current membership per car: vehicle claims.

An order that reaches its charge step claims its vehicles in the same transaction that records
the charge row (`BillingService._start`). The claim's primary key is the vehicle, so a second
order cannot pass it on any database: on SQLite the second writer waits for the first
(`BEGIN IMMEDIATE`) and then sees its claim; on PostgreSQL its INSERT waits on the first's row
and then fails on the key. The claim stays with the membership the order made, and is released
when the order is cancelled or fails, or when that membership ends.
"""

from __future__ import annotations

from sqlmodel import Session, select

from clarity_tui.payments.errors import PaymentError
from clarity_tui.services.identity import display_name
from clarity_tui.services.membership_rules import CURRENT_STATUSES
from db.models import (
    OPEN_ORDER_STATES,
    Customer,
    Membership,
    MembershipVehicle,
    Operator,
    OrderState,
    Plan,
    SalesOrder,
    Vehicle,
    VehicleClaim,
)

# An order still holds its claim in these states (money may be moving, or it was paid).
_HOLDING_ORDER_STATES = (*OPEN_ORDER_STATES, OrderState.PENDING_SYNC, OrderState.COMPLETED)


class VehicleTaken(PaymentError):
    """Another order or membership holds the car: nothing was charged."""

    code = "vehicle_taken"


def holder_label(s: Session, order: SalesOrder) -> str:
    """"Lane 1 (Alex @ lane-1)": who is selling, as another terminal's attendant reads it."""
    operator = s.get(Operator, order.operator_id) if order.operator_id else None
    who = operator.name.split()[0] if operator else "someone"
    lane = None
    if order.lane_id:
        from db.models import Lane

        lane_row = s.get(Lane, order.lane_id)
        lane = lane_row.name if lane_row else None
    return f"{lane or 'Another terminal'} ({who} @ {order.terminal or '?'})"


def _still_held(s: Session, claim: VehicleClaim) -> bool:
    """A member's car (on a current membership), or a car an unfinished or paid order holds."""
    m = s.get(Membership, claim.membership_id) if claim.membership_id else None
    if m is not None and m.status not in CURRENT_STATUSES:
        return False
    if m is not None and m.id is not None and _covers(s, m.id, claim.vehicle_id):
        return True
    order = s.get(SalesOrder, claim.order_id) if claim.order_id else None
    return order is not None and order.state in _HOLDING_ORDER_STATES


def _covers(s: Session, membership_id: int, vehicle_id: int) -> bool:
    return s.get(MembershipVehicle, (membership_id, vehicle_id)) is not None


def _refusal(s: Session, claim: VehicleClaim, vehicle: Vehicle | None) -> VehicleTaken:
    plate = vehicle.plate if vehicle is not None else "This car"
    m = s.get(Membership, claim.membership_id) if claim.membership_id else None
    order = s.get(SalesOrder, claim.order_id) if claim.order_id else None
    if order is not None and order.state in OPEN_ORDER_STATES:
        return VehicleTaken(f"{claim.holder or holder_label(s, order)} is selling a membership to {plate}. "
                            "Nothing was charged here: let them finish, or ask them to cancel theirs.")
    if m is not None:
        c = s.get(Customer, m.customer_id)
        plan = s.get(Plan, m.plan_id)
        name = display_name(c.first_name, c.last_name) if c else "another customer"
        return VehicleTaken(f"{plate} is already on {name}'s {plan.name if plan else ''} membership. "
                            "Nothing was charged: open that customer's record to change it.")
    return VehicleTaken(f"{plate} is held by another sale. Nothing was charged: try again in a moment.")


def claim_vehicles(s: Session, order: SalesOrder, holder: str) -> None:
    """Claim the order's vehicles for it (and its membership), in the caller's transaction.

    Raises VehicleTaken naming who holds a car. Claims left by an order or membership that no
    longer holds anything are taken over."""
    # In one order on every terminal, so two orders with the same cars never wait on each other.
    for vehicle_id in sorted(set(order.vehicle_ids or [])):
        claim = s.get(VehicleClaim, vehicle_id, with_for_update=True)
        if claim is not None:
            ours = claim.order_id == order.id or (
                claim.membership_id is not None and claim.membership_id == order.membership_id)
            if not ours and _still_held(s, claim):
                raise _refusal(s, claim, s.get(Vehicle, vehicle_id))
            claim.order_id, claim.membership_id = order.id, order.membership_id
            claim.terminal, claim.holder = order.terminal, holder
            s.add(claim)
            continue
        s.add(VehicleClaim(vehicle_id=vehicle_id, order_id=order.id, membership_id=order.membership_id,
                           terminal=order.terminal, holder=holder))
    # The INSERT meets a concurrent one here, inside the caller's try (PostgreSQL: unique violation).
    s.flush()


def refusal_after_conflict(s: Session, order_id: int) -> VehicleTaken:
    """The message for a claim lost to a concurrent INSERT (read after the rollback)."""
    order = s.get(SalesOrder, order_id)
    for vehicle_id in (order.vehicle_ids or []) if order is not None else []:
        claim = s.get(VehicleClaim, vehicle_id)
        if claim is not None and claim.order_id != order_id:
            return _refusal(s, claim, s.get(Vehicle, vehicle_id))
    return VehicleTaken("Another terminal claimed this car at the same moment. Nothing was charged: try again.")


def release_order(s: Session, order_id: int) -> None:
    """The order was cancelled or failed: its cars are free, unless a member already drives them."""
    for claim in s.exec(select(VehicleClaim).where(VehicleClaim.order_id == order_id)).all():
        if claim.membership_id is None or not _covers(s, claim.membership_id, claim.vehicle_id):
            s.delete(claim)
