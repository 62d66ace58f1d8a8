"""What follows a single wash's payment, in the payment's own transaction (issue 18).

The outbox's `card_present.wash` row records the payment and calls `on_wash_paid` in the same
transaction, so a wash that was paid is always a completed order with its car waiting for the tunnel,
whoever replays the row (the lane, the timer, a restart after a crash).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from db.models import (
    DispatchStatus,
    Lane,
    OrderLine,
    OrderState,
    SalesOrder,
    VehicleSession,
    Wash,
    WashItemKind,
    WashKind,
    utcnow,
)


def on_wash_paid(s: Session, order: SalesOrder) -> Wash | None:
    """The order is paid: complete it, and put its car in the tunnel queue (a member buying extras adds
    them to the visit already recorded for the session). Idempotent: a replay finds it done."""
    if order.state != OrderState.COMPLETED:
        order.state = OrderState.COMPLETED
        order.completed_at = order.updated_at = utcnow()
        order.version += 1
        s.add(order)
        audit.record(s, Actor.system("outbox"), "wash.paid", "sales_order", order.id,
                     after={"amount_cents": order.due_today_cents, "payment_id": order.gateway_payment_id})
    if order.session_id is None:
        return None
    lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(col(OrderLine.id))).all()
    package = next((line.code for line in lines if line.kind == WashItemKind.PACKAGE), None)
    extras = [line.code for line in lines if line.kind == WashItemKind.EXTRA]
    wash = s.exec(select(Wash).where(Wash.session_id == order.session_id)).first()
    if wash is not None:
        if wash.order_id != order.id:  # a member's visit: the extras they paid for go with it
            wash.order_id = order.id
            wash.extras = sorted({*(wash.extras or []), *extras})
            wash.package_code = package or wash.package_code
            s.add(wash)
        return wash
    session = s.get(VehicleSession, order.session_id)
    if session is None or session.id is None:
        return None
    lane = s.get(Lane, session.lane_id)
    wash = Wash(session_id=session.id, kind=WashKind.RETAIL, plate=session.plate, vehicle_id=session.vehicle_id,
                customer_id=order.customer_id or session.customer_id, order_id=order.id,
                site_id=lane.site_id if lane else None, lane_id=session.lane_id, package_code=package,
                extras=extras, dispatch_status=DispatchStatus.WAITING)
    try:
        with s.begin_nested():
            s.add(wash)
    except IntegrityError:  # another process recorded the session's wash first: use it
        wash = s.exec(select(Wash).where(Wash.session_id == order.session_id)).one()
    return wash
