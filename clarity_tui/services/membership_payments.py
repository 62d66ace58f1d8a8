"""A membership's payments as the lane and the record show them, and the past-due card update at the lane.

Reads the `membership_payment` rows the billing sync writes (renewals, failed renewals, recoveries,
refunds, disputes) and answers three questions:
- the record's list: every payment row of a membership, newest first, in words (`history`);
- the session screen's: is this car's membership past due, since when, for how much and why
  (`past_due_for_session`);
- dunning's: which failed renewal invoices are still open (`open_failed_invoices`: a renewal_failed
  row whose invoice has no renewal or recovered row).

`update_card_at_lane` is the lane's "Update card" (issue 13): the card read on the reader goes through
MembershipActions.update_card (card.save, invoice.pay, card.default, all through the outbox) and the
outcome comes back in words: the amount paid, the decline with what to do, or queued behind the network.

No Textual here: screens call these from workers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import CustomerError
from clarity_tui.services.permissions import Permission, PermissionDenied, require
from clarity_tui.services.plan_pricing import money
from clarity_tui.sitetime import site_date, stored_utc
from db.models import Membership, MembershipStatus, MembershipVehicle, PaymentMethod, Plan, VehicleSession
from db.models_billing import MembershipPayment, PaymentKind

KIND_WORDS = {
    PaymentKind.RENEWAL: "Renewal",
    PaymentKind.RENEWAL_FAILED: "Failed renewal",
    PaymentKind.RECOVERED: "Recovered",
    PaymentKind.REFUND: "Refund",
    PaymentKind.DISPUTE: "Dispute",
}
# Money going back to the customer: shown with a minus.
_OUTGOING = (PaymentKind.REFUND, PaymentKind.DISPUTE)
# Rows that settle an invoice: after one of these the invoice is no longer open.
_SETTLING = (PaymentKind.RENEWAL, PaymentKind.RECOVERED)
HISTORY_LIMIT = 50


@dataclass(frozen=True)
class PaymentLine:
    """One row of the record's payment list."""

    id: int
    occurred_at: dt.datetime  # aware, UTC
    occurred_on: dt.date  # the site's day
    kind: str
    invoice_id: str | None
    amount_cents: int
    currency: str
    status: str
    reason: str | None
    attempt: int

    @property
    def kind_words(self) -> str:
        return KIND_WORDS.get(self.kind, self.kind.replace("_", " ").capitalize())

    @property
    def amount(self) -> str:
        return ("-" if self.kind in _OUTGOING else "") + money(self.amount_cents)


@dataclass(frozen=True)
class OpenFailedInvoice:
    """A renewal invoice that failed and is not paid yet (as far as our rows know)."""

    membership_id: int
    customer_id: int | None
    invoice_id: str
    amount_cents: int  # the latest failed attempt's amount (what the gateway wants)
    first_failed_at: dt.datetime  # aware, UTC
    last_failed_at: dt.datetime
    reason: str | None  # the latest readable reason of its failed attempts
    attempts: int


@dataclass(frozen=True)
class PastDue:
    """A past-due membership of the car in a session: what the lane shows and updates."""

    membership_id: int
    customer_id: int
    plan_name: str
    pending_sync: bool
    days_overdue: int
    reason: str | None  # the latest failed renewal's reason, if the sync recorded one
    amount_cents: int | None  # the open invoice's amount, if known
    invoice_id: str | None

    @property
    def summary(self) -> str:
        days = f"{self.days_overdue} day{'s' if self.days_overdue != 1 else ''} overdue"
        owed = f" · {money(self.amount_cents)} due" if self.amount_cents else ""
        return f"{days}{owed}"


@dataclass(frozen=True)
class LaneCardResult:
    """How the lane's card update ended. `message` is what the attendant reads."""

    status: str  # "paid" | "saved" | "queued" | "declined" | "not_read" (the reader gave no card)
    message: str
    amount_cents: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("paid", "saved", "queued")


def open_failed_invoices(s: Session, membership_ids: list[int] | None = None) -> list[OpenFailedInvoice]:
    """Failed renewal invoices with no renewal/recovered row for the same invoice, oldest first."""
    q = select(MembershipPayment).where(MembershipPayment.kind == PaymentKind.RENEWAL_FAILED,
                                        col(MembershipPayment.invoice_id).is_not(None),
                                        col(MembershipPayment.membership_id).is_not(None))
    if membership_ids is not None:
        if not membership_ids:
            return []
        q = q.where(col(MembershipPayment.membership_id).in_(membership_ids))
    failed = s.exec(q.order_by(col(MembershipPayment.occurred_at), col(MembershipPayment.id))).all()
    if not failed:
        return []
    invoices = sorted({r.invoice_id for r in failed if r.invoice_id})
    settled = set(s.exec(select(MembershipPayment.invoice_id).where(
        col(MembershipPayment.kind).in_(_SETTLING), col(MembershipPayment.invoice_id).in_(invoices))).all())
    by_invoice: dict[str, list[MembershipPayment]] = {}
    for r in failed:
        if r.invoice_id and r.invoice_id not in settled:
            by_invoice.setdefault(r.invoice_id, []).append(r)
    out = []
    for invoice_id, rows in by_invoice.items():
        first, last = rows[0], rows[-1]
        assert last.membership_id is not None  # the query asked for rows with a membership
        out.append(OpenFailedInvoice(
            membership_id=last.membership_id, customer_id=last.customer_id, invoice_id=invoice_id,
            amount_cents=int(last.amount_cents or 0), first_failed_at=stored_utc(first.occurred_at),
            last_failed_at=stored_utc(last.occurred_at),
            reason=next((r.reason for r in reversed(rows) if r.reason), None),
            attempts=max(len(rows), max(int(r.attempt or 0) for r in rows))))
    return sorted(out, key=lambda o: (o.first_failed_at, o.invoice_id))


