"""The simulated lane day, piece by piece (issue 18 item 8): what simulated people do once their car is at a
lane, through the real services, on SQLite and PostgreSQL; and the scenario's new settings, checked."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from sqlmodel import Session, col, select

from clarity_tui.config import Settings
from clarity_tui.seeding.demo import seed_demo
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from clarity_tui.simulator.headless import span_figures
from clarity_tui.simulator.lane_day import LaneDay, sign_in_attendant
from clarity_tui.simulator.scenario import Mix, Scenario, ScenarioError, load_scenario
from clarity_tui.simulator.world import VehiclePool
from clarity_tui.wiring import Services
from db.engine import Database
from db.models import (
    AuditLog,
    Membership,
    MembershipStatus,
    MembershipVehicle,
    Operator,
    OrderKind,
    OrderState,
    SalesOrder,
    SessionStatus,
    Vehicle,
    VehicleSession,
    VisitRefusal,
    Wash,
)
from db.models.wash import Commission
from hardware.card_reader.simulated import SimulatedCardReader
from hardware.plate_reader import PlateEvent
from hardware.tunnel.simulated import SimulatedTunnel
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.both_databases  # the lane day's tests run on both (the scenario's need no database)

M = TypeVar("M")
SCENARIOS = Path(__file__).resolve().parents[2] / "clarity_tui" / "simulator" / "scenarios"


# --- the scenario ---------------------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "day.toml"
    path.write_text(text)
    return load_scenario(path)


@pytest.mark.parametrize(("text", "words"), [
    ("[day]\nupsell_share = 1.5\n", "day.upsell_share: Input should be less than or equal to 1."),
    ("[day]\nreturn_share = -0.1\n", "day.return_share: Input should be greater than or equal to 0."),
    ("[day]\nupsel_share = 0.2\n", "day.upsel_share: Extra inputs are not permitted."),
    ("[day]\ntunnel_seconds = 0\n", "day.tunnel_seconds: Input should be greater than 0."),
    ('tunnel_outcome = "jammed"\n', "tunnel_outcome: Input should be 'ok', 'busy', 'fault' or 'offline'."),
    ("[mix]\nmember = 0\nlegacy = 0\nretail = 0\nunknown = 0\n",
     "mix: Value error, at least one of member, legacy, retail, unknown must be above 0."),
])
def test_a_bad_lane_day_setting_is_one_clear_message(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ScenarioError) as bad:
        _load(tmp_path, text)
    assert str(bad.value) == f"Scenario file {tmp_path / 'day.toml'}: {words}"


def test_the_command_refuses_a_bad_share_in_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text("[day]\nsingle_after_refusal = 2\n")
    result = run_cli("--db", f"sqlite:///{tmp_path / 's.db'}", "simulate", "--headless", "--duration", "1",
                     "--scenario", str(scenario))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"Error: Scenario file {scenario}: day.single_after_refusal: Input should be less than or equal to 1."]


def test_defaults_and_shipped_scenarios_give_a_lively_day(tmp_path: Path) -> None:
    for scenario in (Scenario(), Scenario.demo(), load_scenario(SCENARIOS / "rush_hour.toml"),
                     load_scenario(SCENARIOS / "busy_day.toml")):
        mix, day = scenario.mix, scenario.day
        assert min(mix.member, mix.retail) > 0, scenario.name
        assert min(day.upsell_share, day.return_share, day.single_after_refusal, day.extras_share) > 0, scenario.name
        assert day.attendant == "Alex Attendant"
    busy = load_scenario(SCENARIOS / "busy_day.toml")
    # The billing clock covers more than the last retry of a renewal that fails on the run's first day
    # (days 3, 8 and 15 after it), so the card-failure churn falls inside a one-minute run.
    assert busy.billing_days_per_minute >= 30 and busy.day.tunnel_seconds < busy.dwell_minutes * 60
    assert _load(tmp_path, 'name = "x"\n').day == Scenario().day


def test_a_shipped_scenario_is_found_by_its_name_and_a_missing_one_says_what_there_is(tmp_path: Path) -> None:
    assert load_scenario("busy_day") == load_scenario("busy_day.toml") == load_scenario(SCENARIOS / "busy_day.toml")
    assert load_scenario("busy_day").name == "busy-day"
    with pytest.raises(ScenarioError) as missing:
        load_scenario(tmp_path / "nope.toml")
    assert str(missing.value) == (f"Scenario file {tmp_path / 'nope.toml'} does not exist: give a file, or one of the "
                                  "scenarios that come with Clarity (busy_day, rush_hour).")


def test_the_printed_figures_add_the_days_up(db: Database) -> None:
    """The headless run's JSON: lane_metrics' days from the first to the billing clock's, added up."""
    from clarity_tui.services.lane_metrics import day_figures
    from db.models_billing import PaymentKind
    from tests.helpers.lane_day import LaneDay as Rows

    rows, utc = Rows(db), dt.UTC
    first = dt.date(2026, 11, 2)
    at = [dt.datetime(2026, 11, 2 + i, 15, tzinfo=utc) for i in range(3)]
    rows.wash("retail", at[0])
    rows.wash("retail", at[0])
    sold = rows.sale(at[0], "Alex Attendant", credit_cents=1000)
    rows.commission("Alex Attendant", 500, at[0], sold)
    rows.wash("member", at[1])
    rows.payment(PaymentKind.RENEWAL, at[1])
    rows.commission("Sam Support", 200, at[1], rows.sale(at[1], "Sam Support"))
    rows.payment(PaymentKind.RENEWAL_FAILED, at[2])
    figures = span_figures(db, first, first + dt.timedelta(days=2), utc)
    assert (figures["day"], figures["through"]) == ("2026-11-02", "2026-11-04")
    assert {k: figures[k] for k in ("retail_washes", "member_visits", "memberships_sold", "upsell_credits",
                                    "upsell_credit_cents", "renewals", "renewal_failures")} == {
        "retail_washes": 2, "member_visits": 1, "memberships_sold": 2, "upsell_credits": 1, "upsell_credit_cents": 1000,
        "renewals": 1, "renewal_failures": 1}
    assert figures["conversion_rate"] == 1.0
    assert figures["commissions"] == {"Alex Attendant": 500, "Sam Support": 200}
    assert figures["sales_by_operator"] == {"Alex Attendant": 1, "Sam Support": 1}
    days = [day_figures(db, first + dt.timedelta(days=i), utc) for i in range(3)]
    assert figures["retail_washes"] == sum(d.retail_washes for d in days)
    assert set(figures) - set(days[0].as_json()) == {"through"}


