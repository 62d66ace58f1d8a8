"""A single wash's receipt (issue 18 item 2): by text message to a phone, or by email to an address.

Sent once per order, after the payment, never in its way: `WashSaleService.pay` records the payment,
then hands the receipt to `send_later` (a worker thread); a failure to send is recorded on the
receipt and audited, and the paid order is untouched.

Where the receipt lives: its own `receipt` row, one per order (db/models/wash.py), never the outbox
(which holds gateway calls only). Its status is the send-once claim between processes:
    waiting  the contact is known, the receipt is not sent yet (the order may not be paid yet)
    sending  claimed by one process (a conditional UPDATE: only one sender wins) until claimed_until;
             a sender that crashed leaves it so, and it is claimable again once that lease is over
    sent     done (sent_at; the provider's message id is in the audit)
    unsent   the provider refused or was unreachable: `send` may try again
The card is named by brand and last 4 only, from the payment's own outbox result.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit, sales_tax
from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, normalize_email, normalize_phone
from clarity_tui.services.plan_pricing import money
from clarity_tui.sitetime import local_time, stored_utc
from db.engine import Database
from db.models import (
    Lane,
    Membership,
    OrderLine,
    OrderState,
    Plan,
    Receipt,
    ReceiptStatus,
    SalesOrder,
    Site,
    VehicleSession,
    Wash,
    WashItemKind,
    WashKind,
    utcnow,
)

log = logging.getLogger(__name__)

WAITING, SENDING, SENT, UNSENT = (ReceiptStatus.WAITING, ReceiptStatus.SENDING, ReceiptStatus.SENT,
                                  ReceiptStatus.UNSENT)
# How long a sender's claim holds: a process that died mid-send leaves the receipt claimable after it.
CLAIM_LEASE = dt.timedelta(minutes=5)
MAX_CONTACT = 254  # the longest email address; a phone number is far shorter


class ReceiptError(UserFacingError):
    """The receipt cannot be sent there; str() says what to fix."""


class MailSender(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


class TextSender(Protocol):
    def send(self, to: str, body: str) -> Any: ...


@dataclass(frozen=True)
class ReceiptOutcome:
    status: str  # waiting | sending | sent | unsent | none (no contact given)
    to: str | None
    message: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == SENT


def parse_contact(contact: str, phone_region: str = "US") -> tuple[str, str]:
    """('email', address) or ('sms', E.164), validated as the customer forms do; ReceiptError otherwise."""
    text = (contact or "").strip()
    if not text:
        raise ReceiptError("Enter the customer's mobile number or email address for the receipt.")
    # Checked before the text is echoed in a message: a pasted page or a control character (a newline, an
    # escape sequence, NUL) would make the message long, several lines, or change the screen.
    if len(text) > MAX_CONTACT:
        raise ReceiptError(f"That is {len(text)} characters, too long for a mobile number or an email address "
                           f"(at most {MAX_CONTACT}): enter it again.")
    if any(not ch.isprintable() for ch in text):
        raise ReceiptError("The mobile number or email address has a control character in it (a paste or a stray "
                           "key): clear it and type it again.")
    try:
        if "@" in text:
            return "email", normalize_email(text)
        return "sms", normalize_phone(text, phone_region)
    except (InvalidEmail, InvalidPhone) as exc:
        raise ReceiptError(f"{exc} The receipt goes by text to a mobile number, or by email.") from exc


def receipt_row(s: Session, order: SalesOrder) -> Receipt | None:
    return s.get(Receipt, order.id) if order.id is not None else None


def receipt_to(s: Session, order: SalesOrder) -> str | None:
    row = receipt_row(s, order)
    return row.to if row is not None else None


def _claimable(now: dt.datetime) -> Any:
    """Waiting or unsent, or claimed by a sender whose lease ran out (it died mid-send)."""
    return or_(col(Receipt.status).in_([WAITING, UNSENT]),
               and_(col(Receipt.status) == SENDING,
                    or_(col(Receipt.claimed_until).is_(None), col(Receipt.claimed_until) < now)))


def _is_claimable(row: Receipt, now: dt.datetime) -> bool:
    if row.status in (WAITING, UNSENT):
        return True
    return row.status == SENDING and (row.claimed_until is None or stored_utc(row.claimed_until) < now)


def set_contact(s: Session, order: SalesOrder, contact: str, actor: Actor, *, phone_region: str = "US") -> str:
    """Where the order's receipt goes (in the caller's transaction); the normalised contact."""
    channel, to = parse_contact(contact, phone_region)
    assert order.id is not None, "an order read from the database"
    row = receipt_row(s, order)
    if row is not None and row.status in (SENDING, SENT):
        raise ReceiptError(f"The receipt was already sent to {row.to}: it is sent once.")
    before = {"channel": row.channel, "to": row.to} if row is not None else None
    if row is None:
        row = Receipt(order_id=order.id, channel=channel, to=to)
    row.channel, row.to, row.status, row.last_error, row.claimed_until = channel, to, WAITING, None, None
    s.add(row)
    audit.record(s, actor, "receipt.contact", "sales_order", order.id, before=before,
                 after={"channel": channel, "to": to})
    return to


def paid_card(s: Session, order: SalesOrder) -> str | None:
    """'Visa •••• 4242' from the payment's result (last 4 only), or None while unpaid."""
    from clarity_tui.services.wash_payment import wash_card

    assert order.id is not None, "an order read from the database"
    card = wash_card(s, order.id)
    if card is None or not card[1]:
        return None
    return f"{card[0].title()} •••• {card[1][-4:]}"


