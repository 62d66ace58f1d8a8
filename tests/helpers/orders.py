"""A sales order ready for billing, as the sale flow leaves it."""

from __future__ import annotations

import uuid

from sqlmodel import select

from db.engine import Database
from db.models import Customer, Plan, Promotion, SalesOrder


def new_order(db: Database, plan: str = "BASIC", promo: str | None = None, customer_number: str = "C100000",
              kind: str = "sale") -> int:
    """A signed order for a customer and plan, with an optional promotion."""
    with db.write() as s:
        customer = s.exec(select(Customer).where(Customer.customer_number == customer_number)).one()
        plan_row = s.exec(select(Plan).where(Plan.code == plan)).one()
        promo_id = s.exec(select(Promotion.id).where(Promotion.code == promo)).one() if promo else None
        order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=kind, customer_id=customer.id,
                           plan_id=plan_row.id, promotion_id=promo_id, state="signed")
        s.add(order)
        s.flush()
        assert order.id is not None
        return order.id
