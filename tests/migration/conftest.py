"""Migration fixtures: the demo site's legacy members, with vehicles waiting at the lanes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlmodel import select

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.migration import MigrationService
from clarity_tui.services.sessions import SessionService
from db.models import LegacyMember, LegacyMemberPlate, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.uihelpers import FIXED_NOW

TODAY = FIXED_NOW.date()
NEXT_BILL = TODAY + dt.timedelta(days=12)


@dataclass
class Legacy:
    """Jane: a legacy member whose car is read exactly (LEGACY badge); Bo: one whose plate the camera
    misread (8 for B, one letter dropped); a stranger's car with no legacy record."""

    db: object
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


@pytest.fixture
def legacy(demo_db) -> Legacy:  # noqa: ANN001
    with demo_db.write() as s:
        rows = s.exec(select(LegacyMember).order_by(LegacyMember.id)).all()
        jane, bo = rows[0], rows[1]
        jane.first_name, jane.last_name, jane.email = "Jane", "Doe", None
        jane.next_bill_on = bo.next_bill_on = NEXT_BILL
        bo.first_name, bo.last_name = "Bo", "Ng"
        s.add(jane)
        s.add(bo)
        plate_of = {p.legacy_member_id: p for p in s.exec(select(LegacyMemberPlate))}
        # Bo's plate has look-alike characters, so the misread is a realistic one.
        bo_plate = plate_of[bo.id]
        bo_plate.plate_raw, bo_plate.plate_normalized = "BOS 512", "BOS512"
        s.add(bo_plate)
        jane_plate, jane_phone = plate_of[jane.id].plate_raw, jane.phone_e164
        ids = (jane.id, bo.id)
    sessions = SessionService(demo_db)
    actor = Actor.system("test-camera")
    made = []
    for plate, lane in ((jane_plate, "Lane 1"), ("8OS 512", "Lane 2"), ("ZZZ 9999", "Lane 3")):
        made.append(sessions.record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.93,
                                                          make="Toyota", model="Camry", colour="Silver"), actor))
    return Legacy(demo_db, ids[0], jane_plate, jane_phone, made[0], ids[1], "BOS 512", made[1], made[2])


def service(db, terminal: str = "lane-1-term", *, sms: SimulatedSms | None = None,  # noqa: ANN001
            name: str = "Alex Attendant") -> MigrationService:
    return MigrationService(db, SimulatedGateway(db), Actor(name=name, terminal=terminal), terminal=terminal,
                            today=lambda: TODAY, sms=sms or SimulatedSms(reply_after=0.0), site_name="Clarity Wash")


def session_of(db, session_id: int) -> VehicleSession:  # noqa: ANN001
    with db.read() as s:
        return s.get(VehicleSession, session_id)


# --- Pilot helpers shared by the migration's screen tests (import these, not another test file's) ----------


def migration_app(settings, db, *, reply: str = "auto", timeout: int = 30, **kw):  # noqa: ANN001, ANN003, ANN201
    """The app with fast simulated devices and a simulated SMS reply (`reply`, after 0.1 s)."""
    from tests.sale.uiflow import sale_app

    settings.messaging.simulated_reply = reply
    settings.messaging.simulated_reply_after_seconds = 0.1
    settings.messaging.reply_timeout_seconds = timeout
    settings.messaging.poll_interval_seconds = 1.0
    return sale_app(settings, db, **kw)


async def to_contact(pilot, session_id: int) -> None:  # noqa: ANN001
    """Board -> the session -> Migrate Membership (F3) -> That's Me (F5) on the first candidate -> Contact."""
    from tests.sale.uiflow import Keys, at, devices_ready, open_session

    await devices_ready(pilot)
    await open_session(pilot, Keys(pilot), session_id)
    await pilot.press("f3")  # Migrate Membership
    await at(pilot, "migration-match")
    await pilot.press("f5")  # That's Me
    await at(pilot, "migration-contact")


async def card_to_agree(pilot) -> None:  # noqa: ANN001
    """The card step (the reader) -> summary -> terms (presented) -> signature -> Agree."""
    from tests.sale.uiflow import at, signer_done, text_of
    from tests.uihelpers import wait_until

    app = pilot.app
    await at(pilot, "migration-card")
    await pilot.press("r")  # the reader
    await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
    await pilot.press("f5")
    await at(pilot, "checkout-summary")
    await pilot.press("enter")  # Checkout
    await at(pilot, "terms")
    await pilot.press("f2")  # presented
    await at(pilot, "signature")
    await signer_done(pilot)
    await pilot.press("f5")  # Agree
