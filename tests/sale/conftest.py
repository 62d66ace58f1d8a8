"""Sale fixtures: the demo site with vehicles waiting in lanes, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import update
from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.sales import SaleService
from clarity_tui.services.sessions import SessionService
from db.models import Customer, Membership, MembershipVehicle, Vehicle, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.uihelpers import FIXED_NOW

TODAY = FIXED_NOW.date()


@dataclass
class Lanes:
    """Sessions waiting on the board: a returning customer (Ivana Zoom, saved Visa, no membership),
    an unknown car, and a current member (for the upgrade path)."""

    db: object
    ivana: int
    unknown: int
    member: int
    ivana_customer_id: int
    member_customer_id: int
    member_plan_id: int


def fast_devices(settings: Settings) -> Settings:
    settings.hardware.card_reader.options = {"delay": 0.05, "timeout_after": 0.2}
    settings.hardware.signature_pad.options = {"speed": 12, "start_delay": 0.05, "seed": 3, "garbage_rate": 0}
    return settings


@pytest.fixture
def lanes(demo_db) -> Lanes:  # noqa: ANN001
    with demo_db.write() as s:
        ivana = s.exec(select(Customer).where(Customer.customer_number == "C100000")).one()
        ivana_car = s.exec(select(Vehicle).where(Vehicle.customer_id == ivana.id)).first()
        m, mv = s.exec(select(Membership, MembershipVehicle)
                       .join(MembershipVehicle, MembershipVehicle.membership_id == Membership.id)
                       .where(Membership.status == "active").order_by(Membership.id)).first()
        member_car = s.get(Vehicle, mv.vehicle_id)
        # Fixed card expiry, so the screens read the same every year.
        from db.models import PaymentMethod

        for pm in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == ivana.id)):
            pm.brand, pm.last4, pm.exp_month, pm.exp_year = "Visa", "4242", 4, 2029
            s.add(pm)
        ivana_id, member_customer, member_plan = ivana.id, m.customer_id, m.plan_id
        plates = (ivana_car.plate, member_car.plate)
    sessions = SessionService(demo_db)
    actor = Actor.system("test-camera")
    ids = []
    for plate, lane, (make, model, colour) in (
        (plates[0], "Lane 1", ("Toyota", "Camry", "Silver")),
        ("NEW-4821", "Lane 2", ("Honda", "Civic", "Blue")),
        (plates[1], "Lane 3", ("Ford", "F-150", "Black")),
    ):
        ids.append(sessions.record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.97,
                                                         make=make, model=model, colour=colour), actor))
    with demo_db.write() as s:
        for i, sid in enumerate(ids):
            s.exec(update(VehicleSession).where(VehicleSession.id == sid)
                   .values(arrived_at=FIXED_NOW - dt.timedelta(minutes=6 - i)))
    return Lanes(demo_db, ids[0], ids[1], ids[2], ivana_id, member_customer, member_plan)


def sale_service(db, terminal: str = "lane-1-term") -> SaleService:  # noqa: ANN001
    return SaleService(db, SimulatedGateway(db), Actor(name="attendant", terminal=terminal), terminal=terminal,
                       today=lambda: TODAY)
