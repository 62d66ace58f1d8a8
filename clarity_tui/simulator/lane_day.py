"""What simulated people do once their car is at a lane: the lane's whole day (issue 18).

The camera (world.py) brings cars to the lanes, and the session service records a member's visit (or
refuses it over the plan's limit) as the car is read there. Then, as customers and an attendant would:

- a member's visit goes to the tunnel (TunnelDispatch, on the tunnel shared with the simulator); a few
  members ask to cancel (at their period's end), some come back later the same day and meet their limit;
- a refused member (LIMIT, past due, expired) buys a single wash, or drives off;
- a retail customer buys a single wash (a package, maybe extras) on the card reader, attended; some then
  "Join today": a membership whose first charge is less the wash just paid;
- a car leaving the tunnel closes its session.

Every write goes through the services the screens use, signed in as a demo operator (so the orders, the
shift and the commissions are theirs). Services load inside the calls: a missing one fails that car only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.actor import Actor
from clarity_tui.simulator.scenario import Scenario, ScenarioError
from db.errors import as_problem
from db.models import OPEN_SESSION_STATES, Lane, LaneKind, Membership, SessionStatus, VehicleSession, Wash
from hardware.plate_reader import PlateEvent

if TYPE_CHECKING:
    from clarity_tui.services.operators import SignedIn
    from clarity_tui.simulator.world import VehiclePool
    from clarity_tui.wiring import Services

T = TypeVar("T")
log = logging.getLogger(__name__)

# How the simulated customer signs (a few strokes, as tests/helpers/sale.py signs).
STROKES = [[[0.1, 0.5, 0], [0.3, 0.4, 20], [0.5, 0.6, 40]], [[0.6, 0.5, 90], [0.9, 0.5, 120]]]
SIGNATURE_SVG = '<svg xmlns="http://www.w3.org/2000/svg"><path d="M10 50 L30 40 L50 60 M60 50 L90 50"/></svg>'


def sign_in_attendant(services: Services, name: str) -> SignedIn:
    """The demo operator `name` signs in at this terminal with their demo PIN (a shift opens)."""
    from clarity_tui.seeding.demo import OPERATORS
    from clarity_tui.services.operators import OperatorService

    pins = {op_name: pin for op_name, _, pin in OPERATORS}
    operators = OperatorService.from_services(services)
    chosen = next((c for c in operators.choices() if c.name == name), None)
    if name not in pins or chosen is None:
        known = ", ".join(pins)
        raise ScenarioError(f"The scenario's attendant {name!r} is not one of the demo site's operators: "
                            f"use one of {known}.")
    return operators.sign_in(chosen.id, pins[name])


def sign_out_attendant(services: Services, signed_in: SignedIn) -> None:
    """The simulated day is over: the attendant's shift ends (the shift report covers it)."""
    from clarity_tui.services.operators import OperatorService

    OperatorService.from_services(services).sign_out(signed_in.shift_id, "simulator")


@dataclass
class _InTunnel:
    session_id: int
    come_back: PlateEvent | None  # a member who returns later the same day


