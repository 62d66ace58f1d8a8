"""The customer record's Washes tab (issue 18 item 3): every car's washes with date, site, lane and package."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select
from textual.widgets import Tab

from db.models import Lane, Vehicle, Wash
from tests.helpers.customer_record_ui import open_record, rows, to_tab
from tests.helpers.ui import make_app, wait_until
from tests.helpers.visits import MORNING, close, read_at, visit_member

pytestmark = pytest.mark.both_databases


async def test_the_record_shows_member_visits_and_single_washes_on_every_car(db, settings) -> None:
    member = visit_member(db)
    close(db, read_at(db, member.plate, "Lane 2", MORNING))
    with db.write() as s:  # the customer's second car, no membership: a paid single wash the next day
        s.add(Vehicle(customer_id=member.customer_id, plate="TWO-0002", plate_normalized="TWO0002"))
    sid = read_at(db, "TWO-0002", "Pre-Gate", MORNING)
    with db.write() as s:
        car = s.exec(select(Vehicle).where(Vehicle.plate == "TWO-0002")).one()
        lane = s.exec(select(Lane).where(Lane.name == "Lane 3")).one()
        s.add(Wash(session_id=sid, kind="retail", plate="TWO-0002", vehicle_id=car.id, customer_id=member.customer_id,
                   site_id=lane.site_id, lane_id=lane.id, package_code="BASIC",
                   at=MORNING + dt.timedelta(days=1, hours=1)))
    other = visit_member(db)  # someone else's visit is not on this record
    read_at(db, other.plate, "Lane 1", MORNING)
    app = make_app(settings, db, clock=lambda: MORNING)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, member.customer_id)
        await to_tab(pilot, "tab-washes")  # F6 from General: the eighth tab, scrolled into view at 80 columns
        tab = screen.query_one("#--content-tab-tab-washes", Tab)
        await wait_until(pilot, lambda: tab.region.x >= 0 and tab.region.right <= 80 and tab.region.width > 0,
                         "the Washes tab in view")
        await wait_until(pilot, lambda: len(rows(screen, "washes-table")) == 2, "the two washes")
        assert rows(screen, "washes-table") == [
            ["2026-11-11 16:00", "TWO-0002", "Clarity Express Wash", "Lane 3", "Basic", "Single"],
            ["2026-11-10 15:00", member.plate, "Clarity Express Wash", "Lane 2", "Ultimate", "Member"],
        ]
        # The member comes back the next day while the record is open: the new visit appears.
        read_at(db, member.plate, "Lane 1", MORNING + dt.timedelta(days=2))
        await wait_until(pilot, lambda: len(rows(screen, "washes-table")) == 3, "the new visit")
        assert rows(screen, "washes-table")[0] == ["2026-11-12 15:00", member.plate, "Clarity Express Wash",
                                                   "Lane 1", "Ultimate", "Member"]
