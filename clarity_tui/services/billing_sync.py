"""The billing sync (issue 13): the gateway's events in, without a public URL.

One leader per site database pulls the gateway's events with the Events API (a cursor, `types[]`,
oldest first) and hands each to `handle_event`, which the optional webhook receiver feeds too:

- an event id already in `gateway_event` is a no-op (redelivery, or the webhook and the sync both);
- the change is reconciled from the object retrieved fresh (billing_reconcile), never the event body;
- an event for an object we do not know is recorded as `unknown_object` and skipped;
- the event row, its effects and the cursor commit together, so a crash repeats at most one event,
  which the event row then makes a no-op.

With no cursor, or one the gateway no longer knows (Stripe keeps events 30 days), the sync reconciles
every membership whose `paid_through` is due from its subscription, then starts from the newest event.
When the last successful pass began longer ago than the gateway keeps events, by the gateway's clock (the
simulated gateway's own, which `payments clock advance` moves on; Stripe's is real time), events made since
may be gone although the cursor is still accepted, above all "from the oldest" (the cursor of a gateway
that had no events yet), which never expires by itself: the sync then reconciles every due membership and
handles the events still kept, from the oldest.

Leadership: a PostgreSQL advisory lock held for the pass; on SQLite a lease in the `billing_sync` row
(a conditional UPDATE under BEGIN IMMEDIATE; a dead holder's lease is taken over, as the outbox does).
The row names the leader; every cursor move checks that it still does (and renews the SQLite lease), so a
pass that stalled until another terminal took over (its lease ran out, its lock's connection died) stops
there, and never moves the cursor back.

Fresh means fresher than what is stored: a handler notes the membership's `version` before it retrieves
the subscription, and writes only if the version is unchanged once the row is locked; otherwise another
handler (the webhook, while the sync was slow) stored a change meanwhile, maybe from a newer object, and
the subscription is retrieved again.

A gateway outage leaves every membership as it was: entitlement then runs out with the grace days,
and the board's banner says why (see entitlement.py, board_view.SyncHealth).

Past 400 lines on purpose: one job, the sync pass (events, then reconcile) and the leadership lease
that guards it; they share one state row and change together.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator

from sqlalchemy import or_, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from clarity_tui.payments.errors import PaymentError
from clarity_tui.payments.lifecycle import (
    EVENT_RETENTION,
    HANDLED_EVENT_TYPES,
    CursorExpired,
    GatewayEvent,
    UnknownObject,
)
from clarity_tui.services import audit
from clarity_tui.services.billing_reconcile import (
    SYNC_ACTOR,
    invoices_to_record,
    membership_for_subscription,
    order_for_payment,
    reconcile_card,
    reconcile_subscription,
    record_dispute,
    record_invoice,
    record_refunds,
)
from clarity_tui.services.membership_rules import CURRENT_STATUSES
from clarity_tui.services.outbox import owner_alive
from db.models import Membership, MembershipStatus, utcnow
from db.models_billing import BillingSync as SyncRow
from db.models_billing import GatewayEvent as EventRow

log = logging.getLogger(__name__)

SYNC_NAME = "events"
LEASE = dt.timedelta(minutes=2)
# Arbitrary, fixed: the advisory lock id every terminal on a PostgreSQL site database agrees on.
PG_LOCK_ID = 0x436C_6172_5379  # "ClarSy"
PAGE_SIZE = 100
# The cursor of a gateway that had no events yet when the sync started: every event it makes is new.
FROM_THE_OLDEST = ""
MAX_PAGES = 50  # per pass: a long backlog is worked off over several passes, never one endless call
# A second row of the table: its `last_success_at` is the gateway's time when the last successful pass began
# (the events row's own is real time, for the sync lag and the board's banner).
GATEWAY_CLOCK_ROW = "events@gateway"
# A pass must begin within the gateway's event window after the last successful one began, less a margin
# for events the gateway made just before that pass listed them.
WINDOW = EVENT_RETENTION - dt.timedelta(hours=1)
OUTGROWN = "no successful sync within the gateway's 30 days of events"


class LostLeadership(Exception):
    """Another terminal took over the sync while this pass ran: this pass stops where it is."""


class _Stale(Exception):
    """The membership changed after its subscription was retrieved: retrieve it again."""


STALE_RETRIES = 5


@dataclass
class SyncReport:
    leader: bool = True
    events: Counter = field(default_factory=Counter)  # outcome -> count
    reconciled_due: int = 0
    fallback: str | None = None  # why the due memberships were reconciled (no cursor / expired)
    error: str | None = None
    cursor: str | None = None

    @property
    def ok(self) -> bool:
        return self.leader and self.error is None


class BillingSync:
    def __init__(self, db: Any, gateway: Any, settings: Any, *, terminal: str = "") -> None:
        self.db = db
        self.gateway = gateway
        self.zone = settings.site.zone
        self.terminal = terminal or socket.gethostname()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._began: dt.datetime | None = None  # when the current pass began, by the gateway's clock

    # --- one pass ---------------------------------------------------------------------------------

    def run_once(self) -> SyncReport:
        """One pass as leader; a terminal that is not the leader does nothing and says so. Never raises for
        the gateway or the database: the report carries the error (and the sync row, when it can be written).
        A database that refuses a write (full, read-only, locked past the busy timeout) rolls back that
        event's transaction whole; the next pass carries on from the cursor."""
        report = SyncReport()
        try:
            with self._leadership() as leader:
                if not leader:
                    return SyncReport(leader=False)
                self._mark(last_attempt_at=utcnow())
                began = self._began = self.gateway_now()
                try:
                    self._pull(report)
                except LostLeadership as exc:
                    # The row is the new leader's now: its errors and successes are its own to record.
                    report.error = str(exc)
                    log.warning("billing sync: %s", exc)
                    return report
                except PaymentError as exc:
                    report.error = str(exc)
                    self._mark(last_error=report.error)
                    log.info("billing sync failed: %s", exc)  # the report (and the board banner) carry it
                    return report
                self._succeeded(began)
                return report
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            report.error = f"The database refused the billing sync's write ({reason})."
            log.warning("billing sync: %s", report.error, exc_info=True)
            try:
                self._mark(last_error=report.error)
            except SQLAlchemyError:
                pass  # the same database: the report still says it
            return report

    def _pull(self, report: SyncReport) -> None:
        began = self._began or self.gateway_now()
        cursor = self._row().cursor
        if cursor is None:
            self._start_over(report, "no cursor yet")
            return
        since = self._last_success_on_gateway_clock()
        if since is not None and began - since > WINDOW:
            # What is due is reconciled from the objects; the events the gateway still keeps are then handled
            # from the oldest, as they may carry what the objects no longer show (an invoice paid on a retry
            # before the latest one, a refund, a card update, a cancel of a member who is not due).
            self._start_over(report, OUTGROWN, newest=False)
            cursor = FROM_THE_OLDEST
        for _ in range(MAX_PAGES):
            try:
                page = self.gateway.list_events(after=cursor or None, types=HANDLED_EVENT_TYPES, limit=PAGE_SIZE)
            except CursorExpired:
                self._start_over(report, "the cursor expired at the gateway")
                return
            for event in page.events:
                report.events[self.handle_event(event, source="sync", cursor=True)] += 1
                cursor = event.event_id
            report.cursor = cursor
            if not page.has_more or not page.events:
                return

    def _start_over(self, report: SyncReport, why: str, *, newest: bool = True) -> None:
        """Reconcile what is due, then carry on from the newest event (or, not `newest`, from the oldest kept)."""
        latest = self.gateway.latest_event_id() if newest else None  # first: events made meanwhile are not skipped
        report.fallback = why
        report.reconciled_due = self.reconcile_due()
        with self.db.write() as s:
            row = self._row_for_update(s)
            self._still_leading(row)
            row.cursor = latest or FROM_THE_OLDEST
        report.cursor = latest

    # --- one event --------------------------------------------------------------------------------

    def handle_event(self, event: GatewayEvent, source: str, *, cursor: bool = False) -> str:
        """processed | duplicate | unknown_object | ignored. Raises PaymentError when the gateway
        cannot be reached (the event is then not recorded, and comes again). `source` may be passed
        positionally: the webhook receiver calls `handle(event, "webhook")`."""
        with self.db.read() as s:
            if s.get(EventRow, event.event_id) is not None:
                if cursor:
                    self._advance(event)
                return "duplicate"
        for _ in range(STALE_RETRIES):
            try:
                fresh = self._fetch(event)
            except UnknownObject:
                fresh = None
            try:
                with self.db.write() as s:
                    outcome, detail = self._apply(s, event, fresh)
                    s.add(EventRow(id=event.event_id, type=event.type, object_id=event.object_id,
                                   created_at=event.created, source=source, outcome=outcome, detail=detail))
                    s.flush()
                    if cursor:
                        self._advance(event, s)
            except _Stale:
                continue  # written meanwhile, maybe from a newer object: read the subscription again
            except IntegrityError:
                # The webhook and the sync took the same event at once: one wins, and the sync's
                # cursor still moves past it (else the next pass lists it again).
                if cursor:
                    self._advance(event)
                return "duplicate"
            return outcome
        raise PaymentError(f"Membership changes kept arriving while event {event.event_id} was handled; "
                           "it is handled again on the next pass.")

    def _fetch(self, event: GatewayEvent) -> dict[str, Any]:
        g, kind, oid = self.gateway, event.object_kind, event.object_id
        if event.type not in HANDLED_EVENT_TYPES:
            return {}
        if kind == "subscription":
            return self._subscription(oid, {})
        if kind == "invoice":
            inv = g.retrieve_invoice(oid)
            if not inv.subscription_id:
                return {"invoice": inv, "subscription": None}
            return self._subscription(inv.subscription_id, {"invoice": inv})
        if kind in ("charge", "dispute"):
            dispute = g.retrieve_dispute(oid) if kind == "dispute" else None
            charge = g.retrieve_charge(dispute.charge_id if dispute else oid)
            # A renewal's charge belongs to its invoice's subscription.
            sub_id = g.retrieve_invoice(charge.invoice_id).subscription_id if charge.invoice_id else None
            return {"dispute": dispute, "charge": charge, "paid_subscription": sub_id} if dispute else \
                {"charge": charge, "paid_subscription": sub_id}
        if kind == "payment_method":
            return {"card": g.retrieve_card(oid)}
        return {}

    def _subscription(self, subscription_id: str, fresh: dict[str, Any]) -> dict[str, Any]:
        """`fresh` with the subscription, and the version its membership had just before it was retrieved."""
        fresh["seen"] = self._version_of(subscription_id)
        fresh["subscription"] = self.gateway.retrieve_subscription(subscription_id)
        return fresh

    def _version_of(self, subscription_id: str) -> tuple[int, int] | None:
        with self.db.read() as s:
            m = membership_for_subscription(s, subscription_id)
            return None if m is None or m.id is None else (m.id, m.version)

    def _locked_current(self, s: Session, m: Membership | None, seen: tuple[int, int] | None) -> Membership | None:
        """The membership locked (PostgreSQL; SQLite's writer already holds the database), or _Stale when it
        changed since `seen`, the version noted before its subscription was retrieved."""
        if m is not None and not self.db.is_sqlite:
            m = s.get(Membership, m.id, with_for_update=True, populate_existing=True)
        if (None if m is None else (m.id, m.version)) != seen:
            raise _Stale
        return m

    def _apply(self, s: Session, event: GatewayEvent, fresh: dict[str, Any] | None) -> tuple[str, str | None]:
        if event.type not in HANDLED_EVENT_TYPES:
            return "ignored", None
        if fresh is None:
            return "unknown_object", f"the gateway has no {event.object_kind} {event.object_id}"
        sub = fresh.get("subscription")
        if "invoice" in fresh:
            inv = fresh["invoice"]
            m = membership_for_subscription(s, inv.subscription_id)
            if sub is not None:
                m = self._locked_current(s, m, fresh.get("seen"))
            if m is None:
                return "unknown_object", f"no membership for invoice {inv.invoice_id}"
            failed = event.type in ("invoice.payment_failed", "invoice.payment_action_required")
            written = record_invoice(s, inv, m, failure_reported=failed, occurred_fallback=event.created)
            if sub is not None:
                reconcile_subscription(s, m, sub, self.zone)
            return "processed", ",".join(written) or None
        if sub is not None:
            m = self._locked_current(s, membership_for_subscription(s, sub.subscription_id), fresh.get("seen"))
            if m is None:
                return "unknown_object", f"no membership for subscription {sub.subscription_id}"
            reconcile_subscription(s, m, sub, self.zone)
            return "processed", None
        if "charge" in fresh:
            charge = fresh["charge"]
            order = order_for_payment(s, charge.payment_id)
            m = membership_for_subscription(s, fresh.get("paid_subscription"))
            if m is None and order is not None and order.membership_id:
                m = s.get(Membership, order.membership_id)
            if m is None and order is None:
                return "unknown_object", f"no order or membership for payment {charge.payment_id}"
            if fresh.get("dispute") is not None:
                record_dispute(s, fresh["dispute"], m, order)
                return "processed", None
            return "processed", f"{record_refunds(s, charge, m, order)} refund(s)"
        if "card" in fresh:
            known = reconcile_card(s, fresh["card"], event.type)
            return ("processed", None) if known else ("unknown_object", f"no card {event.object_id}")
        return "ignored", None

    def _last_success_on_gateway_clock(self) -> dt.datetime | None:
        """When the last successful pass began, by the gateway's clock; a database synced before that was
        recorded has only the real time of its last success (a lower bound of the gateway's time then)."""
        with self.db.read() as s:
            clock, row = s.get(SyncRow, GATEWAY_CLOCK_ROW), s.get(SyncRow, SYNC_NAME)
            when = (clock.last_success_at if clock is not None else None) or \
                (row.last_success_at if row is not None else None)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when

    def _succeeded(self, began: dt.datetime) -> None:
        with self.db.write() as s:
            self._row_for_update(s)
            s.exec(update(SyncRow).where(col(SyncRow.name) == SYNC_NAME)
                   .values(last_success_at=utcnow(), last_error=None))
            clock = self._row_for_update(s, GATEWAY_CLOCK_ROW)
            clock.last_success_at = began
            s.add(clock)

    def _still_leading(self, row: SyncRow) -> None:
        """LostLeadership unless the row still names this pass as the leader; renews the SQLite lease."""
        if row.leader != self.owner:
            raise LostLeadership("Another terminal took over the billing sync during this pass: it carries on "
                                 "from the last event this pass recorded.")
        if self.db.is_sqlite:
            row.leader_until = utcnow() + LEASE  # the lease lasts while the pass makes progress

    def _advance(self, event: GatewayEvent, s: Session | None = None) -> None:
        def move(session: Session) -> None:
            row = self._row_for_update(session)
            self._still_leading(row)
            row.cursor = row.last_event_id = event.event_id
            row.last_event_at = event.created

        if s is not None:
            move(s)
            return
        with self.db.write() as session:
            move(session)

    # --- without events ------------------------------------------------------------------------------

    def reconcile_due(self, today: dt.date | None = None) -> int:
        """Reconcile every gateway-billed membership whose `paid_through` is due (or unknown), and every
        paused or cancelling one, from its subscription. Returns how many were reconciled."""
        today = today or self.gateway_now().astimezone(self.zone).date()
        since = self._last_success_on_gateway_clock()
        with self.db.read() as s:
            rows = s.exec(select(Membership.id, Membership.gateway_subscription_id).where(
                col(Membership.gateway_subscription_id).is_not(None),
                col(Membership.status).in_(CURRENT_STATUSES),
                or_(col(Membership.paid_through).is_(None), col(Membership.paid_through) <= today,
                    col(Membership.status).in_((MembershipStatus.PAUSED, MembershipStatus.PAST_DUE)),
                    col(Membership.cancel_at_period_end).is_(True)))).all()
        done = 0
        for membership_id, subscription_id in rows:
            for _ in range(STALE_RETRIES):
                with self.db.read() as s:
                    m = s.get(Membership, membership_id)
                    seen = None if m is None else (m.id, m.version)
                try:
                    sub = self.gateway.retrieve_subscription(subscription_id)
                except UnknownObject:
                    log.warning("membership %s: the gateway has no subscription %s", membership_id, subscription_id)
                    break
                invoices = invoices_to_record(self.gateway, self.db, membership_id, sub, since)
                try:
                    with self.db.write() as s:
                        m = self._locked_current(s, s.get(Membership, membership_id), seen)
                        if m is not None:
                            for inv in invoices:
                                record_invoice(s, inv, m, failure_reported=False,
                                               occurred_fallback=self.gateway_now())
                            reconcile_subscription(s, m, sub, self.zone)
                            done += 1
                except _Stale:
                    continue
                break
        return done

    def gateway_now(self) -> dt.datetime:
        """The billing engine's time: the simulated gateway's clock when it has been advanced."""
        return self.gateway.clock_now()

    # --- leadership and the sync row -------------------------------------------------------------------

    @contextmanager
    def _leadership(self) -> Iterator[bool]:
        if self.db.is_sqlite:
            got = self._take_lease()
            try:
                yield got
            finally:
                if got:
                    self._mark(leader=None, leader_until=None, only_if_leader=True)
            return
        with self.db.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": PG_LOCK_ID}).scalar())
            conn.commit()
            try:
                if got:
                    self._mark(leader=self.owner, leader_until=None)
                yield got
            finally:
                if got:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
                        conn.commit()
                    except SQLAlchemyError as exc:  # its connection died: the server released the lock then
                        log.warning("billing sync: the leader lock's connection was lost (%s)", exc.__class__.__name__)

    def _take_lease(self) -> bool:
        now = utcnow()
        with self.db.write() as s:  # BEGIN IMMEDIATE: one writer decides at a time
            row = self._row_for_update(s)
            until = row.leader_until
            if until is not None and until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)
            held = row.leader and row.leader != self.owner and until is not None and until > now
            if held and owner_alive(row.leader):
                return False
            row.leader, row.leader_until = self.owner, now + LEASE
            return True

    def _row(self) -> SyncRow:
        with self.db.read() as s:
            return s.get(SyncRow, SYNC_NAME) or SyncRow(name=SYNC_NAME)

    def _row_for_update(self, s: Session, name: str = SYNC_NAME) -> SyncRow:
        row = s.get(SyncRow, name, with_for_update=not self.db.is_sqlite)
        if row is None:
            try:
                with s.begin_nested():
                    s.add(SyncRow(name=name))
            except IntegrityError:
                pass
            row = s.get(SyncRow, name, with_for_update=not self.db.is_sqlite, populate_existing=True)
            assert row is not None  # made above, here or by the process that won the race
        return row

    def _mark(self, *, only_if_leader: bool = False, **values: Any) -> None:
        with self.db.write() as s:
            self._row_for_update(s)
            stmt = update(SyncRow).where(col(SyncRow.name) == SYNC_NAME)
            if only_if_leader:
                stmt = stmt.where(col(SyncRow.leader) == self.owner)
            s.exec(stmt.values(**values))


def apply_due_dates(db: Any, today: dt.date) -> list[int]:
    """What happens on a date with no event needed: a pause ends on its resume date, a cancel at
    period end takes effect on that date. Returns the memberships changed."""
    changed = []
    with db.write() as s:
        rows = s.exec(select(Membership).where(
            col(Membership.pending_sync).is_(False),
            or_((col(Membership.status) == MembershipStatus.PAUSED) & (col(Membership.resumes_on) <= today),
                (col(Membership.cancel_at_period_end).is_(True))
                & col(Membership.status).in_(CURRENT_STATUSES)))).all()
        for m in rows:
            end = m.expires_on or m.paid_through
            if m.cancel_at_period_end:
                if end is None or end > today:
                    continue
                before, m.status = m.status, MembershipStatus.EXPIRED
                action = "membership.expired"
            else:
                before, m.status, m.resumes_on = m.status, MembershipStatus.ACTIVE, None
                action = "membership.resumed"
            m.version += 1
            m.updated_at = utcnow()
            s.add(m)
            audit.record(s, SYNC_ACTOR, action, "membership", m.id, before={"status": before},
                         after={"status": m.status, "on": today.isoformat()})
            changed.append(m.id)
    return changed