class LaneDay:
    """Serves the cars at the lanes, one at a time (one attendant, one card reader)."""

    def __init__(self, services: Services, scenario: Scenario, *, card_reader: Any, tunnel: Any, attendant: Actor,
                 pool: VehiclePool | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.services = services
        self.db = services.db
        self.day = scenario.day
        self.card_reader = card_reader
        self.tunnel = tunnel
        self.attendant = attendant
        self.pool = pool
        self.loop = loop
        self.rng = random.Random(scenario.arrivals.seed)
        self.tally: Counter[str] = Counter()
        self.served: set[int] = set()
        self._in_tunnel: dict[int, _InTunnel] = {}
        self._lock = threading.Lock()
        self._exit_actor = Actor.system("simulated-tunnel", services.terminal)
        if hasattr(tunnel, "on_exit"):
            tunnel.on_exit(self._car_left)

    # --- the loop's steps ---------------------------------------------------------------------------

    def waiting(self) -> list[int]:
        """Open sessions at wash lanes nobody has served yet, first come first served."""
        with self.db.read() as s:
            ids = s.exec(select(VehicleSession.id).join(Lane, col(Lane.id) == col(VehicleSession.lane_id))
                         .where(Lane.kind == LaneKind.LANE, col(VehicleSession.status).in_(OPEN_SESSION_STATES))
                         .order_by(col(VehicleSession.arrived_at), col(VehicleSession.id))).all()
        return [i for i in ids if i is not None and i not in self.served]

    def tick(self) -> None:
        """Cars whose time in the tunnel is up leave it (their sessions close); queued washes are retried."""
        if hasattr(self.tunnel, "tick"):
            self.tunnel.tick()
        if self.tally["queued"] > self.tally["retried"]:
            for outcome in self._dispatcher().retry_queued():
                if outcome.status == "sent":
                    self.tally["retried"] += 1

    def serve(self, session_id: int) -> str:
        """What happens to the car of this session now; returns what it did (a tally key)."""
        self.served.add(session_id)
        try:
            what = self._serve(session_id)
        except Exception as exc:  # one car's trouble must not end the simulated day
            if as_problem(exc) is not None:
                raise  # the database's (full, unreachable...): it ends the day, in one line
            log.warning("simulated lane day: session %s: %s", session_id, exc,
                        exc_info=not isinstance(exc, UserFacingError))
            what = "failed"
        self.tally[what] += 1
        return what

    # --- one car ----------------------------------------------------------------------------------------

    def _serve(self, session_id: int) -> str:
        from clarity_tui.services.visits import VisitService, VisitState

        with self.db.read() as s:
            row = s.get(VehicleSession, session_id)
            if row is None or row.status not in OPEN_SESSION_STATES:
                return "gone"
            car = PlateEvent(plate=row.plate, lane="", region=row.plate_region, confidence=row.confidence,
                             make=row.make, model=row.model, colour=row.colour)
        decision = VisitService.from_services(self.services).status(session_id)
        if decision.state == VisitState.VISIT and decision.wash_id is not None:
            if decision.membership_id is not None and self._chance(self.day.cancel_share):
                self._cancel_at_period_end(decision.membership_id)
            back = car if self.pool is not None and self._chance(self.day.return_share) else None
            return self._send(session_id, decision.wash_id, back, "visit")
        if decision.state == VisitState.RETAIL and decision.wash_id is not None:
            return self._send(session_id, decision.wash_id, None, "single_wash")
        if decision.offers_single_wash:
            self.tally["refused_" + decision.state.value] += 1
            if not self._chance(self.day.single_after_refusal):
                return "drove_off"
            return self._single_wash(session_id, join=False)
        if self.pool is not None and self.pool.is_retail(car.plate):
            return self._single_wash(session_id, join=self._chance(self.day.upsell_share))
        return "not_served"  # a legacy member (the attendant migrates them) or a stranger who drives off

    def _single_wash(self, session_id: int, *, join: bool) -> str:
        from clarity_tui.services.orders.wash_sale import WashSaleService
        from clarity_tui.services.wash_menu import MenuError, WashMenu

        sales = WashSaleService.from_services(self.services, self.attendant)
        order_id = sales.open_for_session(session_id).order_id
        menu = WashMenu(self.db)
        package = self.rng.choice(menu.packages()).code
        extras = [e.code for e in menu.extras() if self._chance(self.day.extras_share)]
        try:
            sales.choose(order_id, package, extras)
        except MenuError:  # an extra the member's plan includes already: the package alone
            sales.choose(order_id, package, [])
        paid = self._attended(sales.pay, order_id)
        if not paid.paid:
            sales.cancel(order_id)
            return "declined"
        if join:
            try:
                joined = self._join_today(order_id)
            except UserFacingError as exc:  # refused (a duplicate phone, a decline): the wash still goes
                log.info("simulated Join today refused: %s", exc)
                joined = False
            self.tally["joined" if joined else "join_failed"] += 1
        wash_id = self._wash_of(session_id)
        if wash_id is None:
            return "paid_no_wash"
        return self._send(session_id, wash_id, None, "single_wash")

    def _join_today(self, wash_order_id: int) -> bool:
        """The customer who just paid for a wash joins: the sale's steps, as the sale screens take them."""
        from clarity_tui.seeding.demo import FIRST_NAMES, LAST_NAMES, random_phone
        from clarity_tui.services.customers import ContactForm
        from clarity_tui.services.orders import SaleService
        from clarity_tui.services.upsell import join_today

        sale = SaleService.from_services(self.services, self.attendant)
        view = join_today(sale, wash_order_id)
        credit = getattr(view, "credit_cents", 0) or 0
        plans = [p for p in sale.plans(view.customer_id) if p.max_vehicles == 1 and p.price_cents > credit
                 and p.relation != "current"]
        if not plans:
            sale.cancel(view.id)
            return False
        view = sale.choose_plan(view.id, self.rng.choice(plans).code)
        if view.customer_id is None:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            n = self.rng.randrange(10**9)
            email = f"sim.{n}@example.com"
            view = sale.set_new_customer(view.id, ContactForm(first, last, random_phone(self.rng), email))
        token = self._on_reader(lambda reader: reader.collect_card_to_save())
        sale.attach_reader_card(view.id, token)
        sale.review(view.id)
        sale.checkout(view.id)
        terms = sale.current_terms()
        assert terms.id is not None  # a stored row
        sale.accept_terms(view.id, terms.id, "presented")
        sale.record_signature(view.id, STROKES, SIGNATURE_SVG, device="simulated Topaz T-LBK462")
        return bool(sale.pay(view.id).ok)

    def _cancel_at_period_end(self, membership_id: int) -> None:
        from clarity_tui.services.customers import CustomerService

        with self.db.read() as s:
            m = s.get(Membership, membership_id)
            version = m.version if m is not None else 0
        try:
            CustomerService.from_services(self.services).cancel_at_period_end(self.attendant, membership_id, version)
            self.tally["cancelled"] += 1
        except UserFacingError as exc:  # already cancelling, or changed meanwhile: the member keeps it
            log.info("simulated cancel refused: %s", exc)

    # --- the tunnel ------------------------------------------------------------------------------------

    def _dispatcher(self) -> Any:
        from clarity_tui.services.tunnel_dispatch import TunnelDispatch

        return TunnelDispatch.from_services(self.services, self.tunnel, self.attendant, loop=self.loop)

    def _send(self, session_id: int, wash_id: int, come_back: PlateEvent | None, what: str) -> str:
        with self._lock:  # before sending: a tunnel with no travel time lets the car out at once
            self._in_tunnel[wash_id] = _InTunnel(session_id, come_back)
        outcome = self._dispatcher().dispatch(wash_id)
        if outcome.status == "queued":
            self.tally["queued"] += 1
        return what

    def _car_left(self, car: Any) -> None:
        """The tunnel let a car out: its session is done (and a member may come back later)."""
        from clarity_tui.services.sessions import SessionService

        wash_id = getattr(car.wash, "wash_id", None)
        with self._lock:
            left = self._in_tunnel.pop(wash_id or -1, None)
        if left is None and wash_id is not None:  # a car the attendant sent (the app in simulator mode)
            with self.db.read() as s:
                wash = s.get(Wash, wash_id)
                left = _InTunnel(wash.session_id, None) if wash is not None else None
        if left is None:
            return
        self.tally["exited"] += 1
        try:
            SessionService.from_services(self.services).set_status(left.session_id, SessionStatus.DONE,
                                                                   self._exit_actor)
        except UserFacingError as exc:  # closed meanwhile (an attendant, or the dwell ran out)
            log.info("tunnel exit: %s", exc)
        if left.come_back is not None and self.pool is not None:
            self.pool.come_back(left.come_back)
            self.tally["came_back"] += 1

    # --- helpers ---------------------------------------------------------------------------------------

    def _chance(self, share: float) -> bool:
        return self.rng.random() < share

    def _wash_of(self, session_id: int) -> int | None:
        from clarity_tui.services.visits import VisitService

        return VisitService.from_services(self.services).status(session_id).wash_id

    def _on_reader(self, call: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """A reader action from this worker thread, on the loop that owns the reader (or a loop of its own)."""
        if self.loop is not None and self.loop.is_running():
            return asyncio.run_coroutine_threadsafe(call(self.card_reader), self.loop).result()
        return asyncio.run(call(self.card_reader))

    def _attended(self, pay: Callable[[int], T], order_id: int) -> T:
        from clarity_tui.services.card_present import reader_attended

        with reader_attended(self.card_reader, loop=self.loop):
            return pay(order_id)


async def run_lane_day(day: LaneDay, stop: asyncio.Event, *, serve: bool = True, interval: float = 0.2) -> None:
    """Serve the cars at the lanes and move the tunnel along until `stop` is set (the car being served
    is finished first). Database work runs in threads. `serve=False`: the tunnel only (cars leave it and
    their sessions close), for the app in simulator mode, where the attendant serves the cars."""
    while not stop.is_set():
        await asyncio.to_thread(day.tick)
        for session_id in (await asyncio.to_thread(day.waiting)) if serve else ():
            if stop.is_set():
                break
            await asyncio.to_thread(day.serve, session_id)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
