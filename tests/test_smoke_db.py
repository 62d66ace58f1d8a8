import pytest
from sqlmodel import select

from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.models import Customer, Lane
from hardware.plate_reader import PlateEvent

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


def test_demo_site_and_plate_read(demo_db) -> None:  # noqa: ANN001
    sessions = SessionService(demo_db)
    with demo_db.read() as s:
        lanes = s.exec(select(Lane).order_by(Lane.position)).all()
        assert [lane.name for lane in lanes] == ["Pre-Gate", "Lane 1", "Lane 2", "Lane 3"]
        assert len(s.exec(select(Customer)).all()) == 40
    sid = sessions.record_plate_read(PlateEvent(plate="abc 123", lane="Lane 1"), Actor.system("test"))
    board = sessions.board()
    lane1 = next(lane for lane in board if lane.name == "Lane 1")
    assert [b.session_id for b in lane1.bubbles] == [sid]
    assert lane1.bubbles[0].plate == "ABC 123"
