"""The demo site with cars waiting in the lanes: for the sale (a returning customer, an unknown car, a
member) and for the migration (legacy members, one plate misread, a stranger)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.engine import Database
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    MembershipVehicle,
    PaymentMethod,
    Vehicle,
    VehicleSession,
)
from hardware.plate_reader import PlateEvent
from tests.helpers.clock import FIXED_NOW, TODAY

NEXT_BILL = TODAY + dt.timedelta(days=12)


def arrive(db: Database, plate: str, lane: str = "Lane 1", **seen: str) -> int:
    """A car read by the camera at `lane` (make, model, colour as `seen`): its session's id."""
    return SessionService(db).record_plate_read(PlateEvent(plate=plate, lane=lane, **seen), Actor.system("test"))


@dataclass
class Lanes:
    """Sessions waiting on the board: a returning customer (Ivana Zoom, saved Visa, no membership),
    an unknown car, and a current member (for the upgrade path)."""

    db: Database
    ivana: int
    unknown: int
    member: int
    ivana_customer_id: int
    member_customer_id: int
    member_plan_id: int


def seed_lanes(demo_db: Database) -> Lanes:
    with demo_db.write() as s:
        ivana = s.exec(select(Customer).where(Customer.customer_number == "C100000")).one()
        ivana_car = s.exec(select(Vehicle).where(Vehicle.customer_id == ivana.id)).first()
        first = s.exec(select(Membership, MembershipVehicle)
                       .join(MembershipVehicle, col(MembershipVehicle.membership_id) == col(Membership.id))
                       .where(Membership.status == "active").order_by(col(Membership.id))).first()
        assert ivana_car is not None and first is not None
        m, mv = first
        member_car = s.get(Vehicle, mv.vehicle_id)
        assert member_car is not None
        # Fixed card expiry, so the screens read the same every year.
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
            s.exec(update(VehicleSession).where(col(VehicleSession.id) == sid)
                   .values(arrived_at=FIXED_NOW - dt.timedelta(minutes=6 - i)))
    assert ivana_id is not None and member_plan is not None
    return Lanes(demo_db, ids[0], ids[1], ids[2], ivana_id, member_customer, member_plan)


@dataclass
class Legacy:
    """Jane: a legacy member whose car is read exactly (LEGACY badge); Bo: one whose plate the camera
    misread (8 for B, one letter dropped); a stranger's car with no legacy record."""

    db: Database
    jane_id: int
    jane_plate: str
    jane_phone: str
    jane_session: int
    bo_id: int
    bo_plate: str
    bo_session: int
    stranger_session: int


def misread(plate: str) -> str:
    """What a camera might read: the first confusable character swapped (B->8, O->0, ...)."""
    swaps = {"B": "8", "O": "0", "I": "1", "S": "5", "Z": "2", "8": "B", "0": "O", "1": "I", "5": "S", "2": "Z"}
    for i, ch in enumerate(plate):
        if ch in swaps:
            return plate[:i] + swaps[ch] + plate[i + 1:]
    return plate[:-1]  # nothing confusable: a dropped last character


def seed_legacy(demo_db: Database) -> Legacy:
    with demo_db.write() as s:
        rows = s.exec(select(LegacyMember).order_by(col(LegacyMember.id))).all()
        jane, bo = rows[0], rows[1]
        jane.first_name, jane.last_name, jane.email = "Jane", "Doe", None
        jane.next_bill_on = bo.next_bill_on = NEXT_BILL
        bo.first_name, bo.last_name = "Bo", "Ng"
        s.add(jane)
        s.add(bo)
        assert jane.id is not None and bo.id is not None
        plate_of = {p.legacy_member_id: p for p in s.exec(select(LegacyMemberPlate))}
        # Bo's plate has look-alike characters, so the misread is a realistic one.
        bo_plate = plate_of[bo.id]
        bo_plate.plate_raw, bo_plate.plate_normalized = "BOS 512", "BOS512"
        s.add(bo_plate)
        jane_plate, jane_phone = plate_of[jane.id].plate_raw, jane.phone_e164
        assert jane_phone is not None
        ids = (jane.id, bo.id)
    sessions = SessionService(demo_db)
    actor = Actor.system("test-camera")
    made = []
    for plate, lane in ((jane_plate, "Lane 1"), ("8OS 512", "Lane 2"), ("ZZZ 9999", "Lane 3")):
        made.append(sessions.record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.93,
                                                          make="Toyota", model="Camry", colour="Silver"), actor))
    return Legacy(demo_db, ids[0], jane_plate, jane_phone, made[0], ids[1], "BOS 512", made[1], made[2])
