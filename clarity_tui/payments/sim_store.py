"""The simulated gateway's store and its Stripe-like idempotency, with fault injection.

The base of SimulatedGateway (split from simulated.py: this is the plumbing every simulated call goes
through; the gateway's operations stay in simulated.py). Objects and idempotency records live in our own
database (`sim_gateway_object`, `sim_gateway_request`), so every process on the site sees the same gateway.

Simulated time (issue 13): one clock row (`clock_sim`, kind `test_clock`, data {"frozen_time": epoch}), like
a Stripe test clock, that only `advance_clock` (payments/sim_clock.py) moves. `clock_now()` is that time, and
never earlier than the real time (a clock nobody advanced is the real now). Every date the simulated gateway
reasons with (trial ends, periods, retries, pause ends, events' `created`, card expiry) is this clock's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.sim_events import emit, previous_attributes, render
from clarity_tui.sitetime import stored_utc
from db.models import SimGatewayObject, SimGatewayRequest, utcnow

# The simulated cards: reader tokens `pm_sim_<outcome>_...` and Stripe's documented test numbers.
OUTCOMES = ("ok", "generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc", "charge_decline")
SAVE_DECLINES = {"generic_decline", "insufficient_funds", "expired_card", "incorrect_cvc"}
TEST_CARDS = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000341": "charge_decline",
}


def sim_token(outcome: str = "ok") -> str:
    """A simulated reader's payment method id that leads to `outcome`."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown simulated card outcome {outcome!r}; one of {OUTCOMES}")
    return f"pm_sim_{outcome}_{secrets.token_hex(6)}"


def outcome_of_token(token: str) -> str:
    rest = token.removeprefix("pm_sim_")
    for outcome in sorted(OUTCOMES, key=len, reverse=True):
        if rest.startswith(outcome):
            return outcome
    return "ok"


# Like Stripe, an idempotency key is forgotten after a day: the same key then acts again.
IDEMPOTENCY_KEY_TTL = dt.timedelta(hours=24)
FAULT_KIND = "_fault"  # SimGatewayObject rows that hold injected faults (every process sees them)
CLOCK_ID, CLOCK_KIND = "clock_sim", "test_clock"  # the simulated clock's row


def to_utc(epoch: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC)


