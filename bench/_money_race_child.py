"""The processes of the money_race benchmark (bench/money_race.py). Started with multiprocessing
(spawn; forkserver in smoke mode): real processes, each with its own engine and gateway object,
synchronised by barriers.

- `terminal`: one lane terminal of a pair. For each car both terminals of the pair read the plate
  in their own lane at the same instant, sell a membership (the same car, or a family plan on one
  side that covers the car the other side sells), and press Agree at the same instant.
- `builder`: sales paid while the gateway is unreachable (the orders wait in the outbox).
- `replayer`: replays the outbox until nothing is pending (several at once: a site's terminals).
- `crasher`: a sale or a replay that SIGKILLs itself at a random point (sale steps, the outbox
  observers' points, just after the gateway acted).
- `restart`: what a terminal does when it starts again: replay, then activate paid orders.

Every gateway call goes through `CallLog`, which appends a line per call (and per error) to a
file with os.write before and after the call, so the counts survive a SIGKILL. Only these
children kill themselves; product code has observers, not fault switches.

The simulated gateway's in-flight latency knob is set in one place, `make_gateway`.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

LATENCY_ENV = "CLARITY_SIM_GATEWAY_LATENCY"
# How long a key marked in flight by a process that died blocks its retries (KeyInUse, 409) before
# another caller may take it over. Stripe's lasts as long as its request; the simulated gateway's
# default is 30 s, shortened here so a run does not sit out the dead processes' markers.
IN_FLIGHT_LEASE_S = 2.0
STROKES = [[[0.1, 0.5, 0], [0.3, 0.4, 20], [0.5, 0.6, 40]], [[0.6, 0.5, 90], [0.9, 0.5, 120]]]
STEPS = ("customer.ensure", "card.save", "payment.charge", "subscription.create")
POINTS = ("before_call", "after_call", "after_done")


# --- plumbing ------------------------------------------------------------------------------------


def _quiet(stderr_path: str) -> None:
    """This child's stderr (tracebacks, the outbox's warnings) goes to its own file."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def error_code(exc: BaseException) -> str:
    """`KeyInUse:idempotency_key_in_use` for our payment errors, the class name for anything else."""
    code = getattr(exc, "code", None)
    ours = type(exc).__module__.startswith("clarity_tui")
    return f"{type(exc).__name__}:{code}" if ours and isinstance(code, str) else type(exc).__name__


EXPECTED = ("OrderBusy", "VehicleTaken", "SaleError", "OrderTaken", "CardDeclined")