def member_plan_name(s: Session, order: SalesOrder) -> str | None:
    """The plan of the member's visit this order paid extras for (None for a single wash)."""
    wash = s.exec(select(Wash).where(Wash.session_id == order.session_id)).first() if order.session_id else None
    if wash is None or wash.kind != WashKind.MEMBER or wash.membership_id is None:
        return None
    membership = s.get(Membership, wash.membership_id)
    plan = s.get(Plan, membership.plan_id) if membership is not None else None
    return plan.name if plan is not None else None


def receipt_lines(s: Session, order: SalesOrder, *, zone: dt.tzinfo, tax: sales_tax.TaxSettings | None) -> list[str]:
    """The receipt, line by line (what the text message and the email say)."""
    member_plan = member_plan_name(s, order)
    vs = s.get(VehicleSession, order.session_id) if order.session_id else None
    lane = s.get(Lane, order.lane_id) if order.lane_id else None
    site = s.get(Site, lane.site_id) if lane is not None else None
    lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(col(OrderLine.id))).all()
    width = 32

    def row(label: str, cents: int) -> str:
        amount = money(cents)
        return f"{label[: width - len(amount) - 1]:<{width - len(amount)}}{amount}"

    out = [site.name if site else "Car wash",
           "Member extras" if member_plan else "Single wash",
           local_time(order.completed_at or order.updated_at, zone) + (f"  {lane.name}" if lane else ""),
           f"Plate {vs.plate}" if vs else "", f"Order W{order.id}", "-" * width]
    if member_plan:
        out.append(f"{member_plan}: wash included")
    for line in lines:
        label = f"+ {line.name}" if line.kind == WashItemKind.EXTRA else line.name
        out.append(row(label, line.amount_cents))
    out.append("-" * width)
    subtotal = sum(line.amount_cents for line in lines)
    if order.tax_cents:
        out.append(row("Subtotal", subtotal))
        out.append(row(sales_tax.label(tax) or "Tax", order.tax_cents))
    out.append(row("Total", order.due_today_cents))
    card = paid_card(s, order)
    if order.state == OrderState.COMPLETED:
        out.append(f"Paid {card}" if card else "Paid")
    out.append("Thank you!")
    return [line for line in out if line]