# --- the lane day -------------------------------------------------------------------------------------------


class TunnelClock:
    """The simulated tunnel's time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    services: Services
    day: LaneDay
    pool: VehiclePool
    tunnel: SimulatedTunnel
    clock: TunnelClock
    attendant: Actor

    @property
    def db(self) -> Database:
        return self.services.db

    def arrive(self, event: PlateEvent, lane: str = "Lane 1") -> int:
        """Read at the pre-gate, then at a lane (the same session moves), as the camera does."""
        sessions, camera = SessionService.from_services(self.services), Actor.system("plate-camera", "sim")
        sessions.record_plate_read(PlateEvent(plate=event.plate, lane="Pre-Gate", confidence=0.95), camera)
        return sessions.record_plate_read(PlateEvent(plate=event.plate, lane=lane, confidence=0.95), camera)

    def through_the_tunnel(self) -> None:
        self.clock.now += self.day.day.tunnel_seconds
        self.day.tick()


def _site(db: Database, settings: Settings, **day: object) -> Site:
    seed_demo(db, customers=30, legacy=4, gateway=True)
    scenario = Scenario.model_validate({"arrivals": {"seed": 4, "misread_rate": 0},
                                        "day": {"upsell_share": 0, "return_share": 0, "cancel_share": 0,
                                                "single_after_refusal": 0, "extras_share": 0.5,
                                                "tunnel_seconds": 5, **day}})
    services = Services(settings, db)
    clock = TunnelClock()
    tunnel = SimulatedTunnel(travel_seconds=scenario.day.tunnel_seconds, clock=clock)
    reader = SimulatedCardReader(delay=0.01)
    attendant = sign_in_attendant(services, scenario.day.attendant).actor
    pool = VehiclePool(db, scenario, random.Random(4))
    day_ = LaneDay(services, scenario, card_reader=reader, tunnel=tunnel, attendant=attendant, pool=pool)
    return Site(services, day_, pool, tunnel, clock, attendant)


def _row(s: Session, model: type[M], row_id: int | None) -> M:
    row = s.get(model, row_id)
    assert row is not None, f"{model.__name__} {row_id}"
    return row


def _entitled_member_plate(db: Database) -> str:
    with db.read() as s:
        plate = s.exec(select(Vehicle.plate).join(MembershipVehicle, col(MembershipVehicle.vehicle_id) == Vehicle.id)
                      .join(Membership, col(Membership.id) == MembershipVehicle.membership_id)
                      .where(Membership.status == MembershipStatus.ACTIVE, col(Membership.paid_through) > dt.date.today())
                      .order_by(col(Vehicle.id))).first()
    assert plate is not None, "the demo site has an entitled member"
    return plate


def _stranger(site: Site, kind: str) -> PlateEvent:
    """The camera's next arrival is a stranger of this kind ("retail" buys a wash, "unknown" drives off)."""
    weights = {"member": 0.0, "legacy": 0.0, "retail": 0.0, "unknown": 0.0, kind: 1.0}
    site.pool.scenario = site.pool.scenario.model_copy(update={"mix": Mix(**weights)})
    return site.pool()


