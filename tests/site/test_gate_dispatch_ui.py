"""Gate and tunnel from the lane (issue 18 item 5), through Pilot at 80x24: an entitled member's car is sent
by one key (G), or with none on a lane set to auto; a controller fault queues the car with a retry key."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from db.models import DispatchStatus, Lane, Wash
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import devices_ready, text_of, wait_until


def member_wash(db, session_id: int) -> Wash:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Wash).where(Wash.session_id == session_id)).one()


async def test_an_entitled_member_goes_through_the_gate_with_one_key(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    visit = member_wash(db, lanes.member)  # the fixture's read at Lane 3 recorded the visit
    assert visit.kind == "member" and visit.dispatch_status == DispatchStatus.WAITING
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        tunnel = app.devices.tunnel
        await open_session(pilot, keys, lanes.member)
        await wait_until(pilot, lambda: "Member visit" in text_of(app, "#session-wash"), "the visit line")
        await keys.press("g")
        await wait_until(pilot, lambda: member_wash(db, lanes.member).dispatch_status == DispatchStatus.SENT, "sent")
        assert keys.presses == ["enter", "g"]
        assert [w.plate for w in tunnel.sent] == [visit.plate] and tunnel.gates_opened == ["Lane 3"]
        await keys.press("g")  # again: the car is not washed twice
        await wait_until(pilot, lambda: "sent to the tunnel" in text_of(app, "#session-wash"), "the sent line")
        assert len(tunnel.sent) == 1


async def test_a_fault_queues_the_member_and_r_retries(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        tunnel = app.devices.tunnel
        tunnel.set_outcome("fault")
        await open_session(pilot, keys, lanes.member)
        await keys.press("g")
        await wait_until(pilot, lambda: member_wash(db, lanes.member).dispatch_status == DispatchStatus.QUEUED,
                         "queued")
        await wait_until(pilot, lambda: "QUEUED" in text_of(app, "#session-wash"), "the queued line")
        assert "R retries" in text_of(app, "#session-wash") and tunnel.sent == []
        tunnel.set_outcome("ok")
        await keys.press("r")
        await wait_until(pilot, lambda: member_wash(db, lanes.member).dispatch_status == DispatchStatus.SENT, "sent")
        assert len(tunnel.sent) == 1


async def test_a_member_on_an_auto_lane_is_sent_with_no_key(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    with db.write() as s:
        s.exec(update(Lane).where(col(Lane.name) == "Lane 3").values(auto_dispatch=True))
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await wait_until(pilot, lambda: member_wash(db, lanes.member).dispatch_status == DispatchStatus.SENT,
                         "the auto lane's dispatch")
        assert [w.plate for w in app.devices.tunnel.sent] == [member_wash(db, lanes.member).plate]


async def test_a_paid_retail_car_on_an_auto_lane_waits_for_the_key(settings, lanes: Lanes) -> None:  # noqa: ANN001
    """Auto is for members only: a single wash goes when the attendant sends it (the customer may add extras)."""
    db = lanes.db
    with db.write() as s:
        s.exec(update(Lane).values(auto_dispatch=True))
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await wait_until(pilot, lambda: member_wash(db, lanes.member).dispatch_status == DispatchStatus.SENT,
                         "the member sent")
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.unknown)
        await keys.press("w")
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 3, "the menu")
        await keys.press("1", "f5")
        await wait_until(pilot, lambda: text_of(app, "#wash-message").startswith("Paid"), "paid")
        # Two auto passes later the paid car still waits for its key.
        ticks = app.auto_dispatch_passes
        await wait_until(pilot, lambda: app.auto_dispatch_passes >= ticks + 2, "two auto passes")
        assert member_wash(db, lanes.unknown).dispatch_status == DispatchStatus.WAITING


async def test_in_simulator_mode_a_sent_car_leaves_the_tunnel_and_its_session_closes(settings, lanes: Lanes) -> None:  # noqa: ANN001
    """The simulated tunnel is the device set's, shared with the simulator: the car the attendant sends goes
    through it, and its session closes as it leaves (the board then drops it)."""
    from clarity_tui.simulator.scenario import Scenario
    from db.models import SessionStatus, VehicleSession

    db = lanes.db
    scenario = Scenario(initial_vehicles=0, arrivals={"per_minute": 0}, day={"tunnel_seconds": 0.5})
    sim = settings.model_copy(update={"simulate": True})
    app = sale_app(sim, db, scenario=scenario)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.member)
        await keys.press("g")
        await wait_until(pilot, lambda: len(app.devices.tunnel.sent) == 1, "the car in the tunnel")

        def closed() -> bool:
            with db.read() as s:
                return s.get(VehicleSession, lanes.member).status == SessionStatus.DONE

        await wait_until(pilot, closed, "the car out of the tunnel")
        assert app.devices.tunnel.in_tunnel == []
