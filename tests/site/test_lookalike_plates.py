"""The right car (issue 14): a misread of a current member's plate (RMK-323I for Sofia Evans's RMK-3231).

Service tests on SQLite and PostgreSQL. The demo site (seed_demo, 40 customers) always has Sofia Evans,
a Basic member, driving RMK-3231. Pilot tests, as the attendant works, are in test_lookalike_plates_ui.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from clarity_tui.services.actor import Actor
from clarity_tui.services.board_view import Badge
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.plate_lookalikes import (
    PlateCorrectionRefused,
    correct_session_plate,
    member_lookalike,
    session_lookalikes,
)
from clarity_tui.services.orders import SaleError
from clarity_tui.services.sessions import SessionService
from db.models import AuditLog, Customer, Role, Vehicle, VehicleSession
from hardware.plate_reader import PlateEvent
from tests.helpers.sale import sale_service

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

CAMERA = Actor.system("test-camera")
ATTENDANT = Actor(name="Alex Attendant", terminal="lane-1-term")


def read(db, plate: str, lane: str = "Lane 1") -> int:  # noqa: ANN001
    return SessionService(db).record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.91), CAMERA)


def sofia(db) -> tuple[int, int]:  # noqa: ANN001
    """(customer id, vehicle id) of Sofia Evans and her RMK-3231."""
    with db.read() as s:
        car = s.exec(select(Vehicle).where(Vehicle.plate_normalized == "RMK3231")).one()
        customer = s.get(Customer, car.customer_id)
        assert (customer.first_name, customer.last_name) == ("Sofia", "Evans")
        return customer.id, car.id


def vehicle_count(db) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(func.count()).select_from(Vehicle)).one()


def test_a_misread_of_a_members_plate_looks_like_the_member(demo_db) -> None:  # noqa: ANN001
    customer_id, car_id = sofia(demo_db)
    misread = read(demo_db, "RMK-323I")
    found = session_lookalikes(demo_db, misread)
    assert [a.label for a in found] == ["RMK-3231 (Sofia Evans, Basic member)"]
    assert (found[0].customer_id, found[0].vehicle_id) == (customer_id, car_id)
    best = member_lookalike(demo_db, misread)
    assert best is not None and best.whose == "Sofia Evans's car (Basic member)"
    # One character missing is a look-alike too (a hint: the attendant decides).
    assert [a.plate for a in session_lookalikes(demo_db, read(demo_db, "RMK-323", "Lane 2"))] == ["RMK-3231"]
    # The member's own plate, read right, is her car: nothing to hint. Nor is a plate like no one's.
    assert session_lookalikes(demo_db, read(demo_db, "RMK-3231", "Lane 3")) == []
    assert session_lookalikes(demo_db, read(demo_db, "QQQ-7777", "Lane 3")) == []


def test_the_lookalike_query_uses_the_shape_index(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.services.plates import shape_variants
    from db.models import plate_shape_sql

    query = select(Vehicle.id).where(plate_shape_sql(Vehicle.plate_normalized).in_(sorted(shape_variants("RMK323I"))))
    with demo_db.read() as s:
        compiled = query.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        if demo_db.is_sqlite:
            plan = " ".join(str(r[-1]) for r in s.exec(text(f"EXPLAIN QUERY PLAN {compiled}")).all())  # type: ignore[call-overload]
        else:
            s.exec(text("SET LOCAL enable_seqscan = off"))  # type: ignore[call-overload]
            plan = " ".join(r[0] for r in s.exec(text(f"EXPLAIN {compiled}")).all())  # type: ignore[call-overload]
    assert "ix_vehicle_plate_shape" in plan, plan


def test_correcting_the_plate_makes_the_session_the_members_car_and_is_audited(demo_db) -> None:  # noqa: ANN001
    customer_id, car_id = sofia(demo_db)
    misread = read(demo_db, "RMK-323I")
    assert SessionService(demo_db).detail(misread).bubble.badge == Badge.NEW

    assert correct_session_plate(demo_db, misread, car_id, ATTENDANT) == "RMK-3231"

    detail = SessionService(demo_db).detail(misread)
    assert (detail.bubble.plate, detail.customer_id, detail.bubble.badge) == ("RMK-3231", customer_id, Badge.MEMBER)
    assert detail.bubble.customer_name == "Sofia Evans"
    assert session_lookalikes(demo_db, misread) == []
    with demo_db.read() as s:
        vs = s.get(VehicleSession, misread)
        assert (vs.plate_normalized, vs.vehicle_id) == ("RMK3231", car_id)
        rows = s.exec(select(AuditLog).where(AuditLog.action == "session.plate_corrected")).all()
    assert len(rows) == 1 and rows[0].entity_id == str(misread) and rows[0].actor == "Alex Attendant"
    assert rows[0].before["plate"] == "RMK-323I" and rows[0].after["plate"] == "RMK-3231"
    assert rows[0].after["customer_id"] == customer_id
    # A second tap (or another terminal) changes nothing more.
    assert correct_session_plate(demo_db, misread, car_id, ATTENDANT) == "RMK-3231"
    with demo_db.read() as s:
        assert len(s.exec(select(AuditLog).where(AuditLog.action == "session.plate_corrected")).all()) == 1


def test_a_correction_is_refused_while_the_real_car_is_on_the_board(demo_db) -> None:  # noqa: ANN001
    _, car_id = sofia(demo_db)
    misread = read(demo_db, "RMK-323I")
    read(demo_db, "RMK-3231", "Lane 2")
    with pytest.raises(PlateCorrectionRefused, match="RMK-3231 is already on the board in Lane 2"):
        correct_session_plate(demo_db, misread, car_id, ATTENDANT)
    with demo_db.read() as s:
        assert s.get(VehicleSession, misread).plate == "RMK-323I"
    with pytest.raises(PermissionDenied):  # support cannot see the lane
        correct_session_plate(demo_db, misread, car_id, Actor(name="Sam Support", role=Role.SUPPORT))


def test_linking_the_member_from_a_misread_corrects_the_plate_instead_of_adding_a_car(demo_db) -> None:  # noqa: ANN001
    customer_id, car_id = sofia(demo_db)
    misread = read(demo_db, "RMK-323I")
    before = vehicle_count(demo_db)
    sales = sale_service(demo_db)
    order = sales.open_for_session(misread)
    sales.choose_plan(order.id, "DELUXE")
    view = sales.link_customer(order.id, customer_id)

    assert vehicle_count(demo_db) == before  # no second vehicle for Sofia
    assert view.customer_id == customer_id
    with demo_db.read() as s:
        vs = s.get(VehicleSession, misread)
        assert (vs.plate, vs.vehicle_id, vs.customer_id) == ("RMK-3231", car_id, customer_id)
        assert s.exec(select(Vehicle).where(Vehicle.plate_normalized == "RMK323I")).first() is None
        corrected = s.exec(select(AuditLog).where(AuditLog.action == "session.plate_corrected")).all()
    assert [r.after["plate"] for r in corrected] == ["RMK-3231"]
    from db.models import SalesOrder

    with demo_db.read() as s:
        assert s.get(SalesOrder, order.id).vehicle_ids == [car_id]


def test_linking_a_customer_to_an_exact_new_plate_still_adds_the_car(demo_db) -> None:  # noqa: ANN001
    customer_id, _ = sofia(demo_db)
    new_car = read(demo_db, "NEW-4821")
    before = vehicle_count(demo_db)
    sales = sale_service(demo_db)
    order = sales.open_for_session(new_car)
    sales.choose_plan(order.id, "DELUXE")
    sales.link_customer(order.id, customer_id)
    assert vehicle_count(demo_db) == before + 1
    with demo_db.read() as s:
        vs = s.get(VehicleSession, new_car)
        added = s.get(Vehicle, vs.vehicle_id)
        assert (vs.plate, added.plate_normalized, added.customer_id) == ("NEW-4821", "NEW4821", customer_id)


def test_linking_from_a_misread_while_the_real_car_is_on_the_board_says_so(demo_db) -> None:  # noqa: ANN001
    customer_id, _ = sofia(demo_db)
    misread = read(demo_db, "RMK-323I")
    read(demo_db, "RMK-3231", "Lane 3")
    before = vehicle_count(demo_db)
    sales = sale_service(demo_db)
    order = sales.open_for_session(misread)
    sales.choose_plan(order.id, "DELUXE")
    with pytest.raises(SaleError, match="RMK-3231 is already on the board in Lane 3"):
        sales.link_customer(order.id, customer_id)
    assert vehicle_count(demo_db) == before


def test_the_board_hints_a_lookalike_of_a_member(demo_db) -> None:  # noqa: ANN001
    misread = read(demo_db, "RMK-323I")
    exact = read(demo_db, "RMK-3231", "Lane 2")
    one_off = read(demo_db, "RMK-323", "Lane 3")  # a hint on the session screen only (one probe per plate here)
    stranger = read(demo_db, "QQQ-7777", "Pre-Gate")
    bubbles = {b.session_id: b for lane in SessionService(demo_db).board() for b in lane.bubbles}
    assert bubbles[misread].lookalike and bubbles[misread].badge == Badge.NEW
    assert not bubbles[exact].lookalike and bubbles[exact].badge == Badge.MEMBER
    assert not bubbles[one_off].lookalike and not bubbles[stranger].lookalike


def test_the_boards_lookalike_probe_uses_the_shape_index(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.services.board_view import _LOOKALIKES_SQL

    sql = _LOOKALIKES_SQL.format(shapes="'RMK3231'")
    with demo_db.read() as s:
        if demo_db.is_sqlite:
            plan = " ".join(str(r[-1]) for r in s.exec(text(f"EXPLAIN QUERY PLAN {sql}")).all())  # type: ignore[call-overload]
        else:
            s.exec(text("SET LOCAL enable_seqscan = off"))  # type: ignore[call-overload]
            plan = " ".join(r[0] for r in s.exec(text(f"EXPLAIN {sql}")).all())  # type: ignore[call-overload]
    assert "ix_vehicle_plate_shape" in plan, plan
