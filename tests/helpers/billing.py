"""Members with real subscriptions at the simulated gateway, as a sale leaves them (the billing lifecycle)."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from sqlmodel import select

from clarity_tui.payments.base import CustomerInfo, PlanSpec
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.sim_store import sim_token
from clarity_tui.payments.simulated import SimulatedGateway
from db.engine import Database
from db.models import Customer, Membership, MembershipStatus, MembershipVehicle, PaymentMethod, Plan, Vehicle

_numbers = itertools.count(1)


@dataclass
class Member:
    membership_id: int
    customer_id: int
    vehicle_id: int
    plate: str
    subscription_id: str
    card: str


def make_member(db: Database, gw: SimulatedGateway, *, first_billing: dt.date | dt.datetime, outcome: str = "ok",
                price_cents: int = 1999, tax_rate_ids: tuple[str, ...] = ()) -> Member:
    """A customer, a car, a saved card and a subscription billing first on `first_billing` (a date bills at
    noon UTC; a datetime at that moment), a sale's first period already paid, as the sale leaves them."""
    n = next(_numbers)
    billing_day = first_billing.date() if isinstance(first_billing, dt.datetime) else first_billing
    with db.write() as s:
        plan = s.exec(select(Plan).where(Plan.code == "LIFE")).first()
        if plan is None:
            p = Plan(code="LIFE", name="Lifecycle Basic", price_cents=price_cents)
            s.add(p)
            s.flush()
            plan_id = p.id
        else:
            plan_id = plan.id
        c = Customer(customer_number=f"L{n:06d}", first_name="Life", last_name=f"Cycle{n}",
                     phone_e164=f"+1512555{n:04d}")
        s.add(c)
        s.flush()
        v = Vehicle(customer_id=c.id, plate=f"LIF{n:04d}", plate_normalized=f"LIF{n:04d}")
        s.add(v)
        s.flush()
        assert c.id is not None and v.id is not None and plan_id is not None
        customer_id, vehicle_id, plate = c.id, v.id, v.plate
    cus = gw.ensure_customer(CustomerInfo(f"L{n:06d}"), idempotency_key=f"t:life:cus:{n}")
    token = sim_token(outcome)
    card = gw.save_card(cus, CardToken(token, "visa", "4242", 12, 2030), idempotency_key=f"t:life:card:{n}")
    price = gw.sync_plan(PlanSpec("LIFE", "Lifecycle Basic", price_cents)).price_id
    sub = gw.create_subscription(cus, price, first_billing=first_billing, tax_rate_ids=tax_rate_ids,
                                 idempotency_key=f"t:life:sub:{n}")
    with db.write() as s:
        customer = s.get(Customer, customer_id)
        assert customer is not None
        customer.gateway_customer_id = cus
        s.add(PaymentMethod(customer_id=customer_id, gateway="simulated", gateway_token=card.payment_method_id,
                            brand="visa", last4="4242", exp_month=12, exp_year=2030, is_default=True))
        m = Membership(customer_id=customer_id, plan_id=plan_id, status=MembershipStatus.ACTIVE,
                       started_on=billing_day - dt.timedelta(days=30), next_billing_on=billing_day,
                       paid_through=billing_day, gateway_subscription_id=sub.subscription_id)
        s.add(m)
        s.flush()
        assert m.id is not None
        s.add(MembershipVehicle(membership_id=m.id, vehicle_id=vehicle_id))
        membership_id = m.id
    return Member(membership_id, customer_id, vehicle_id, plate, sub.subscription_id, card.payment_method_id)
