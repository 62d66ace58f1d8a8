"""Fixtures for the customer search and record tests: tricky customers, actors, an SMTP server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import ContactForm, CustomerService
from db.models import Role, Vehicle

ATTENDANT = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term", 1)
MANAGER = Actor("Morgan Manager", Role.MANAGER, "office-term", 2)
TECHNICIAN = Actor("Taylor Tech", Role.TECHNICIAN, "laptop", 3)
SUPPORT = Actor("ssh:support", Role.SUPPORT, "ssh", 4)

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


def add_tricky(db) -> Tricky:  # noqa: ANN001
    svc = CustomerService(db, phone_region="US")
    out = Tricky()
    for first, last, phone, email, plate in TRICKY:
        c = svc.create_customer(MANAGER, ContactForm(first_name=first, last_name=last, phone=phone, email=email))
        with db.write() as s:
            from clarity_tui.services.plates import normalize_plate

            s.add(Vehicle(customer_id=c.id, plate=plate, plate_region="XX", plate_normalized=normalize_plate(plate)))
        out.ids[last] = c.id  # type: ignore[assignment]
    return out


@pytest.fixture
def tricky(demo_db) -> Tricky:  # noqa: ANN001
    return add_tricky(demo_db)


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SmtpSink("127.0.0.1", port)

    class Keep(Message):
        def handle_message(self, message) -> None:  # noqa: ANN001
            sink.messages.append(message)

    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


def billed_membership(demo_db, gw, status=None, membership=None):  # noqa: ANN001, ANN202
    """A membership with a real (simulated-gateway) subscription and card behind it."""
    from clarity_tui.payments.base import CustomerInfo, PlanSpec

    from sqlmodel import select

    from db.models import Customer, Membership

    with demo_db.read() as s:
        m = membership or s.exec(select(Membership).where(Membership.status == status).order_by(Membership.id)).first()
    cus = gw.ensure_customer(CustomerInfo(f"C-test-{m.id}"), idempotency_key=f"t:cus:{m.id}")
    price = gw.sync_plan(PlanSpec("BASIC", "Basic", 1999)).price_id
    sub = gw.create_subscription(cus, price, first_billing=dt.date.today() + dt.timedelta(days=10),
                                 idempotency_key=f"t:sub:{m.id}")
    with demo_db.write() as s:
        row = s.get(Membership, m.id)
        row.gateway_subscription_id = sub.subscription_id
        s.get(Customer, row.customer_id).gateway_customer_id = cus
    return m, sub.subscription_id