class ReceiptSender:
    """Sends a paid order's receipt once, by text or email."""

    def __init__(self, db: Database, *, sms: TextSender | None, mailer: MailSender | None, actor: Actor,
                 zone: dt.tzinfo = dt.UTC, tax: sales_tax.TaxSettings | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.sms = sms
        self.mailer = mailer
        self.actor = actor
        self.zone = zone
        self.tax = tax
        self.clock = clock  # what claim leases are measured by

    def status(self, order_id: int) -> ReceiptOutcome:
        with self.db.read() as s:
            order = s.get(SalesOrder, order_id)
            row = receipt_row(s, order) if order is not None else None
            if row is None:
                return ReceiptOutcome("none", None)
            return ReceiptOutcome(row.status, row.to, row.last_error)

    def send(self, order_id: int) -> ReceiptOutcome:
        """Send the receipt if the order is paid and it was not sent yet (one sender wins a race)."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            row = receipt_row(s, order) if order is not None else None
            if order is None or row is None:
                return ReceiptOutcome("none", None)
            now = self.clock()
            if order.state != OrderState.COMPLETED or not _is_claimable(row, now):
                return ReceiptOutcome(row.status, row.to, row.last_error)
            # The claim: only the sender whose UPDATE matches the attempts it read wins (one text, not two).
            attempt = row.attempts + 1
            claimed = s.exec(update(Receipt).where(col(Receipt.order_id) == order_id,
                                                   col(Receipt.attempts) == row.attempts, _claimable(now))
                             .values(status=SENDING, attempts=attempt, claimed_until=now + CLAIM_LEASE)).rowcount
            if claimed != 1:
                return ReceiptOutcome(SENDING, row.to)
            channel, to = row.channel, row.to
            body = "\n".join(receipt_lines(s, order, zone=self.zone, tax=self.tax))
            site_line = body.splitlines()[0]
        try:
            message_id = self._deliver(channel, to, f"Your receipt from {site_line}", body)
        except UserFacingError as exc:  # MessagingError, MailError: say it, keep the payment as it is
            return self._finish(order_id, attempt, UNSENT, to, channel, error=str(exc))
        return self._finish(order_id, attempt, SENT, to, channel, message_id=message_id)

    def _deliver(self, channel: str, to: str, subject: str, body: str) -> str | None:
        if channel == "email":
            if self.mailer is None:
                raise ReceiptError("Email is not set up on this terminal: the receipt was not sent.")
            self.mailer.send(to, subject, body)
            return None
        if self.sms is None:
            raise ReceiptError("Text messages are not set up on this terminal: the receipt was not sent.")
        sent = self.sms.send(to, body)
        return str(getattr(sent, "id", "") or "") or None

    def _finish(self, order_id: int, attempt: int, status: str, to: str, channel: str, *,
                error: str | None = None, message_id: str | None = None) -> ReceiptOutcome:
        with self.db.write() as s:
            row = s.get(Receipt, order_id)
            if row is not None and row.attempts == attempt:  # still this sender's claim
                row.status, row.last_error, row.claimed_until = status, error, None
                row.sent_at = self.clock() if status == SENT else None
                s.add(row)
            detail = {"error": error} if error else {"message_id": message_id} if message_id else {}
            audit.record(s, self.actor, "receipt.sent" if status == SENT else "receipt.failed", "sales_order",
                         order_id, after={"channel": channel, "to": to, **detail})
        if error:
            log.warning("receipt of order %s not sent: %s", order_id, error)
        return ReceiptOutcome(status, to, error)

    def send_due(self) -> list[ReceiptOutcome]:
        """Every paid order's receipt not sent yet (a restart after a crash, the app's timer), oldest first."""
        with self.db.read() as s:
            order_ids = s.exec(select(Receipt.order_id).join(SalesOrder, col(SalesOrder.id) == Receipt.order_id)
                               .where(_claimable(self.clock()), SalesOrder.state == OrderState.COMPLETED)
                               .order_by(col(Receipt.order_id))).all()
        return [self.send(order_id) for order_id in order_ids]

    def send_later(self, order_id: int) -> Future[ReceiptOutcome]:
        """Send it on the receipts' worker thread: the payment's caller does not wait for the provider."""
        return _pool().submit(self._send_quietly, order_id)

    def _send_quietly(self, order_id: int) -> ReceiptOutcome:
        try:
            return self.send(order_id)
        except Exception:  # a receipt never takes the lane down; the row says what is left
            log.exception("receipt of order %s", order_id)
            return ReceiptOutcome(UNSENT, None, "The receipt could not be sent.")


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receipts")
        return _POOL


__all__ = ["CLAIM_LEASE", "ReceiptError", "ReceiptOutcome", "ReceiptSender", "parse_contact", "receipt_lines",
           "receipt_to", "set_contact"]
