"""The payments outbox: gateway calls recorded before they are made, replayed until done.

A service writes outbox rows in the same transaction as the order step that
needs them. After commit, `OutboxProcessor.run_order()` executes them in order:
  1. count the attempt (commit),
  2. call the gateway with the row's idempotency key,
  3. in one transaction: apply the result to our rows and mark the row done.
A crash anywhere in between leaves the row pending; replaying it sends the same
key, so the gateway returns the first result instead of acting twice. Gateways forget
keys after a day (Stripe: 24 hours), so a row replayed later than KEY_TRUSTED_FOR first
asks the gateway whether its earlier attempt took effect (`Operation.recover`, by the
order key in the metadata) and records that result instead of calling again.
Transient errors (network down, timeout) leave the row pending and the order
"pending sync"; final errors (a decline) mark the row failed.

The app calls `replay_pending()` at start-up and periodically (see
`start_replay_thread()`), so orders sync when the network returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlmodel import Session, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.errors import PaymentError
from clarity_tui.sitetime import stored_utc
from db.models import OrderState, Outbox, OutboxStatus, SalesOrder, utcnow

log = logging.getLogger(__name__)

NOT_RUN = "not run: an earlier step of this order failed"
# Stripe keeps an idempotency key for 24 hours; an hour's margin for clocks and slow replays.
KEY_TRUSTED_FOR = dt.timedelta(hours=23)


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
    for row in session.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(Outbox.id)).all():
        latest[row.operation] = row
    return bool(latest) and all(r.status == OutboxStatus.DONE for r in latest.values())


@dataclass
class RunResult:
    order_id: int | None
    status: str  # "synced" | "pending_sync" | "failed" | "idle"
    error: PaymentError | None = None
    done: list[str] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        return None if self.error is None else str(self.error)


class OutboxProcessor:
    def __init__(self, db: Any, gateway: PaymentGateway, operations: dict[str, Operation],
                 hooks: OrderHooks | None = None) -> None:
        self.db = db
        self.gateway = gateway
        self.operations = operations
        self.hooks = hooks
        # Observers called at each step (point, entry): tests use them to crash on purpose.
        self.observers: list[Callable[[str, Outbox], None]] = []
        self._lock = threading.Lock()

    def _observe(self, point: str, entry: Outbox) -> None:
        for fn in self.observers:
            fn(point, entry)

    def _pending(self, order_id: int | None) -> list[Outbox]:
        with self.db.read() as s:
            q = select(Outbox).where(Outbox.status == OutboxStatus.PENDING)
            q = q.where(Outbox.order_id == order_id) if order_id is not None else q.where(Outbox.order_id.is_(None))
            return list(s.exec(q.order_by(Outbox.id)).all())

    def run_order(self, order_id: int | None) -> RunResult:
        """Execute the order's pending rows in order; stop at the first error."""
        with self._lock:
            return self._run_order(order_id)

    def _run_order(self, order_id: int | None) -> RunResult:
        result = RunResult(order_id, "idle")
        for entry in self._pending(order_id):
            op = self.operations.get(entry.operation)
            if op is None:
                raise KeyError(f"no outbox operation registered for {entry.operation!r}")
            with self.db.write() as s:
                row = s.get(Outbox, entry.id)
                if row is None or row.status != OutboxStatus.PENDING:
                    continue  # another terminal finished it meanwhile
                row.attempts += 1
                row.updated_at = utcnow()
                s.add(row)
            entry.attempts += 1
            self._observe("before_call", entry)
            try:
                outcome = None
                if isinstance(op, Recoverable) and key_may_have_expired(entry, utcnow()):
                    outcome = op.recover(self.db, self.gateway, entry)
                    if outcome is not None:
                        log.warning("outbox %s %s: the earlier attempt took effect; recorded, not repeated",
                                    entry.operation, entry.idempotency_key)
                if outcome is None:
                    outcome = op.execute(self.db, self.gateway, entry)
            except PaymentError as exc:
                return self._on_error(result, entry, exc)
            self._observe("after_call", entry)
            with self.db.write() as s:
                row = s.get(Outbox, entry.id)
                if row.status == OutboxStatus.PENDING:
                    op.apply(s, row, outcome)
                    row.status, row.result, row.last_error = OutboxStatus.DONE, outcome, None
                    row.done_at = row.updated_at = utcnow()
                    s.add(row)
            result.done.append(entry.operation)
            self._observe("after_done", entry)
        if order_id is not None and self.hooks is not None:
            with self.db.write() as s:
                if order_settled(s, order_id):
                    self.hooks.on_synced(s, order_id)
        result.status = "synced" if result.done else "idle"
        return result

    def _on_error(self, result: RunResult, entry: Outbox, exc: PaymentError) -> RunResult:
        result.error = exc
        with self.db.write() as s:
            row = s.get(Outbox, entry.id)
            row.last_error, row.updated_at = str(exc), utcnow()
            if exc.transient:
                result.status = "pending_sync"
                if entry.order_id is not None and self.hooks is not None:
                    self.hooks.on_pending_sync(s, entry.order_id, exc)
            else:
                result.status = "failed"
                row.status = OutboxStatus.FAILED
                later = s.exec(select(Outbox).where(Outbox.order_id == entry.order_id, Outbox.id > entry.id,
                                                    Outbox.status == OutboxStatus.PENDING)).all()
                for other in later if entry.order_id is not None else []:
                    other.status, other.last_error = OutboxStatus.FAILED, NOT_RUN
                    s.add(other)
                if entry.order_id is not None and self.hooks is not None:
                    self.hooks.on_failed(s, entry.order_id, row, exc)
            s.add(row)
        log.info("outbox %s %s: %s", entry.operation, result.status, exc.code)
        return result

    def replay_pending(self) -> list[RunResult]:
        """Replay every pending row (start-up, and whenever the network may be back)."""
        with self.db.read() as s:
            wanted = set(s.exec(select(Outbox.order_id).where(Outbox.status == OutboxStatus.PENDING)).all())
            # Orders whose last step finished but which were not marked complete (a crash in between).
            wanted |= set(s.exec(select(Outbox.order_id).join(SalesOrder, SalesOrder.id == Outbox.order_id).where(
                SalesOrder.state.in_([OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC]))).all())
            orders = sorted(wanted, key=lambda x: (x is None, x or 0))
        results = []
        for order_id in orders:
            r = self.run_order(order_id)
            if r.status == "idle" and r.error is None:
                continue
            results.append(r)
            if r.error is not None and r.error.transient:
                break  # still offline: try again next time
        return results

    def pending_count(self) -> int:
        with self.db.read() as s:
            return len(s.exec(select(Outbox.id).where(Outbox.status == OutboxStatus.PENDING)).all())


def start_replay_thread(processor: OutboxProcessor, interval: float = 30.0) -> Callable[[], None]:
    """Replay now and every `interval` seconds in a daemon thread; returns a stop function.

    The app can call this at start-up (or run `processor.replay_pending` from a
    Textual `set_interval` + thread worker instead)."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                processor.replay_pending()
            except Exception:  # never let a replay problem kill the thread
                log.exception("outbox replay failed")
            if stop.wait(interval):
                return

    threading.Thread(target=loop, name="outbox-replay", daemon=True).start()
    return stop.set