def where(exc: BaseException) -> str:
    """The innermost frame in our code that raised (for samples of unexpected errors)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/clarity_tui/" in f.filename
              or "/db/" in f.filename]
    return f" at {frames[-1].filename.rsplit('/', 2)[-2]}/{frames[-1].name}:{frames[-1].lineno}" if frames else ""


def is_key_in_use(code: str) -> bool:
    """A 409 for an idempotency key another request is still using."""
    low = code.lower()
    return "keyinuse" in low or "key_in_use" in low or "in_use" in low or "409" in low or "in_flight" in low


class CallLog:
    """The gateway, with every call logged to an append-only file (survives SIGKILL).

    `kill_after_call` (a method name) kills the process right after the gateway acted on that
    call, before our database hears about it: the charge exists only at the gateway."""

    def __init__(self, inner: Any, path: str) -> None:
        self._inner = inner
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.kill_after_call: str | None = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            os.write(self._fd, f"call {name}\n".encode())
            try:
                result = value(*args, **kwargs)
            except Exception as exc:
                os.write(self._fd, f"err {name} {error_code(exc)}\n".encode())
                raise
            if self.kill_after_call == name:
                _die()
            return result

        return call


def make_gateway(db: Any, latency: float, log_path: str) -> tuple[CallLog, str]:
    """The simulated gateway with the in-flight latency knob set, whichever way it takes it:
    a constructor argument or attribute `call_latency`, else the environment variable
    LATENCY_ENV (set before the module is imported). Returns the gateway and how it was set."""
    os.environ[LATENCY_ENV] = repr(latency)
    from clarity_tui.payments.simulated import SimulatedGateway

    how = f"env {LATENCY_ENV}"
    params = inspect.signature(SimulatedGateway).parameters
    if "call_latency" in params:
        extra = {"in_flight_lease": IN_FLIGHT_LEASE_S} if "in_flight_lease" in params else {}
        gateway = SimulatedGateway(db, call_latency=latency, **extra)  # type: ignore[call-arg]
        how = "call_latency argument"
    else:
        gateway = SimulatedGateway(db)
        if hasattr(gateway, "call_latency"):
            gateway.call_latency = latency  # type: ignore[attr-defined]
            how = "call_latency attribute"
    return CallLog(gateway, log_path), how


def _open(url: str) -> Any:
    from db.engine import Database

    return Database.from_url(url)


def _write(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _sale(db: Any, gateway: Any, terminal: str) -> Any:
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.orders import SaleService

    return SaleService(db, gateway, Actor(name=f"attendant {terminal}", terminal=terminal), terminal=terminal)


def _sign(sale: Any, order_id: int) -> None:
    sale.review(order_id)
    sale.checkout(order_id)
    sale.accept_terms(order_id, sale.current_terms().id, "presented")
    sale.record_signature(order_id, STROKES, "<svg/>", device="signature_pad simulated money-race")


def _reader_card(outcome: str = "ok") -> Any:
    from clarity_tui.payments.simulated import sim_token
    from hardware.card_reader.base import CardToken

    return CardToken(sim_token(outcome), "visa", "4242", 12, 2031)


def _read(url_db: Any, plate: str, lane: str, terminal: str) -> int:
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent

    return SessionService(url_db).record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", confidence=0.97),
                                                    Actor.system("camera", terminal))


def _prepare_sale(sale: Any, session_id: int, plan: str, form: dict[str, str] | None,
                  extra_plate: str | None) -> int:
    """Open, plan, customer, (family) vehicle, card, terms, signature: everything up to Agree."""
    from clarity_tui.services.customers import ContactForm

    view = sale.open_for_session(session_id)
    order_id = view.id
    try:
        view = sale.choose_plan(order_id, plan)
        if view.customer_id is None:
            view = sale.set_new_customer(order_id, ContactForm(**(form or {})))
        if extra_plate:
            view = sale.add_vehicle(order_id, extra_plate)
        if view.payment_method_id is None:
            view = sale.attach_reader_card(order_id, _reader_card())
        _sign(sale, order_id)
    except BaseException:
        _cancel_quietly(sale, order_id)
        raise
    return order_id


def _cancel_quietly(sale: Any, order_id: int, tally: Counter | None = None) -> None:
    try:
        sale.cancel(order_id)
        if tally is not None:
            tally["cancelled_after_refusal"] += 1
    except Exception as exc:  # noqa: BLE001 - recorded: e.g. "money already moved"
        if tally is not None:
            tally[f"cancel_refused:{error_code(exc)}"] += 1


# --- the terminals of a pair ----------------------------------------------------------------------


def terminal(url: str, latency: float, work: str, name: str, side: int, lane: str, jobs: list[dict[str, Any]],
             barrier: Any) -> None:
    _quiet(f"{work}/{name}.err")
    db = _open(url)
    gateway, _ = make_gateway(db, latency, f"{work}/{name}.calls")
    sale = _sale(db, gateway, name)
    tally: Counter = Counter()
    samples: list[str] = []

    def refused(what: str, exc: BaseException) -> None:
        code = error_code(exc)
        tally[f"{what}:{code}"] += 1
        if not code.startswith(EXPECTED):  # a raw error reaching the attendant: always sampled
            samples.insert(0, f"{what}: {code}{where(exc)}: {str(exc)[:300]}")
        elif len(samples) < 6:
            samples.append(f"{what}: {code}: {str(exc)[:160]}")

    barrier.wait()  # every terminal imported and connected
    for job in jobs:
        family = job["kind"] == "family"
        plate = job["plates"][side] if family else job["plate"]
        session_id = order_id = None
        barrier.wait()  # the camera reads the car in both lanes at the same instant
        try:
            session_id = _read(db, plate, lane, name)
            tally["plate_reads"] += 1
        except Exception as exc:  # noqa: BLE001
            refused("read", exc)
        barrier.wait()  # both attendants open the sale at the same instant
        if session_id is not None:
            plan = ("FAMILY" if side == 0 else "BASIC") if family else job["plans"][side]
            extra = job["plates"][1] if family and side == 0 else None
            try:
                order_id = _prepare_sale(sale, session_id, plan, job.get("form"), extra)
                tally["signed"] += 1
            except Exception as exc:  # noqa: BLE001 - OrderBusy and friends: the other lane has it
                refused("sale", exc)
        barrier.wait()  # both press Agree at the same instant
        if order_id is not None:
            try:
                result = sale.pay(order_id)
            except Exception as exc:  # noqa: BLE001
                refused("pay", exc)
                _cancel_quietly(sale, order_id, tally)
                continue
            if result.ok:
                tally["paid_and_activated"] += 1
            else:
                tally[f"pay_not_ok:{result.state}"] += 1
                if len(samples) < 6:
                    samples.append(f"pay: {result.state}: {result.message}")
                _cancel_quietly(sale, order_id, tally)
    db.dispose()
    _write(f"{work}/{name}.json", {"tally": dict(tally), "samples": samples})


# --- orders waiting in the outbox -----------------------------------------------------------------


def builder(url: str, work: str, name: str, plates: list[str], lane: str) -> None:
    """Sell each car while the gateway is unreachable: every order is pending sync, its gateway
    steps waiting in the outbox (the network came back: the replayers race for them)."""
    _quiet(f"{work}/{name}.err")
    db = _open(url)
    gateway, _ = make_gateway(db, 0.0, f"{work}/{name}.calls")
    gateway._inner.online = False
    sale = _sale(db, gateway, name)
    tally: Counter = Counter()
    for plate in plates:
        try:
            order_id = _prepare_sale(sale, _read(db, plate, lane, name), "BASIC", None, None)
            result = sale.pay(order_id)
            tally["pending_sync" if result.pending_sync else f"state:{result.state}"] += 1
        except Exception as exc:  # noqa: BLE001
            tally[f"error:{error_code(exc)}"] += 1
    db.dispose()
    _write(f"{work}/{name}.json", {"tally": dict(tally)})


def _replay_until_empty(billing: Any, tally: Counter, samples: list[str], limit_s: float) -> int:
    """replay_pending() until no row is pending (others may hold some for a while). Returns rounds."""
    from clarity_tui.payments.errors import PaymentError

    started = time.monotonic()
    rounds = 0
    while True:
        rounds += 1
        try:
            results = billing.processor.replay_pending()
        except PaymentError as exc:
            tally[f"replay_raised:{error_code(exc)}"] += 1
            results = []
        for r in results:
            tally[f"status:{r.status}"] += 1
            tally["steps_done"] += len(r.done)
            if r.error is not None:
                code = error_code(r.error)
                tally[f"error:{code}"] += 1
                if is_key_in_use(code):
                    tally["key_in_use_409"] += 1
                if len(samples) < 4:
                    samples.append(f"{code}: {str(r.error)[:160]}")
        if billing.processor.pending_count() == 0 or time.monotonic() - started > limit_s:
            return rounds


def replayer(url: str, latency: float, work: str, name: str, barrier: Any, limit_s: float) -> None:
    _quiet(f"{work}/{name}.err")
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing import BillingService

    db = _open(url)
    gateway, how = make_gateway(db, latency, f"{work}/{name}.calls")
    billing = BillingService(db, gateway, Actor.system("replayer", name))
    tally: Counter = Counter()
    samples: list[str] = []
    barrier.wait()
    began = time.time()
    rounds = _replay_until_empty(billing, tally, samples, limit_s)
    ended = time.time()
    db.dispose()
    _write(f"{work}/{name}.json", {"tally": dict(tally), "samples": samples, "began": began, "ended": ended,
                                   "rounds": rounds, "latency_knob": how})


# --- crashes ----------------------------------------------------------------------------------------


def kill_points() -> list[str]:
    """Where a crashing sale may die, the most telling first: just after the gateway charged (before
    the outbox hears of it), inside the gateway's in-flight window (the key stays marked in flight:
    the next sender gets KeyInUse), sale steps, before activation, every outbox step at every
    observer point."""
    first = ["gateway:charge", "payment.charge:after_call", "in_flight:payment_intent.create", "before_activate",
             "subscription.create:after_call", "in_flight:subscription.create", "payment.charge:before_call",
             "after_sign", "gateway:create_subscription", "after_open"]
    return first + [f"{op}:{point}" for op in STEPS for point in POINTS if f"{op}:{point}" not in first]


def crasher(url: str, latency: float, work: str, name: str, job: dict[str, Any], barrier: Any) -> None:
    _quiet(f"{work}/{name}.err")
    db = _open(url)
    gateway, _ = make_gateway(db, latency, f"{work}/{name}.calls")
    barrier.wait()
    if job["kind"] == "replay":
        _crashing_replay(db, gateway, name, job, work)
    else:
        _crashing_sale(db, gateway, name, job, work)
    db.dispose()


def _crashing_sale(db: Any, gateway: CallLog, name: str, job: dict[str, Any], work: str) -> None:
    point = job["kill_at"]
    sale = _sale(db, gateway, name)

    def observer(where: str, entry: Any) -> None:
        if f"{entry.operation}:{where}" == point:
            _die()

    sale.billing.processor.observers.append(observer)
    if point.startswith("gateway:"):
        gateway.kill_after_call = point.split(":", 1)[1]
    if point.startswith("in_flight:"):
        def in_flight(operation: str, key: str) -> None:
            if f"in_flight:{operation}" == point:
                _die()

        gateway._inner.on_in_flight = in_flight
    if point == "before_activate":
        activate = sale.activate

        def dying_activate(order_id: int) -> bool:
            _die()
            return activate(order_id)

        sale.activate = dying_activate  # type: ignore[method-assign]
    session_id = _read(db, job["plate"], job["lane"], name)
    if point == "after_open":
        sale.open_for_session(session_id)
        _die()
    order_id = _prepare_sale(sale, session_id, job["plan"], None, None)
    if point == "after_sign":
        _die()
    result = sale.pay(order_id)
    _write(f"{work}/{name}.json", {"survived": True, "state": result.state, "kill_at": point})


def _crashing_replay(db: Any, gateway: CallLog, name: str, job: dict[str, Any], work: str) -> None:
    """Replay the outbox and die at the k-th event (a random row; a random point: an observer's,
    or inside the gateway's in-flight window)."""
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing import BillingService

    billing = BillingService(db, gateway, Actor.system("replayer", name))
    seen = 0

    def observer(where: str, entry: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == job["kill_after_events"]:
            _die()

    billing.processor.observers.append(observer)
    if hasattr(gateway._inner, "on_in_flight"):
        gateway._inner.on_in_flight = lambda operation, key: observer("in_flight", None)
    tally: Counter = Counter()
    _replay_until_empty(billing, tally, [], 60.0)
    _write(f"{work}/{name}.json", {"survived": True, "tally": dict(tally), "events": seen})


def restart(url: str, work: str, name: str, limit_s: float) -> None:
    """A terminal starting again after the crashes: replay what is pending, activate paid orders.
    Steps a dead process left in flight at the gateway answer KeyInUse until its in-flight lease
    passes: the restart replays again (as the app's timer would) until nothing is pending."""
    _quiet(f"{work}/{name}.err")
    db = _open(url)
    gateway, _ = make_gateway(db, 0.0, f"{work}/{name}.calls")
    sale = _sale(db, gateway, name)
    started = time.monotonic()
    activated = sale.recover()
    rounds = 1
    while sale.billing.processor.pending_count() and time.monotonic() - started < limit_s:
        activated += sale.recover()
        rounds += 1
    pending = sale.billing.processor.pending_count()
    db.dispose()
    _write(f"{work}/{name}.json", {"activated": len(activated), "rounds": rounds, "pending_after": pending})


__all__ = ["LATENCY_ENV", "builder", "crasher", "is_key_in_use", "kill_points", "replayer", "restart", "terminal"]


if __name__ == "__main__":  # pragma: no cover - started by multiprocessing only
    raise SystemExit("started by bench/money_race.py (multiprocessing), not directly")