def test_a_members_visit_goes_through_the_tunnel_and_the_member_comes_back_over_the_limit(
        db: Database, settings: Settings) -> None:
    site = _site(db, settings, return_share=1, single_after_refusal=1)
    plate = _entitled_member_plate(db)
    first = site.arrive(PlateEvent(plate=plate, lane=""))
    assert site.day.waiting() == [first]
    assert site.day.serve(first) == "visit"
    with db.read() as s:
        visit = s.exec(select(Wash).where(Wash.session_id == first)).one()
        assert (visit.kind, visit.dispatch_status) == ("member", "sent")
        assert _row(s, VehicleSession, first).status in (SessionStatus.WAITING, SessionStatus.IN_SERVICE)
    assert [car.wash.plate for car in site.tunnel.in_tunnel] == [plate]
    site.through_the_tunnel()  # the car leaves the tunnel: its session is done, by the tunnel
    with db.read() as s:
        assert _row(s, VehicleSession, first).status == SessionStatus.DONE
        closed_by = s.exec(select(AuditLog.actor).where(AuditLog.entity_id == str(first),
                                                       AuditLog.action == "session.done")).all()
    assert closed_by == ["simulated-tunnel"]
    back = site.pool()  # the member is the camera's next arrival
    assert back.plate == plate
    second = site.arrive(back, lane="Lane 2")
    assert site.day.serve(second) == "single_wash"  # refused over the limit, then bought a single wash
    assert site.day.tally["refused_limit"] == 1
    with db.read() as s:
        refusal = s.exec(select(VisitRefusal).where(VisitRefusal.session_id == second)).one()
        assert refusal.last_visit_at is not None
        wash = s.exec(select(Wash).where(Wash.session_id == second)).one()
        order = _row(s, SalesOrder, wash.order_id)
    assert (wash.kind, wash.dispatch_status) == ("retail", "sent")
    assert (order.kind, order.state, order.operator_id) == (OrderKind.WASH, OrderState.COMPLETED,
                                                           site.attendant.operator_id)


