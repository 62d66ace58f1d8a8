"""Customers a test starts from: names and plates that trip up search, and a membership billed for real."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from clarity_tui.payments.base import CustomerInfo, PlanSpec
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.plates import normalize_plate
from db.engine import Database
from db.models import Customer, Membership, Vehicle
from tests.helpers.actors import MANAGER

# (first, last, phone, email, plate)
TRICKY = [
    ("Seán", "O'Brien", "+44 20 7946 0958", "sean.obrien@example.ie", "AB12 CDE"),
    ("Zoë", "Quixote-Laurent", "+33 1 42 68 53 00", "zoe@example.fr", "FR-123-XY"),
    ("Mary Ann", "Smythe-Jones", "(512) 555-0142", "MaryAnn@Example.com", "KLM 4471"),
    ("José", "Ñúñez", "+52 55 1234 5678", "jose.nunez@example.mx", "MEX-9081"),
]


@dataclass
class Tricky:
    ids: dict[str, int] = field(default_factory=dict)  # last name -> customer id


def add_tricky(db: Database) -> Tricky:
    svc = CustomerService(db, phone_region="US")
    out = Tricky()
    for first, last, phone, email, plate in TRICKY:
        c = svc.create_customer(MANAGER, ContactForm(first_name=first, last_name=last, phone=phone, email=email))
        assert c.id is not None
        with db.write() as s:
            s.add(Vehicle(customer_id=c.id, plate=plate, plate_region="XX", plate_normalized=normalize_plate(plate)))
        out.ids[last] = c.id
    return out


def billed_membership(demo_db: Database, gw: Any, status: Any = None,
                      membership: Membership | None = None) -> tuple[Membership, str]:
    """A membership with a real (simulated-gateway) subscription and card behind it."""
    with demo_db.read() as s:
        m = membership or s.exec(select(Membership).where(Membership.status == status)
                                 .order_by(col(Membership.id))).first()
    assert m is not None
    cus = gw.ensure_customer(CustomerInfo(f"C-test-{m.id}"), idempotency_key=f"t:cus:{m.id}")
    price = gw.sync_plan(PlanSpec("BASIC", "Basic", 1999)).price_id
    sub = gw.create_subscription(cus, price, first_billing=dt.date.today() + dt.timedelta(days=10),
                                 idempotency_key=f"t:sub:{m.id}")
    with demo_db.write() as s:
        row = s.get(Membership, m.id)
        assert row is not None
        row.gateway_subscription_id = sub.subscription_id
        customer = s.get(Customer, row.customer_id)
        assert customer is not None
        customer.gateway_customer_id = cus
    return m, sub.subscription_id
