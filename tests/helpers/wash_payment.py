"""Single-wash orders waiting to be paid on the reader, made straight in the database (the wash sale's
service is another module's; these tests are about the payment): a car's session at a lane, a package
line, the order in payment_pending with what is due."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select

from db.engine import Database
from db.models import (
    Customer,
    Lane,
    OrderKind,
    OrderLine,
    OrderState,
    Outbox,
    SalesOrder,
    SimGatewayObject,
    VehicleSession,
    Wash,
    WashItem,
    WashItemKind,
)


def wash_order(db: Database, *, due: int = 1500, plate: str = "WASH-1", customer: bool = False,
               gateway_customer: str | None = None) -> int:
    """A single-wash order for a car at the first lane, in payment_pending with `due` cents to pay.
    `customer`: the order has a customer (with `gateway_customer` as its id at the gateway, if given)."""
    with db.write() as s:
        lane = s.exec(select(Lane).order_by(col(Lane.id))).first()
        assert lane is not None and lane.id is not None  # open_database made the site's lanes
        item = s.exec(select(WashItem).where(WashItem.code == "BASIC")).first()
        if item is None:
            item = WashItem(code="BASIC", name="Basic", kind=WashItemKind.PACKAGE, price_cents=due, tunnel_code=1)
            s.add(item)
        cust = None
        if customer:
            cust = Customer(customer_number=f"W{uuid.uuid4().hex[:8]}", first_name="Wash", last_name="Customer",
                            gateway_customer_id=gateway_customer)
            s.add(cust)
        s.flush()
        session = VehicleSession(lane_id=lane.id, plate=plate, plate_normalized=plate.replace("-", ""),
                                 customer_id=cust.id if cust else None)
        s.add(session)
        s.flush()
        order = SalesOrder(idempotency_key=f"wash-{uuid.uuid4().hex}", kind=OrderKind.WASH,
                           state=OrderState.PAYMENT_PENDING, session_id=session.id,
                           customer_id=cust.id if cust else None, lane_id=lane.id, subtotal_cents=due,
                           due_today_cents=due)
        s.add(order)
        s.flush()
        assert order.id is not None and item.id is not None
        s.add(OrderLine(order_id=order.id, item_id=item.id, kind=WashItemKind.PACKAGE, code="BASIC", name="Basic",
                        amount_cents=due))
        return order.id


def order_of(db: Database, order_id: int) -> SalesOrder:
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        assert order is not None
        return order


def rows_of(db: Database, order_id: int) -> list[Outbox]:
    with db.read() as s:
        return list(s.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(col(Outbox.id))).all())


def washes_of(db: Database, order_id: int) -> list[Wash]:
    with db.read() as s:
        return list(s.exec(select(Wash).where(Wash.order_id == order_id)).all())


def sim_payment_intents(db: Database) -> list[dict[str, Any]]:
    """Every PaymentIntent the simulated gateway holds (its store is in the site's database)."""
    with db.read() as s:
        return [dict(r.data or {}) | {"id": r.id} for r in s.exec(
            select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")
            .order_by(col(SimGatewayObject.created_at))).all()]