def test_a_retail_customer_buys_a_wash_then_joins_today_and_the_attendant_earns_the_commission(
        db: Database, settings: Settings) -> None:
    site = _site(db, settings, upsell_share=1)
    car = _stranger(site, "retail")
    session_id = site.arrive(car)
    assert site.day.serve(session_id) == "single_wash"
    assert site.day.tally["joined"] == 1, dict(site.day.tally)
    with db.read() as s:
        wash = s.exec(select(Wash).where(Wash.session_id == session_id)).one()
        wash_order = _row(s, SalesOrder, wash.order_id)
        sale = s.exec(select(SalesOrder).where(SalesOrder.credit_order_id == wash_order.id)).one()
        commission = s.exec(select(Commission).where(Commission.order_id == sale.id)).one()
        alex = s.exec(select(Operator).where(Operator.name == "Alex Attendant")).one()
    assert wash.kind == "retail" and wash_order.state == OrderState.COMPLETED
    assert (sale.kind, sale.state) == (OrderKind.SALE, OrderState.COMPLETED)
    assert 0 < sale.credit_cents == wash_order.due_today_cents
    assert sale.operator_id == alex.id == commission.operator_id and commission.amount_cents > 0
    site.through_the_tunnel()
    figures = span_figures(db, dt.date.today(), dt.date.today(), settings.site.zone)
    assert (figures["retail_washes"], figures["memberships_sold"], figures["upsell_credits"]) == (1, 1, 1)
    assert figures["conversion_rate"] == 1.0 and figures["commissions"] == {"Alex Attendant": commission.amount_cents}


def test_a_member_who_asks_to_cancel_is_cancelled_at_the_period_end(db: Database, settings: Settings) -> None:
    site = _site(db, settings, cancel_share=1)
    plate = _entitled_member_plate(db)
    session_id = site.arrive(PlateEvent(plate=plate, lane=""))
    assert site.day.serve(session_id) == "visit"
    with db.read() as s:
        wash = s.exec(select(Wash).where(Wash.session_id == session_id)).one()
        m = _row(s, Membership, wash.membership_id)
    assert m.cancel_at_period_end and m.status == MembershipStatus.ACTIVE  # still a member until then
    assert site.day.tally["cancelled"] == 1


def test_a_stranger_who_does_not_buy_is_left_alone_and_served_once(db: Database, settings: Settings) -> None:
    site = _site(db, settings)
    session_id = site.arrive(_stranger(site, "unknown"))
    assert site.day.serve(session_id) == "not_served"
    assert site.day.waiting() == []  # not offered again
    with db.read() as s:
        assert s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id)).all() == []
        assert s.exec(select(Wash).where(Wash.session_id == session_id)).all() == []


def test_the_attendant_must_be_one_of_the_demo_operators(db: Database, settings: Settings) -> None:
    seed_demo(db, customers=5, legacy=0)
    with pytest.raises(ScenarioError) as bad:
        sign_in_attendant(Services(settings, db), "Pat Nobody")
    assert str(bad.value) == ("The scenario's attendant 'Pat Nobody' is not one of the demo site's operators: use one "
                              "of Alex Attendant, Morgan Manager, Taylor Tech, Sam Support.")


def test_a_tunnel_fault_queues_the_car_and_the_next_tick_sends_it(db: Database, settings: Settings) -> None:
    site = _site(db, settings)
    site.tunnel.set_outcome("fault")
    session_id = site.arrive(PlateEvent(plate=_entitled_member_plate(db), lane=""))
    assert site.day.serve(session_id) == "visit"
    with db.read() as s:
        wash = s.exec(select(Wash).where(Wash.session_id == session_id)).one()
    assert wash.dispatch_status == "queued" and wash.dispatch_error
    site.tunnel.set_outcome("ok")
    site.day.tick()  # the retry key, pressed by the simulated attendant
    with db.read() as s:
        assert _row(s, Wash, wash.id).dispatch_status == "sent"
    site.through_the_tunnel()
    with db.read() as s:
        assert _row(s, VehicleSession, session_id).status == SessionStatus.DONE


def test_a_car_the_attendant_sent_closes_its_session_as_it_leaves_the_tunnel(db: Database, settings: Settings) -> None:
    """The app in simulator mode: the attendant serves the cars; the simulator runs the tunnel only."""
    from clarity_tui.services.tunnel_dispatch import TunnelDispatch

    site = _site(db, settings)
    session_id = site.arrive(PlateEvent(plate=_entitled_member_plate(db), lane=""))
    assert TunnelDispatch(db, site.tunnel, site.attendant).dispatch_session(session_id).status == "sent"
    site.through_the_tunnel()
    with db.read() as s:
        assert _row(s, VehicleSession, session_id).status == SessionStatus.DONE
    assert site.day.tally["exited"] == 1 and site.day.tally["came_back"] == 0
