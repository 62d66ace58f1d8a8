"""The migration service as a lane terminal builds it, a legacy member taken to a signed order, and a
legacy export file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.migration import MigrationService
from db.engine import Database
from db.models import VehicleSession
from tests.helpers.cards import card
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Legacy
from tests.helpers.sale import sign

SITEWATCH = (
    '\ufeff"Member #","Member Name","Cell Phone","Email","License Plate","Plate 2","Vehicle","Club Plan","Status",'
    '"Next Bill Date","Sign Up Date","Notes"\r\n'
    '"SW1","Doe, Jane","(512) 555-0143","Jane.Doe@Example.COM","ABC-1234","","Silver Toyota Camry","Deluxe Club",'
    '"Active","03/04/2027","1/15/2019","likes ""ceramic"", weekly"\r\n'
    '"SW2","Zoë, Ångström","512.555.0144","zoe@example.com","XYZ 987","XYZ987;KLM 111","Blue Honda","ultimate club",'
    '"On Hold","2027-02-28","Nov 3, 2020",""\r\n'
    '"SW3","Smith, Bob","1.55E+10","bob@example.com","BOB123","","","Basic Club","Active","03/05/2027","",""\r\n'
    '"SW4","Lee, Ann","(512) 555-0145","ann@@example","ANN1","","","Basic Club","Active","03/05/2027","",""\r\n'
    '"SW5","Kim, Joe","(512) 555-0146","","","","","Gold Club","Active","03/05/2027","",""\r\n'
    '"SW1","Doe, Jane","(512) 555-0143","jane@example.com","ABC1234","","","Deluxe Club","Active","03/04/2027","",""\r\n'
    '"SW6","Nobody, No","","","","","","Basic Club","Active","03/05/2027","",""\r\n'
    '"SW7","Late, Date","(512) 555-0147","","LATE1","","","Basic Club","Active","31/02/2027","",""\r\n'
    '"SW8","Multi\nLine, Name","(512) 555-0148","","MULTI8","","","Basic Club","Active","13/04/2027","04/13/2027",""\r\n'
    '"SW9","Phone, Only","(512) 555-0149","","","","","Basic Club","A","12/01/2026","",""\r\n'
)


def write(tmp_path: Path, text: str, name: str = "export.csv", encoding: str = "utf-8") -> Path:
    """A legacy export file with this text."""
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def service(db: Database, terminal: str = "lane-1-term", *, sms: SimulatedSms | None = None,
            name: str = "Alex Attendant") -> MigrationService:
    return MigrationService(db, SimulatedGateway(db), Actor(name=name, terminal=terminal), terminal=terminal,
                            today=lambda: TODAY, sms=sms or SimulatedSms(reply_after=0.0), site_name="Clarity Wash")


def session_of(db: Database, session_id: int) -> VehicleSession:
    with db.read() as s:
        row = s.get(VehicleSession, session_id)
    assert row is not None
    return row


def to_signed(svc: Any, legacy: Legacy, email: str = "jane.doe@example.com") -> int:
    """Jane's migration taken to a signed order: contact confirmed, a card read, terms signed."""
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    form = svc.contact_form(view.id)
    form.email = email
    svc.confirm_contact(view.id, form)
    svc.attach_reader_card(view.id, card())
    sign(svc, view.id)
    return view.id
