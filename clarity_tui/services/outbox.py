"""The payments outbox: gateway calls recorded before they are made, replayed until done.

A service writes outbox rows in the same transaction as the local change that needs them.
After commit, `OutboxProcessor.run_order()` (an order's rows, in order) or `run_rows()` (rows
of no order: membership actions, refunds) executes them:
  1. claim the row with a lease (owner, expiry) and count the attempt (commit). On
     PostgreSQL the candidate row is locked `FOR UPDATE SKIP LOCKED`; on SQLite the claim is a
     conditional UPDATE under `BEGIN IMMEDIATE`. No two processes ever send the same step at once;
     a lease left by a dead process (same host, pid gone) or an expired one is taken over;
  2. call the gateway with the row's idempotency key;
  3. in one transaction: apply the result to our rows and mark the row done.
A crash anywhere in between leaves the row pending; replaying it sends the same key, so the
gateway returns the first result instead of acting twice. Gateways forget keys after a day
(Stripe: 24 hours), so a row replayed later than KEY_TRUSTED_FOR first asks the gateway whether
its earlier attempt took effect (`Recoverable.recover`, by the order key in the metadata).
Stripe also caches a 5xx under its key: such a row is marked `key_poisoned`, and its next attempt
looks the object up first and, if nothing took effect, sends under a fresh key.
Transient errors (network down, timeout, 409 key in use, 5xx) leave the row pending with a
backoff; final errors (a decline) mark the row failed.

The running app replays due rows on a timer (`App.replay_outbox`, every REPLAY_EVERY seconds);
`clarity-tui payments replay` does it once. One stuck order never blocks the others.

Past 400 lines on purpose: one job, the claim-send-record cycle and its replay, with the small row
helpers every operation shares (`existing`, `gateway_customer`, `payload_of`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from sqlalchemy import update
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.errors import GatewayRejected, PaymentError, RowGone
from clarity_tui.sitetime import stored_utc
from db.models import Customer, OrderState, Outbox, OutboxStatus, SalesOrder, utcnow

log = logging.getLogger(__name__)

NOT_RUN = "not run: an earlier step of this order failed"
# Stripe keeps an idempotency key for 24 hours; an hour's margin for clocks and slow replays.
KEY_TRUSTED_FOR = dt.timedelta(hours=23)
# A replayer holds a row this long at most: longer than a gateway call's timeout and than the
# card reader's wait for the customer (a card-present payment is one row).
LEASE = dt.timedelta(minutes=5)
CLAIM_POLL = 0.05
BACKOFF_FIRST, BACKOFF_MAX = 30, 5 * 60
# The running app looks for due rows this often.
REPLAY_EVERY = 30.0

_Row = TypeVar("_Row")


def existing(session: Session, model: type[_Row], ident: Any, *, lock: bool = False) -> _Row:
    """The row a step needs; RowGone (a final PaymentError) when it was deleted meanwhile."""
    row = session.get(model, ident, with_for_update=lock or None)
    if row is None:
        raise RowGone(f"{getattr(model, '__tablename__', model.__name__)} {ident} no longer exists: it may have "
                      "been deleted on another terminal.")
    return row


def gateway_customer(session: Session, customer_id: Any) -> str:
    """The customer's id at the gateway, which every step after `customer.ensure` needs."""
    found = existing(session, Customer, customer_id).gateway_customer_id
    if not found:
        raise GatewayRejected(f"Customer {customer_id} is not at the payment gateway yet: the order retries "
                              "from its first step.")
    return found


def payload_of(entry: Outbox) -> dict[str, Any]:
    """The row's payload (every row is written with one)."""
    return entry.payload or {}


class Operation(Protocol):
    """One kind of outbox row: how to call the gateway, and how to record the result."""

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]: ...

    def apply(self, session: Session, entry: Outbox, result: dict[str, Any]) -> None: ...


@runtime_checkable
class Recoverable(Operation, Protocol):
    """An operation that moves money or starts billing, so must never act twice: it can find the
    effect of an earlier attempt at the gateway when the idempotency key may have expired."""

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None: ...


def key_may_have_expired(entry: Outbox, now: dt.datetime) -> bool:
    """Sent before (this is a replay), and longer ago than the gateway keeps keys."""
    return entry.attempts > 1 and now - stored_utc(entry.created_at) > KEY_TRUSTED_FOR


class OrderHooks(Protocol):
    def on_synced(self, session: Session, order_id: int) -> None: ...

    def on_pending_sync(self, session: Session, order_id: int, error: PaymentError) -> None: ...

    def on_failed(self, session: Session, order_id: int, entry: Outbox, error: PaymentError) -> None: ...