class MembershipPayments:
    """Reads of membership payment rows, and the lane's card update. `gateway` only for the update."""

    def __init__(self, db: Any, gateway: Any = None, *, zone: dt.tzinfo = dt.UTC) -> None:
        self.db = db
        self.gateway = gateway
        self.zone = zone

    # --- the record -------------------------------------------------------------------------------
    def history(self, membership_id: int, limit: int = HISTORY_LIMIT) -> list[PaymentLine]:
        """The membership's payment rows, newest first."""
        with self.db.read() as s:
            rows = s.exec(select(MembershipPayment).where(MembershipPayment.membership_id == membership_id)
                          .order_by(col(MembershipPayment.occurred_at).desc(), col(MembershipPayment.id).desc())
                          .limit(limit)).all()
        return [PaymentLine(id=r.id, occurred_at=stored_utc(r.occurred_at),
                            occurred_on=site_date(r.occurred_at, self.zone), kind=r.kind, invoice_id=r.invoice_id,
                            amount_cents=int(r.amount_cents or 0), currency=r.currency, status=r.status or "",
                            reason=r.reason, attempt=int(r.attempt or 0)) for r in rows]

    # --- the lane ---------------------------------------------------------------------------------
    def past_due_for_session(self, session_id: int, today: dt.date) -> PastDue | None:
        """The session car's past-due membership (the billing engine says PAST_DUE), or None.

        The car's own membership first (the board's badge is the car's); a session with no vehicle row
        falls back to the customer's."""
        with self.db.read() as s:
            v = s.get(VehicleSession, session_id)
            if v is None or v.customer_id is None:
                return None
            q = (select(Membership, Plan.name).join(Plan, col(Plan.id) == Membership.plan_id)
                 .where(Membership.customer_id == v.customer_id, Membership.status == MembershipStatus.PAST_DUE))
            if v.vehicle_id is not None:
                q = q.join(MembershipVehicle, col(MembershipVehicle.membership_id) == Membership.id).where(
                    MembershipVehicle.vehicle_id == v.vehicle_id)
            found = s.exec(q.order_by(col(Membership.id))).first()
            if found is None:
                return None
            m, plan_name = found
            invoices = open_failed_invoices(s, [m.id])
        latest = invoices[-1] if invoices else None
        if m.paid_through is not None:
            days = (today - m.paid_through).days
        elif latest is not None:
            days = (today - site_date(invoices[0].first_failed_at, self.zone)).days
        else:
            days = 0
        return PastDue(membership_id=m.id, customer_id=m.customer_id,
                       plan_name=plan_name, pending_sync=m.pending_sync, days_overdue=max(0, days),
                       reason=latest.reason if latest else None,
                       amount_cents=sum(i.amount_cents for i in invoices) if invoices else None,
                       invoice_id=latest.invoice_id if latest else None)

    @staticmethod
    def refusal(actor: Actor) -> str | None:
        """Why `actor` may not update a member's card (the record's rule), or None. Asked before the
        customer is asked for their card."""
        try:
            require(actor, Permission.MEMBERSHIP)
        except PermissionDenied as exc:
            return str(exc)
        return None

    def update_card_at_lane(self, actor: Actor, membership_id: int, card: Any) -> LaneCardResult:
        """Save the card read at the lane and pay the open invoice with it (MembershipActions.update_card,
        through the outbox). A decline is an answer, not an error: it comes back with what to do.

        The membership's current version is used: what the customer asks for (this card, and the past-due
        amount paid on it) does not depend on what the screen last showed, and the billing sync changes
        the row in the background. Whether there is still something to pay is decided in update_card's
        own transaction (only a PAST_DUE membership's invoice is paid)."""
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.membership_actions import ActionRefused, MembershipActions, StaleMembership

        require(actor, Permission.MEMBERSHIP)
        if self.gateway is None:
            raise CustomerError("No payment gateway is configured on this terminal: check the payments settings.")
        actions = MembershipActions(BillingService(self.db, self.gateway, actor))
        for attempt in range(3):
            with self.db.read() as s:
                m = s.get(Membership, membership_id)
                if m is None:
                    raise CustomerError(f"Membership {membership_id} no longer exists: reload the session.")
                version = m.version
            try:
                outcome = actions.update_card(actor, membership_id, version, card)
                break
            except StaleMembership as exc:  # changed between the read and the write: read it again
                if attempt == 2:
                    raise CustomerError(str(exc)) from exc
            except ActionRefused as exc:
                return LaneCardResult("declined", f"{exc} The membership is still past due.")
        with self.db.read() as s:
            pm = s.get(PaymentMethod, outcome.payment_method_id) if outcome.payment_method_id else None
            m = s.get(Membership, membership_id)
            status = m.status if m is not None else None
        card_words = f"{pm.brand.title()} •••• {pm.last4}" if pm is not None else "the new card"
        if outcome.queued:
            return LaneCardResult("queued", f"{card_words} is kept. {outcome.message} Until then the membership "
                                  "shows pending sync.")
        if status == MembershipStatus.PAST_DUE:
            return LaneCardResult("saved", f"{card_words} is saved, but this membership is not billed by the "
                                  "payment gateway, so nothing was paid: ask a manager.")
        if outcome.charged_cents:
            return LaneCardResult("paid", f"Paid {money(outcome.charged_cents)} on {card_words}. The membership is "
                                  "active again.", outcome.charged_cents)
        return LaneCardResult("saved", f"{card_words} is saved. Nothing was left to pay (the invoice was already "
                              "paid); the membership is active.")
