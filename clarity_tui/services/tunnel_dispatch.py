"""Send a paid or entitled car to the tunnel, and open its gate (issue 18 item 5). Not a money step.

A `Wash` row (db/models/wash.py) is the car: its package and extras (codes mapped to the controller's
with `WashItem.tunnel_code`), its plate and its lane. Dispatching it tells the controller what to wash,
then opens the lane's gate. The order was paid before and stays paid whatever happens here: a controller
that is busy, faulted or offline leaves the wash `queued` with the attendant's words in `dispatch_error`,
and the retry key (`retry_queued`) sends it again. When the controller took the wash and only the gate
failed, the retry opens the gate alone: the tunnel is never told to wash one car twice.

Exactly once between terminals: a terminal claims the wash with a conditional UPDATE on
`dispatch_attempts` (only one of two racing claims matches), and only the winner talks to the
controller. While the winner's send is in flight, `dispatched_at` holds its claim (a lease, cleared on
failure, set for good on success), so a terminal that reads the wash a moment later does not send it
again; a claim older than CLAIM_LEASE (a terminal that died mid-send) may be taken over.

The controller's methods are coroutines; `ControllerCalls` runs them from a worker thread, on the app's
loop when given one (like `card_present._Attended.run`), else on a loop of its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import or_, update
from sqlmodel import col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.entitlement import EntitlementPolicy
from clarity_tui.services.permissions import Permission, require
from db.engine import Database
from db.models import AuditLog, DispatchStatus, Lane, VehicleSession, Wash, WashItem, WashKind, utcnow
from hardware.tunnel.base import TunnelController, TunnelError, TunnelWash

T = TypeVar("T")
log = logging.getLogger(__name__)

SENT, QUEUED, ALREADY_SENT = "sent", "queued", "already_sent"
WASH, GATE = "wash", "gate"  # the two steps of a dispatch: tell the tunnel what to wash, open the gate
# Longer than any controller call can take (the Modbus driver's timeouts are at most 30 s a request).
CLAIM_LEASE = dt.timedelta(minutes=3)
RETRY_HINT = "the car is queued. Press R to retry."

if TYPE_CHECKING:
    from clarity_tui.wiring import Services


class TunnelDispatchError(UserFacingError):
    """A wash that cannot be sent as it is (no such wash, a package missing from the menu)."""


@dataclass(frozen=True)
class DispatchOutcome:
    wash_id: int
    status: str  # "sent" | "queued" | "already_sent"
    message: str | None = None  # the attendant's words


class ControllerCalls:
    """Run a controller coroutine from a worker thread (never from the loop itself: it would wait on itself)."""

    def __init__(self, controller: TunnelController, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.controller = controller
        self.loop = loop

    def run(self, call: Callable[[TunnelController], Coroutine[Any, Any, T]]) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            raise RuntimeError("Tunnel dispatch waits for the controller: run it in a worker thread.")
        if self.loop is not None and self.loop.is_running():
            return asyncio.run_coroutine_threadsafe(call(self.controller), self.loop).result()
        return asyncio.run(call(self.controller))


class TunnelDispatch:
    def __init__(self, db: Database, controller: TunnelController, actor: Actor, *,
                 lane_names: dict[int, str] | None = None, loop: asyncio.AbstractEventLoop | None = None,
                 policy: EntitlementPolicy | None = None, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.calls = ControllerCalls(controller, loop)
        self.actor = actor
        self._lane_names = lane_names
        self.policy = policy or EntitlementPolicy()  # who is entitled, and the site's day (for the visit)
        self.clock = clock

    @classmethod
    def from_services(cls, services: Services, controller: TunnelController, actor: Actor, *,
                      loop: asyncio.AbstractEventLoop | None = None) -> TunnelDispatch:
        """The running terminal's dispatch: the site's entitlement rule and day, and its clock."""
        return cls(services.db, controller, actor, loop=loop, policy=services.entitlement_policy,
                   clock=services.clock)

    # --- what waits ----------------------------------------------------------------------------

    def queued(self) -> list[int]:
        """Wash ids waiting for the tunnel or queued after a failure, oldest first."""
        with self.db.read() as s:
            rows = s.exec(select(Wash.id).where(col(Wash.dispatch_status).in_([DispatchStatus.WAITING,
                                                                                DispatchStatus.QUEUED]))
                          .order_by(col(Wash.at), col(Wash.id))).all()
        return [i for i in rows if i is not None]

    def waiting_on_auto_lanes(self) -> list[int]:
        """Members' cars waiting on lanes set to auto, oldest first: what the app's auto loop sends."""
        with self.db.read() as s:
            rows = s.exec(select(Wash.id).join(Lane, col(Lane.id) == col(Wash.lane_id))
                          .where(col(Lane.auto_dispatch), Wash.kind == WashKind.MEMBER,
                                 Wash.dispatch_status == DispatchStatus.WAITING)
                          .order_by(col(Wash.at), col(Wash.id))).all()
        return [i for i in rows if i is not None]

    # --- sending ---------------------------------------------------------------------------------

    def dispatch_session(self, session_id: int) -> DispatchOutcome:
        """Send the session's car (its Wash row): the attendant's key on the session."""
        require(self.actor, Permission.SESSION_STATUS)  # before anything is read or said about the car
        with self.db.read() as s:
            wash_id = s.exec(select(Wash.id).where(Wash.session_id == session_id)).first()
        if wash_id is None:
            wash_id = self._record_visit(session_id)
        if wash_id is None:
            raise TunnelDispatchError("This car has no paid or entitled wash yet: sell it a single wash, or check "
                                      "its membership, then send it.")
        return self.dispatch(wash_id)

    def _record_visit(self, session_id: int) -> int | None:
        """A member's car that became entitled at the lane after its read (its card updated, its plan
        upgraded past the limit) has no visit yet: the key that sends it records it, as a read would."""
        from clarity_tui.services.visits import record_lane_read
        from clarity_tui.sitetime import site_zone

        with self.db.write() as s:
            session = s.get(VehicleSession, session_id)
            if session is None:
                return None
            zone = self.policy.zone or site_zone(None)
            return record_lane_read(s, session, now=self.clock(), zone=zone, policy=self.policy).wash_id

    def auto_dispatch(self, wash_id: int) -> DispatchOutcome | None:
        """Send a member's car on a lane set to auto, with no key press; None for any other wash."""
        with self.db.read() as s:
            wash = s.get(Wash, wash_id)
            lane = s.get(Lane, wash.lane_id) if wash is not None and wash.lane_id is not None else None
            auto = (wash is not None and lane is not None and lane.auto_dispatch and wash.kind == WashKind.MEMBER
                    and wash.dispatch_status == DispatchStatus.WAITING)
        return self.dispatch(wash_id) if auto else None

    def retry_queued(self) -> list[DispatchOutcome]:
        """Send the queued cars again, oldest first; stops at the first that fails (the tunnel is a queue:
        a later car must not go before an earlier one, and a faulted controller would fail them all)."""
        with self.db.read() as s:
            ids = s.exec(select(Wash.id).where(Wash.dispatch_status == DispatchStatus.QUEUED)
                         .order_by(col(Wash.at), col(Wash.id))).all()
        outcomes = []
        for wash_id in ids:
            assert wash_id is not None
            outcome = self.dispatch(wash_id)
            outcomes.append(outcome)
            if outcome.status == QUEUED:
                break
        return outcomes

    def dispatch(self, wash_id: int) -> DispatchOutcome:
        """Send the car and open its gate, once whoever presses the key: see the module docstring."""
        require(self.actor, Permission.SESSION_STATUS)
        with self.db.read() as s:
            wash = s.get(Wash, wash_id)
            if wash is None:
                raise TunnelDispatchError(f"Wash {wash_id} does not exist: refresh the board and try again.")
            if wash.dispatch_status == DispatchStatus.SENT:
                return DispatchOutcome(wash_id, ALREADY_SENT, "This car was already sent to the tunnel.")
            order = self._tunnel_wash(s, wash)
            attempts = wash.dispatch_attempts
        if not self._claim(wash_id, attempts):
            return DispatchOutcome(wash_id, ALREADY_SENT, "Another terminal is sending this car to the tunnel.")
        stage = GATE if self._wash_was_taken(wash_id) else WASH
        try:
            if stage == WASH:
                self.calls.run(lambda c: c.send_wash(order))
                stage = GATE
            self.calls.run(lambda c: c.open_gate(order.lane))
        except TunnelError as exc:
            summary = exc.summary if stage == WASH else exc.summary.replace("Tunnel controller", "Gate", 1)
            message = f"{summary}: {RETRY_HINT}"
            self._finish(wash_id, DispatchStatus.QUEUED, message, str(exc), stage)
            return DispatchOutcome(wash_id, QUEUED, message)
        except Exception:
            # A bug, not the controller: queue the car (the claim must not hold it) and let the guard report it.
            self._finish(wash_id, DispatchStatus.QUEUED, f"Tunnel dispatch failed: {RETRY_HINT}", "unexpected error",
                         stage)
            raise
        self._finish(wash_id, DispatchStatus.SENT, None, None, stage)
        return DispatchOutcome(wash_id, SENT, None)

    def _wash_was_taken(self, wash_id: int) -> bool:
        """The controller took this car's wash before and only its gate failed: the retry opens the gate
        without telling the tunnel to wash it twice. The last dispatch audit row says so (the wash table
        has no column for the stage)."""
        with self.db.read() as s:
            last = s.exec(select(AuditLog).where(AuditLog.entity == "wash", AuditLog.entity_id == str(wash_id),
                                                 col(AuditLog.action).in_(["wash.dispatched", "wash.dispatch_failed"]))
                          .order_by(col(AuditLog.id).desc())).first()
        return last is not None and last.action == "wash.dispatch_failed" and (last.after or {}).get("stage") == GATE

    def _tunnel_wash(self, s: Any, wash: Wash) -> TunnelWash:
        codes = [c for c in [wash.package_code, *(wash.extras or [])] if c]
        items = {item.code: item for item in s.exec(select(WashItem).where(col(WashItem.code).in_(codes))).all()}
        missing = [c for c in codes if c not in items]
        if missing:
            raise TunnelDispatchError(f"{', '.join(missing)} is not on the wash menu, so the tunnel cannot be told "
                                      "what to wash: ask a manager to add it (clarity-tui menu).")
        lane = self._lane_name(s, wash.lane_id)
        package = items[wash.package_code].tunnel_code if wash.package_code else 0
        extras = tuple(sorted(items[c].tunnel_code for c in wash.extras or []))
        assert wash.id is not None
        return TunnelWash(lane=lane, package_code=package, extras_codes=extras, plate=wash.plate, wash_id=wash.id)

    def _lane_name(self, s: Any, lane_id: int | None) -> str:
        if lane_id is not None and self._lane_names and lane_id in self._lane_names:
            return self._lane_names[lane_id]
        lane = s.get(Lane, lane_id) if lane_id is not None else None
        if lane is None:
            raise TunnelDispatchError("This car is not in a lane, so no gate can open for it: move it to a lane "
                                      "first.")
        return str(lane.name)

    def _claim(self, wash_id: int, attempts: int) -> bool:
        now = utcnow()
        with self.db.write() as s:
            claimed = s.exec(
                update(Wash).where(col(Wash.id) == wash_id, col(Wash.dispatch_attempts) == attempts,
                                   col(Wash.dispatch_status) != DispatchStatus.SENT,
                                   or_(col(Wash.dispatched_at).is_(None), col(Wash.dispatched_at) < now - CLAIM_LEASE))
                .values(dispatch_attempts=attempts + 1, dispatched_at=now, dispatched_by=self.actor.name)).rowcount
        return claimed == 1

    def _finish(self, wash_id: int, status: DispatchStatus, message: str | None, detail: str | None,
                stage: str) -> None:
        sent = status == DispatchStatus.SENT
        with self.db.write() as s:
            wash = s.get(Wash, wash_id)
            assert wash is not None
            before = audit.snapshot(wash, ["dispatch_status", "dispatch_attempts", "dispatch_error"])
            wash.dispatch_status = status
            wash.dispatch_error = message
            wash.dispatched_at = utcnow() if sent else None
            wash.dispatched_by = self.actor.name if sent else None
            s.add(wash)
            after = audit.snapshot(wash, ["dispatch_status", "dispatch_attempts", "dispatch_error"]) or {}
            after["stage"] = stage  # where it failed (or "gate": both steps done)
            if detail:
                after["controller"] = detail[:300]
            audit.record(s, self.actor, "wash.dispatched" if sent else "wash.dispatch_failed", "wash", wash_id,
                         before=before, after=after)