def make_key(base: str, step: str, discriminator: str | None = None) -> str:
    """`<order key>:<step>[:<hash of discriminator>]`, at most 96 characters."""
    key = f"{base}:{step}"
    if discriminator:
        key += ":" + hashlib.sha256(discriminator.encode()).hexdigest()[:12]
    if len(key) > 96:
        key = f"{hashlib.sha256(base.encode()).hexdigest()[:40]}:{step}"[:96]
    return key


def enqueue(session: Session, *, order_id: int | None, operation: str, payload: dict[str, Any],
            idempotency_key: str) -> Outbox:
    """Add a pending row (in the caller's transaction). Re-enqueueing a key is safe:
    a done or pending row is returned as is; a row that never ran is re-armed."""
    row = session.exec(select(Outbox).where(Outbox.idempotency_key == idempotency_key)).first()
    if row is not None:
        if not (row.status == OutboxStatus.FAILED and row.last_error == NOT_RUN):
            return row
        # Never sent, so the key is unused at the gateway: re-add it after this attempt's new steps.
        session.delete(row)
        session.flush()
    row = Outbox(order_id=order_id, operation=operation, payload=payload, idempotency_key=idempotency_key)
    session.add(row)
    session.flush()
    return row


def order_settled(session: Session, order_id: int) -> bool:
    """True when the latest row of every operation of the order is done.

    Earlier failed rows (a declined card, then another card) are superseded by later ones."""
    latest: dict[str, Outbox] = {}
    for row in session.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(col(Outbox.id))).all():
        latest[row.operation] = row
    return bool(latest) and all(r.status == OutboxStatus.DONE for r in latest.values())


@dataclass
class RunResult:
    order_id: int | None
    status: str  # "synced" | "pending_sync" | "failed" | "idle" | "busy" (another replayer has it)
    error: PaymentError | None = None
    done: list[str] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        return None if self.error is None else str(self.error)


