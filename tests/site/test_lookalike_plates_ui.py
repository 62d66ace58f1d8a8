"""The right car at the lane, as the attendant works (issue 14), at 80x24 on SQLite.

The camera reads RMK-323I for Sofia Evans's RMK-3231 (a Basic member on the demo site): the session screen
says so and corrects the plate in one key; Purchase asks first; "Search & link" corrects instead of adding
a second car.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select
from textual.widgets import Button

from clarity_tui.screens.session_lookalike import LookalikeSaleScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.board_view import Badge
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.bubble import SessionBubble
from db.models import AuditLog, SalesOrder, Vehicle, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, text_of, wait_until


@pytest.fixture
def misread(demo_db) -> int:  # noqa: ANN001
    return SessionService(demo_db).record_plate_read(
        PlateEvent(plate="RMK-323I", lane="Lane 1", region="US-TX", confidence=0.9, make="Kia", model="Soul",
                   colour="Red"), Actor.system("test-camera"))


def session_row(db, session_id: int) -> VehicleSession:  # noqa: ANN001
    with db.read() as s:
        return s.get(VehicleSession, session_id)


def count(db, model) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(func.count()).select_from(model)).one()


async def test_the_session_screen_says_who_the_plate_looks_like_and_f5_corrects_it(settings, demo_db, misread) -> None:  # noqa: ANN001
    app = sale_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        # The board's bubble hints it already.
        await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{misread}"))
                         and "≈ member?" in app.screen.query_one(f"#session-{misread}", SessionBubble).line("who"),
                         "the bubble's hint")
        assert app.screen.query_one(f"#session-{misread}").has_class("-lookalike")
        await open_session(pilot, Keys(pilot), misread)
        await wait_until(pilot, lambda: "Looks like" in text_of(app, "#lookalike-text"), "the look-alike hint")
        assert "Looks like RMK-3231 (Sofia Evans, Basic member)" in text_of(app, "#lookalike-text")
        assert app.screen.query_one("#correct-plate").region.area > 0  # the button is on screen at 80x24
        assert any(b.id == "session.correct_plate" for b in app.screen.active_bindings.values()
                   for b in [b.binding])

        await pilot.press("f5")
        await wait_until(pilot, lambda: app.screen.detail.bubble.plate == "RMK-3231", "the corrected plate")
        await wait_until(pilot, lambda: "Sofia Evans" in text_of(app, "#customer"), "the member on screen")
        assert app.screen.detail.bubble.badge == Badge.MEMBER
        assert not app.screen.has_class("-lookalike")
    vs = session_row(demo_db, misread)
    assert (vs.plate, vs.plate_normalized) == ("RMK-3231", "RMK3231") and vs.customer_id is not None
    with demo_db.read() as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "session.plate_corrected")).one()
    assert audit.before["plate"] == "RMK-323I" and audit.after["plate"] == "RMK-3231"


async def test_purchase_on_a_lookalike_of_a_member_asks_first(settings, demo_db, misread) -> None:  # noqa: ANN001
    app = sale_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), misread)
        # Back: nothing started.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, LookalikeSaleScreen), "the look-alike question")
        question = text_of(app, "#lookalike-question")
        assert "RMK-323I looks like RMK-3231, Sofia Evans's car (Basic member)." in question
        labels = [str(b.label) for b in app.screen.query(Button)]
        assert labels == ["Correct the plate · C", "Sell anyway · S", "Back · Esc"]
        await pilot.press("escape")
        await at(pilot, "session-detail")
        assert count(demo_db, SalesOrder) == 0
        # Sell anyway: the sale goes on to the plans.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, LookalikeSaleScreen), "the look-alike question")
        await pilot.press("s")
        await at(pilot, "plan-select")
        assert count(demo_db, SalesOrder) == 1
        with demo_db.read() as s:
            sold_anyway = s.exec(select(AuditLog).where(AuditLog.action == "session.lookalike_sold_anyway")).one()
        assert sold_anyway.after["plate"] == "RMK-323I" and sold_anyway.after["looks_like"] == "RMK-3231"
        await pilot.press("escape")  # leaving the plans abandons the draft
        await at(pilot, "session-detail")
        await wait_until(pilot, lambda: not any(w.group == "sale-flow" for w in app.screen.workers), "the flow to end")
        # Correct the plate: no sale starts, and the screen shows the member's car.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, LookalikeSaleScreen), "the look-alike question")
        await pilot.press("c")
        await at(pilot, "session-detail")
        await wait_until(pilot, lambda: app.screen.detail.bubble.plate == "RMK-3231", "the corrected plate")
        assert app.screen.detail.bubble.badge == Badge.MEMBER
    assert session_row(demo_db, misread).plate == "RMK-3231"
    with demo_db.read() as s:
        assert [o.state for o in s.exec(select(SalesOrder))] == ["cancelled"]


async def test_search_and_link_from_a_misread_corrects_the_plate_instead_of_adding_a_car(settings, demo_db, misread) -> None:  # noqa: ANN001
    app = sale_app(settings, demo_db)
    cars = count(demo_db, Vehicle)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), misread)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, LookalikeSaleScreen), "the look-alike question")
        await pilot.press("s")  # the attendant did not look: sell anyway
        await at(pilot, "plan-select")
        await pilot.press("2")  # Deluxe
        await at(pilot, "customer-quick")
        await pilot.press(*"Sofia Evans", "f3")
        await at(pilot, "customer-pick")
        await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.hits, "search results")
        assert "Sofia" in str(app.screen.result.hits[0])
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.id not in ("customer-pick", "customer-quick"), "the next step")
    assert count(demo_db, Vehicle) == cars  # no second car for Sofia
    vs = session_row(demo_db, misread)
    with demo_db.read() as s:
        car = s.exec(select(Vehicle).where(Vehicle.plate_normalized == "RMK3231")).one()
        assert s.exec(select(Vehicle).where(Vehicle.plate_normalized == "RMK323I")).first() is None
    assert (vs.plate, vs.vehicle_id, vs.customer_id) == ("RMK-3231", car.id, car.customer_id)