class _Declined(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


class SimulatedStore:
    """Idempotent calls (`_idempotent`), fault injection, and the object store (`_put`, `_get`)."""

    db: Any
    online: bool
    call_latency: float
    in_flight_lease: dt.timedelta
    on_in_flight: Callable[[str, str], None] | None

    # --- plumbing ---------------------------------------------------------------------
    def clock_now(self) -> dt.datetime:
        """The simulated gateway's time (UTC): the billing clock's, or the real now if that is later."""
        with self.db.read() as s:
            return self._now(s)

    @staticmethod
    def _now(s: Session) -> dt.datetime:
        real = dt.datetime.now(dt.UTC).replace(microsecond=0)
        row = s.get(SimGatewayObject, CLOCK_ID)
        frozen = int((row.data or {}).get("frozen_time") or 0) if row is not None and row.kind == CLOCK_KIND else 0
        return max(real, to_utc(frozen)) if frozen else real

    def _epoch(self, s: Session) -> int:
        return int(self._now(s).timestamp())

    def _emit(self, s: Session, type_: str, kind: str, obj_id: str, data: dict[str, Any], *,
              before: dict[str, Any] | None = None, when: int | None = None) -> None:
        """Queue the Stripe event `type_` about this object (stored when `s` commits; see sim_events).
        `before`: the object's data before the change, for data.previous_attributes."""
        obj = render(s, kind, obj_id, data)
        previous = previous_attributes(render(s, kind, obj_id, before), obj) if before is not None else None
        emit(s, type_, obj, created=self._epoch(s) if when is None else when, previous=previous)

    def _check_online(self) -> None:
        if not self.online:
            raise E.GatewayUnavailable(
                "Cannot reach the payment gateway (simulated network down). The order is kept and will sync "
                "when the network is back."
            )

    # Stripe's documented behaviour, followed here (docs.stripe.com/api/idempotent_requests):
    #   "Stripe's idempotency works by saving the resulting status code and body of the first request
    #   made for any given idempotency key, regardless of whether it succeeds or fails. Subsequent
    #   requests with the same key return the same result, including 500 errors."
    #   "You can remove keys from the system automatically after they're at least 24 hours old."
    #   "The idempotency layer compares incoming parameters to those of the original request and
    #   errors if they're not the same to prevent accidental misuse."
    #   "We save results only after the execution of an endpoint begins. If incoming parameters fail
    #   validation, or the request conflicts with another request that's executing concurrently, we
    #   don't save the idempotent result because no API endpoint initiates the execution."
    # and the API's status table: "409 Conflict: The request conflicts with another request (perhaps
    # due to using the same idempotent key)" (docs.stripe.com/api/errors), with code idempotency_key_in_use.
    def _idempotent(self, operation: str, key: str, params: dict[str, Any], run) -> Any:
        """Run `run(session)` once per key; replay its stored response (decline, 5xx) afterwards.

        The key is marked in flight in its own committed transaction before anything runs, so another
        process that sends the same key meanwhile gets KeyInUse. The effect and the stored answer are
        then written in one transaction: a process that dies in between leaves only the marker, which
        another caller takes over once `in_flight_lease` has passed."""
        self._check_online()
        digest = hashlib.sha256(json.dumps([operation, params], sort_keys=True, default=str).encode()).hexdigest()
        owner = f"{os.getpid()}:{secrets.token_hex(6)}"
        stored = self._claim(operation, key, digest, owner)
        if stored is not None:
            return self._answer(stored, replayed=True)
        try:
            fault = self._take_fault(operation)
            if self.on_in_flight is not None:
                self.on_in_flight(operation, key)
            delay = self.call_latency + float((fault or {}).get("delay") or 0)
            if delay > 0:
                time.sleep(delay)  # the simulated gateway at work: the key is in flight meanwhile
            response = self._execute(key, owner, fault, run)
        except BaseException:
            self._release(key, owner)  # nothing was stored: the key may be sent again at once
            raise
        if response is None:  # our lease ran out and another process took the key over
            return self._answer(self._stored(key), replayed=True)
        if fault and fault.get("drop"):
            raise E.GatewayUnavailable(
                "The payment gateway stopped answering (simulated network drop; the request may have gone "
                "through). The order is kept and will sync when the network is back."
            )
        return self._answer(response, replayed=False)

    @staticmethod
    def _marker(owner: str, now: dt.datetime) -> dict[str, Any]:
        return {"in_flight": owner, "since": now.isoformat()}

    def _key_in_use(self) -> E.KeyInUse:
        return E.KeyInUse("The payment gateway is still working on this step for another terminal; it will be "
                          "checked again shortly.")

    def _claim(self, operation: str, key: str, digest: str, owner: str) -> dict[str, Any] | None:
        """Mark the key in flight for `owner` (None), or return the answer stored under it."""
        for _ in range(3):
            try:
                with self.db.write() as s:
                    now = utcnow()
                    # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers): a caller
                    # taking over a stale marker waits for the holder's answer instead of overwriting it.
                    prior = s.get(SimGatewayRequest, key, with_for_update=True)
                    if prior is not None and now - stored_utc(prior.created_at) > IDEMPOTENCY_KEY_TTL:
                        s.delete(prior)  # pruned, as Stripe does
                        s.flush()
                        prior = None
                    if prior is None:
                        s.add(SimGatewayRequest(idempotency_key=key, operation=operation, request_hash=digest,
                                                response=self._marker(owner, now)))
                        return None
                    if prior.request_hash != digest:
                        raise E.IdempotencyConflict(
                            "The gateway saw this step before with other details; it was not repeated. "
                            "Ask a technician."
                        )
                    response = dict(prior.response or {})
                    if "in_flight" not in response:
                        return response
                    since = stored_utc(dt.datetime.fromisoformat(response["since"]))
                    if now - since < self.in_flight_lease:
                        raise self._key_in_use()
                    # Its process died before storing an answer (effect and answer commit together):
                    # nothing happened under this key, so take it over.
                    prior.response = self._marker(owner, now)
                    s.add(prior)
                    return None
            except IntegrityError:  # another process marked the same key first: look again
                continue
        raise self._key_in_use()

    def _execute(self, key: str, owner: str, fault: dict[str, Any] | None, run) -> dict[str, Any] | None:
        """Run the operation and store its answer under the key, in one transaction (None: key lost)."""
        status = int(fault["status"]) if fault and fault.get("status") else None
        with self.db.write() as s:
            row = s.get(SimGatewayRequest, key, with_for_update=True)
            if row is None or (row.response or {}).get("in_flight") != owner:
                return None
            if status is not None and not (fault or {}).get("after_effect"):
                response: dict[str, Any] = {"server_error": status}
            else:
                try:
                    response = {"ok": run(s)}
                except _Declined as d:
                    response = {"declined": d.code}
                if status is not None:  # it took effect, yet the gateway answered 5xx (and stored that)
                    response = {"server_error": status}
            row.response = response
            s.add(row)
            return response

    def _release(self, key: str, owner: str) -> None:
        with self.db.write() as s:
            row = s.get(SimGatewayRequest, key)
            if row is not None and (row.response or {}).get("in_flight") == owner:
                s.delete(row)

    def _stored(self, key: str) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.get(SimGatewayRequest, key)
            response = dict(row.response or {}) if row is not None else {}
        if "in_flight" in response or not response:
            raise self._key_in_use()
        return response

    def _answer(self, response: dict[str, Any], *, replayed: bool) -> Any:
        if "declined" in response:
            raise E.declined(response["declined"])
        if "server_error" in response:
            raise E.GatewayServerError(
                "The payment gateway had a problem (simulated server error); the order will retry shortly.",
                status=int(response["server_error"]), replayed=replayed,
            )
        return response["ok"]

    # --- fault injection (tests, benchmarks, technicians' drills) -----------------------------
    def inject_fault(self, operation: str, *, status: int | None = None, times: int = 1, drop: bool = False,
                     after_effect: bool = False, delay: float = 0.0) -> str:
        """Make the next `times` calls of `operation` misbehave: the name `_idempotent` is given
        ("payment_intent.create", "refund.create", "customer.create", ...), or "*" for any.

        The fault is a row in the simulated gateway's store, so a call from any process on this database
        takes it. Each call that takes one:
        - `status` (5xx): answers that status, stored under its key like Stripe does (the same key replays
          the same GatewayServerError, a new key acts); with `after_effect=True` the operation took effect
          first (a charge made, then a 500 answered);
        - `drop`: takes effect and stores its answer, but the answer is lost on the way back: the caller
          gets GatewayUnavailable, and the same key afterwards returns the original object;
        - `delay` (seconds): the call takes that much longer, inside its in-flight window.
        Returns the fault's id (for `clear_faults`)."""
        if operation != "*" and "." not in operation:
            raise ValueError(f"{operation!r} is not a simulated gateway operation (such as 'payment_intent.create')")
        if status is not None and not 500 <= status <= 599:
            raise ValueError("status must be a 5xx (a 4xx is a decision about the request, not a fault)")
        if times < 1 or (status is None and not drop and delay <= 0):
            raise ValueError("a fault needs times >= 1 and one of status, drop or delay")
        fault_id = self._new_id("fault")
        with self.db.write() as s:
            self._put(s, fault_id, FAULT_KIND, {"operation": operation, "status": status, "times": times,
                                                 "drop": drop, "after_effect": after_effect, "delay": delay})
        return fault_id

    def clear_faults(self, fault_id: str | None = None) -> None:
        with self.db.write() as s:
            for row in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == FAULT_KIND)).all():
                if fault_id is None or row.id == fault_id:
                    s.delete(row)

    def _take_fault(self, operation: str) -> dict[str, Any] | None:
        with self.db.read() as s:  # the common case: no fault at all, and no write for it
            if s.exec(select(SimGatewayObject.id).where(SimGatewayObject.kind == FAULT_KIND).limit(1)).first() is None:
                return None
        with self.db.write() as s:
            # Locked, so a fault cleared by another process meanwhile is skipped, not updated.
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == FAULT_KIND)
                          .order_by(col(SimGatewayObject.created_at), col(SimGatewayObject.id)).with_for_update()).all()
            for row in rows:
                data = dict(row.data or {})
                if data.get("operation") not in (operation, "*") or int(data.get("times") or 0) < 1:
                    continue
                data["times"] = int(data["times"]) - 1
                if data["times"] < 1:
                    s.delete(row)
                else:
                    row.data = data
                    s.add(row)
                return data
        return None

    @staticmethod
    def _new_id(prefix: str) -> str:
        return f"{prefix}_sim_{secrets.token_hex(8)}"

    @staticmethod
    def _put(s: Session, obj_id: str, kind: str, data: dict[str, Any], customer: str | None = None) -> dict:
        row = s.get(SimGatewayObject, obj_id)
        # A copy: a caller that changes its dict and puts it again must still be seen as a change.
        data = json.loads(json.dumps(data))
        if row is None:
            row = SimGatewayObject(id=obj_id, kind=kind, customer=customer, data=data)
        else:
            row.data, row.updated_at = data, utcnow()
            if customer is not None:
                row.customer = customer
        s.add(row)
        return data

    @staticmethod
    def _get(s: Session, obj_id: str, kind: str, *, lock: bool = False) -> dict[str, Any]:
        """The object's data; `lock` when the caller changes it from what it read (two refunds of one
        payment at once must both count, as at Stripe)."""
        row = s.get(SimGatewayObject, obj_id, with_for_update=lock or None)
        if row is None or row.kind != kind:
            raise E.GatewayRejected(f"The payment gateway has no {kind.replace('_', ' ')} {obj_id}.")
        return dict(row.data or {})