def owner_alive(owner: str | None) -> bool:
    """A lease owner is `host:pid:token`. On this host, a pid that is gone holds nothing."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's terminal: trust its lease until it expires
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease_is_live(row: Outbox, now: dt.datetime) -> bool:
    """Another replayer is sending this row now: its lease has not run out and its process lives."""
    return (row.claimed_until is not None and stored_utc(row.claimed_until) > now
            and owner_alive(row.claimed_by))


def backoff(attempts: int, first: float = BACKOFF_FIRST) -> dt.timedelta:
    """30 s, 1 min, 2 min, ... at most 5 minutes between tries of one row: a site back online syncs soon."""
    return dt.timedelta(seconds=min(BACKOFF_MAX, first * 2 ** max(0, attempts - 1)))


class OutboxProcessor:
    def __init__(self, db: Any, gateway: PaymentGateway, operations: dict[str, Operation],
                 hooks: OrderHooks | None = None, *, lease: dt.timedelta = LEASE,
                 backoff_first: float = BACKOFF_FIRST) -> None:
        self.db = db
        self.gateway = gateway
        self.operations = operations
        self.hooks = hooks
        self.lease = lease
        self.backoff_first = backoff_first
        # Observers called at each step (point, entry): tests use them to crash on purpose.
        self.observers: list[Callable[[str, Outbox], None]] = []

    def _observe(self, point: str, entry: Outbox) -> None:
        for fn in self.observers:
            fn(point, entry)

    # --- claiming ---------------------------------------------------------------------------
    def _claim(self, row_id: int, owner: str) -> Outbox | str:
        """Lease the row for `owner`. Returns the claimed row, or why not: "done" (not pending any
        more) or "busy" (another live replayer holds it)."""
        now = utcnow()
        with self.db.write() as s:
            q = select(Outbox).where(Outbox.id == row_id)
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            row = s.exec(q).first()
            if row is None:
                return "busy" if not self.db.is_sqlite else "done"
            if row.status != OutboxStatus.PENDING:
                return "done"
            if lease_is_live(row, now):
                return "busy"
            # Conditional on what we just read, so the claim holds even without the row lock.
            claimed = s.exec(update(Outbox).where(
                col(Outbox.id) == row_id, col(Outbox.status) == OutboxStatus.PENDING,
                col(Outbox.attempts) == row.attempts,
            ).values(claimed_by=owner, claimed_until=now + self.lease, attempts=row.attempts + 1,
                     updated_at=now)).rowcount
            if claimed != 1:
                return "busy"
            s.expire(row)
            s.refresh(row)
            return row

    def _release(self, s: Session, row: Outbox) -> None:
        row.claimed_by = row.claimed_until = None

    @staticmethod
    def _new_owner() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _next_row(self, order_id: int | None, row_ids: list[int] | None) -> Outbox | None:
        with self.db.read() as s:
            q = select(Outbox).where(Outbox.status == OutboxStatus.PENDING)
            if row_ids is not None:
                q = q.where(col(Outbox.id).in_(row_ids))
            else:
                q = q.where(Outbox.order_id == order_id)
            return s.exec(q.order_by(col(Outbox.id))).first()

    # --- running --------------------------------------------------------------------------------
    def run_order(self, order_id: int | None, *, wait: float = 0.0) -> RunResult:
        """Execute the order's pending rows in order; stop at the first error. A row another
        replayer is sending is waited for up to `wait` seconds, then left to it."""
        if order_id is None:
            with self.db.read() as s:
                ids = list(s.exec(select(Outbox.id).where(Outbox.status == OutboxStatus.PENDING,
                                                          col(Outbox.order_id).is_(None))).all())
            return self.run_rows(ids, wait=wait)
        return self._run(order_id, None, wait)

    def run_rows(self, row_ids: list[int], *, wait: float = 0.0) -> RunResult:
        """Execute these rows (of no order), oldest first; stop at the first error."""
        return self._run(None, list(row_ids), wait)

    def _run(self, order_id: int | None, row_ids: list[int] | None, wait: float) -> RunResult:
        result = RunResult(order_id, "idle")
        owner = self._new_owner()
        deadline = time.monotonic() + wait
        while True:
            entry = self._next_row(order_id, row_ids)
            if entry is None:
                break
            assert entry.id is not None  # a stored row
            claimed = self._claim(entry.id, owner)
            if claimed == "done":
                continue
            if isinstance(claimed, str):  # "busy"
                if time.monotonic() < deadline:
                    time.sleep(CLAIM_POLL)  # product code, not a test: another terminal is sending it
                    continue
                result.status = "busy"
                return result
            try:
                error = self._send(claimed, owner)
            except BaseException:
                self._release_after_crash(entry.id, owner)  # the row stays pending for the next replay
                raise
            if error is not None:
                return self._on_error(result, claimed, error, row_ids)
            result.done.append(claimed.operation)
            self._observe("after_done", claimed)
        if order_id is not None and self.hooks is not None:
            with self.db.write() as s:
                if order_settled(s, order_id):
                    self.hooks.on_synced(s, order_id)
        result.status = "synced" if result.done else "idle"
        return result

    def _send(self, entry: Outbox, owner: str) -> PaymentError | None:
        """Call the gateway for a claimed row and record the result with the row done."""
        op = self.operations.get(entry.operation)
        if op is None:
            raise KeyError(f"no outbox operation registered for {entry.operation!r}")
        self._observe("before_call", entry)
        try:
            outcome = self._call(op, entry)
        except PaymentError as exc:
            return exc
        self._observe("after_call", entry)
        with self.db.write() as s:
            row = s.get(Outbox, entry.id, with_for_update=True)
            if row.status == OutboxStatus.PENDING and row.claimed_by == owner:
                op.apply(s, row, outcome)
                row.status, row.result, row.last_error = OutboxStatus.DONE, outcome, None
                row.done_at = row.updated_at = utcnow()
                row.key_poisoned, row.next_attempt_at = False, None
                self._release(s, row)
                s.add(row)
            else:
                # The gateway acted, but the row was settled meanwhile (its order cancelled): the
                # result is kept and handed to the hooks, never dropped with the money in it.
                log.error("outbox %s %s: the gateway acted after the row was %s", entry.operation,
                          entry.idempotency_key, row.status)
                row.result = outcome
                s.add(row)
                if self.hooks is not None and hasattr(self.hooks, "on_late_result"):
                    self.hooks.on_late_result(s, row, outcome)
        return None

    def _release_after_crash(self, row_id: int, owner: str) -> None:
        try:
            with self.db.write() as s:
                s.exec(update(Outbox).where(col(Outbox.id) == row_id, col(Outbox.claimed_by) == owner)
                       .values(claimed_by=None, claimed_until=None))
        except Exception:  # noqa: BLE001 - the database may be what failed: the lease then expires
            log.warning("outbox row %s: could not release its claim", row_id)

    def _call(self, op: Operation, entry: Outbox) -> dict[str, Any]:
        """The gateway call, or what an earlier attempt already did there."""
        unsure = entry.key_poisoned or key_may_have_expired(entry, utcnow())
        if unsure and isinstance(op, Recoverable):
            found = op.recover(self.db, self.gateway, entry)
            if found is not None:
                log.warning("outbox %s %s: the earlier attempt took effect; recorded, not repeated",
                            entry.operation, entry.idempotency_key)
                return found
        if entry.key_poisoned:
            # The gateway answers this key with its cached 5xx for ever, and nothing took effect:
            # a fresh key (recorded before it is used) is the only way forward.
            entry = self._rotate_key(entry)
        return op.execute(self.db, self.gateway, entry)

    def _rotate_key(self, entry: Outbox) -> Outbox:
        with self.db.write() as s:
            row = s.get(Outbox, entry.id)
            payload = dict(row.payload or {})
            payload["prior_keys"] = [*payload.get("prior_keys", []), row.idempotency_key]
            row.payload = payload
            row.idempotency_key = make_key(payload["prior_keys"][0], f"retry{len(payload['prior_keys'])}")
            row.key_poisoned = False
            s.add(row)
            s.flush()
            s.refresh(row)
            return row

    def _on_error(self, result: RunResult, entry: Outbox, exc: PaymentError,
                  chain: list[int] | None = None) -> RunResult:
        result.error = exc
        with self.db.write() as s:
            row = s.get(Outbox, entry.id)
            row.last_error, row.updated_at = str(exc), utcnow()
            self._release(s, row)
            if exc.transient:
                result.status = "pending_sync"
                row.next_attempt_at = utcnow() + backoff(row.attempts, self.backoff_first)
                row.key_poisoned = row.key_poisoned or bool(getattr(exc, "cached_under_key", False))
                if entry.order_id is not None and self.hooks is not None:
                    self.hooks.on_pending_sync(s, entry.order_id, exc)
            else:
                result.status = "failed"
                row.status = OutboxStatus.FAILED
                later_q = select(Outbox).where(col(Outbox.id) > entry.id, Outbox.status == OutboxStatus.PENDING)
                later_q = (later_q.where(Outbox.order_id == entry.order_id) if entry.order_id is not None
                           else later_q.where(col(Outbox.id).in_(chain or [])))
                for other in s.exec(later_q).all():
                    other.status, other.last_error = OutboxStatus.FAILED, NOT_RUN
                    s.add(other)
                if self.hooks is not None:
                    if entry.order_id is not None:
                        self.hooks.on_failed(s, entry.order_id, row, exc)
                    elif hasattr(self.hooks, "on_row_failed"):
                        self.hooks.on_row_failed(s, row, exc)
            s.add(row)
        log.info("outbox %s %s: %s", entry.operation, result.status, exc.code)
        return result

    def replay_pending(self, *, due_only: bool = False) -> list[RunResult]:
        """Replay every pending row: each order in turn, then each chain of rows of no order (a
        card update's steps). With `due_only` (the app's timer) a unit whose first pending row is
        still in its backoff waits. A stuck unit (busy at another replayer, or failing) is skipped,
        never waited for, so one stuck order never blocks the others."""
        now = utcnow()
        units: dict[tuple[str, Any], list[Outbox]] = {}
        with self.db.read() as s:
            for row in s.exec(select(Outbox).where(Outbox.status == OutboxStatus.PENDING).order_by(col(Outbox.id))):
                unit = (("order", row.order_id) if row.order_id is not None
                        else ("chain", (row.payload or {}).get("chain") or f"row-{row.id}"))
                units.setdefault(unit, []).append(row)
            # Orders whose last step finished but which were not marked complete (a crash in between).
            for order_id in s.exec(select(Outbox.order_id).join(SalesOrder, col(SalesOrder.id) == col(Outbox.order_id)).where(
                    col(SalesOrder.state).in_([OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC]))).all():
                units.setdefault(("order", order_id), [])
        results = []
        for (kind, ident), rows in sorted(units.items(), key=lambda u: (u[0][0] != "order", str(u[0][1]).zfill(12))):
            first = rows[0] if rows else None
            if due_only and first is not None and first.next_attempt_at is not None \
                    and stored_utc(first.next_attempt_at) > now:
                continue
            r = self.run_order(ident) if kind == "order" else self.run_rows([row.id for row in rows if row.id is not None])
            if r.status != "idle" or r.error is not None:
                results.append(r)
        return results

    def pending_count(self) -> int:
        with self.db.read() as s:
            return len(s.exec(select(Outbox.id).where(Outbox.status == OutboxStatus.PENDING)).all())
