"""Order-level money steps over the outbox: what the sale and migration flows call.

Sale (`start_sale`):   ensure customer -> save card (SetupIntent) -> charge the
                       first period today (if anything is due) -> subscription
                       with trial_end one period ahead.
Migration (`start_migration`): ensure customer -> save card (SetupIntent, no
                       charge) -> subscription with trial_end = the member's
                       old next billing date, with the promotion's coupon.
The charge comes before the subscription so a declined card leaves no
subscription behind. Every step is an outbox row keyed `<order key>:<step>`.

If the gateway cannot be reached the order completes locally as "pending sync"
(order.state = pending_sync, membership.pending_sync = True) and the outbox
replays it later. Keyed card numbers never reach this module's rows: they are
tokenised first (`add_manual_card`), and only the token is stored.

Past 400 lines on purpose: one job, the order's money flow (record the steps, run them, cancel and
settle) with the outbox hooks that finish it; the steps themselves are in billing_steps.py.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.cards import ManualCard
from clarity_tui.payments.errors import GatewayRejected, PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.card_present import enqueue_charge
from clarity_tui.services.commissions import CommissionSettings
from clarity_tui.services.membership_steps import Refund, card_row, on_row_failed, refunds_in_flight
from clarity_tui.services.outbox import BACKOFF_FIRST, OutboxProcessor, enqueue, existing, lease_is_live, make_key
from clarity_tui.services.billing_steps import (
    CHARGE_OPERATIONS,
    OPERATIONS,
    SETTLE_OPERATIONS,
    attempt_suffix,
    charged_cents,
    promotion_coupon,
)
from clarity_tui.services.plan_pricing import add_months, extra_vehicles, interval_months, limit_problem, money, plan_spec
from clarity_tui.services.promotions import plan_subtotal, price_with
from clarity_tui.services import sales_tax
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.upsell import credit_available, first_charge
from clarity_tui.services.vehicle_claims import claim_vehicles, holder_label, refusal_after_conflict, release_order
from db.models import (
    Customer,
    Membership,
    MembershipSource,
    MembershipStatus,
    OrderKind,
    OrderState,
    Outbox,
    OutboxStatus,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    utcnow,
)

if TYPE_CHECKING:
    from clarity_tui.wiring import Services

DONE_STATES = {OrderState.COMPLETED, OrderState.CANCELLED}


def next_period(day: dt.date, interval: str) -> dt.date:
    return add_months(day, interval_months(interval))


@dataclass(frozen=True)
class BillingOutcome:
    order_id: int
    state: str
    message: str | None = None
    transient: bool = False

    @property
    def completed(self) -> bool:
        return self.state == OrderState.COMPLETED

    @property
    def pending_sync(self) -> bool:
        return self.state == OrderState.PENDING_SYNC


class BillingService:
    """Money steps for orders; the sale (issue 5) and migration (issue 6) flows call these."""

    def __init__(self, db: Any, gateway: PaymentGateway, actor: Actor | None = None, *, currency: str = "usd",
                 backoff_first: float = BACKOFF_FIRST, tax: TaxSettings | None = None,
                 commissions: CommissionSettings | None = None) -> None:
        self.db = db
        self.gateway = gateway
        self.actor = actor or Actor.system("billing")
        self.currency = currency
        # The site's sales tax (settings.billing.tax): on today's charge, and the subscription's tax rate.
        self.tax = tax
        # The site's commission settings (settings.wash.commissions; None: the defaults): what the orders
        # completed here earn, and the clawback window of the refunds recorded here.
        self.commissions = commissions
        operations = OPERATIONS if commissions is None else {**OPERATIONS,
                                                             "payment.refund": Refund(commissions.clawback_days)}
        self.processor = OutboxProcessor(db, gateway, operations, hooks=self, backoff_first=backoff_first)

    @classmethod
    def from_services(cls, services: Services, actor: Actor | None = None) -> BillingService:
        """The running terminal's billing: its gateway, currency, sales tax and outbox backoff."""
        settings = services.settings
        return cls(services.db, services.gateway, actor, currency=settings.payments.currency,
                   backoff_first=settings.payments.replay_every_seconds, tax=settings.billing.tax,
                   commissions=settings.wash.commissions)

    # --- cards --------------------------------------------------------------------------------
    def add_manual_card(self, order_id: int, number: str, expiry: str | tuple[int, int], cvc: str) -> PaymentMethod:
        """Validate (Luhn, expiry, CVC), send straight to the gateway, keep only the token.

        Needs the gateway: a keyed card cannot wait offline (we never store it)."""
        card = ManualCard.parse(number, expiry, cvc)
        with self.db.read() as s:
            key = existing(s, SalesOrder, order_id).idempotency_key
        token = self.gateway.tokenize_card(card, idempotency_key=make_key(key, "tokenize", secrets.token_hex(8)))
        del card
        return self.attach_card_token(order_id, token)

    def attach_card_token(self, order_id: int, token: Any) -> PaymentMethod:
        """Record a reader's (or keyed) card token on the order; returns the payment_method row."""
        with self.db.write() as s:
            order = existing(s, SalesOrder, order_id)
            if order.customer_id is None:
                raise GatewayRejected("Choose the customer before taking a card.")
            pm = card_row(s, order.customer_id, self.gateway.name, token)
            order.payment_method_id = pm.id
            order.updated_at = utcnow()
            s.add(order)
            audit.record(s, self.actor, "order.card", "sales_order", order.id,
                         after={"payment_method_id": pm.id, "brand": pm.brand, "last4": pm.last4})
            return pm

    # --- order flows ----------------------------------------------------------------------------
    def start_sale(self, order_id: int, *, today: dt.date | None = None) -> BillingOutcome:
        return self._start(order_id, kind=OrderKind.SALE, anchor=None, today=today)

    def start_migration(self, order_id: int, anchor_date: dt.date, *, today: dt.date | None = None) -> BillingOutcome:
        return self._start(order_id, kind=OrderKind.MIGRATION, anchor=anchor_date, today=today)

    def resume_order(self, order_id: int) -> BillingOutcome:
        """Run whatever is still pending for this order (after a timeout, or from a retry button)."""
        self.processor.run_order(order_id)
        return self.outcome(order_id)

    def _start(self, order_id: int, *, kind: str, anchor: dt.date | None, today: dt.date | None) -> BillingOutcome:
        try:
            early = self._record_steps(order_id, kind=kind, anchor=anchor, today=today or dt.date.today())
        except (IntegrityError, OperationalError) as exc:
            # Another terminal's order claimed one of the cars in the same instant (PostgreSQL: a
            # unique violation, or a deadlock the server broke). Any other database error is not ours.
            if isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) != "40P01":
                raise
            with self.db.read() as s:
                raise refusal_after_conflict(s, order_id) from None
        if early is not None:
            return early
        self.processor.run_order(order_id, wait=5.0)
        self.run_settlements(order_id)
        return self.outcome(order_id)

    def _record_steps(self, order_id: int, *, kind: str, anchor: dt.date | None,
                      today: dt.date) -> BillingOutcome | None:
        """Claim the cars and write the order's outbox rows, in one transaction."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order is None:
                raise GatewayRejected(f"Order {order_id} does not exist.")
            if order.state in DONE_STATES or (order.state == OrderState.PENDING_SYNC and order.membership_id):
                return self._outcome(order)
            present = bool(order.card_present) and anchor is None  # the card is taken on the reader
            missing = [n for n, v in (("customer", order.customer_id), ("plan", order.plan_id),
                                      ("card", order.payment_method_id or (present or None))) if v is None]
            if missing:
                raise GatewayRejected(f"The order has no {' or '.join(missing)} yet: complete that step first.")
            before = audit.snapshot(order)
            plan = existing(s, Plan, order.plan_id)
            problem = limit_problem(plan, len(order.vehicle_ids or []))
            if problem:
                raise GatewayRejected(f"{problem} Remove vehicles first. Nothing was charged.")
            promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
            customer = existing(s, Customer, order.customer_id)
            if anchor is None:
                price = price_with(promo, plan_subtotal(plan, max(1, len(order.vehicle_ids or []))))
                order.subtotal_cents, order.discount_cents = price.subtotal_cents, price.discount_cents
                taxed = sales_tax.compute(self.tax, price.total_cents)  # the total, less a wash credit, is charged
                credit = credit_available(s, order) if kind == OrderKind.SALE else 0
                order.due_today_cents, order.credit_cents = first_charge(taxed.total_cents, credit)
                order.tax_cents = taxed.tax_cents
                first_billing = order.next_billing_on or next_period(today, plan.interval)
            else:
                order.subtotal_cents = plan_subtotal(plan, max(1, len(order.vehicle_ids or [])))
                order.discount_cents, order.due_today_cents, order.tax_cents = 0, 0, 0
                first_billing = anchor
            if first_billing <= today:
                raise GatewayRejected(f"The next billing date {first_billing.isoformat()} is not after today: "
                                      "choose a later date.")
            order.kind = kind
            order.next_billing_on = first_billing
            self._ensure_membership(s, order, kind, first_billing, today)
            claim_vehicles(s, order, holder_label(s, order))
            k = order.idempotency_key
            # After a final failure (a decline) the next try is a new attempt with new keys: the
            # gateway answers an old key with its old decline, and a step must never run without
            # the steps before it.
            attempt = attempt_suffix(s, order.id)
            if not customer.gateway_customer_id:
                enqueue(s, order_id=order.id, operation="customer.ensure", payload={"customer_id": customer.id},
                        idempotency_key=make_key(k, "customer"))
            if present:
                if not order.gateway_payment_id:
                    enqueue_charge(s, order, currency=self.currency)  # its generated card pays the renewals
            else:
                pm = existing(s, PaymentMethod, order.payment_method_id)
                enqueue(s, order_id=order.id, operation="card.save", payload={"payment_method_row_id": pm.id},
                        idempotency_key=make_key(k, "card", pm.gateway_token + attempt))
                if order.due_today_cents > 0 and not order.gateway_payment_id:  # taken already: never again
                    enqueue(s, order_id=order.id, operation="payment.charge",
                            payload={"payment_method_row_id": pm.id, "amount_cents": order.due_today_cents,
                                     "currency": self.currency, "tax_cents": order.tax_cents},
                            idempotency_key=make_key(k, "charge", pm.gateway_token + attempt))
            # A sale's promotion is spent on today's charge; a migration's on its first invoice.
            sub_promo = promo.id if (promo and anchor is not None) else None
            enqueue(s, order_id=order.id, operation="subscription.create",
                    payload={"first_billing": first_billing.isoformat(), "promotion_id": sub_promo,
                             "currency": self.currency,
                             "extra_vehicles": extra_vehicles(plan, max(1, len(order.vehicle_ids or []))),
                             # The renewals' tax rate, as in force when the customer signed (None: no tax).
                             "tax_rate": sales_tax.spec_payload(sales_tax.rate_spec(self.tax))},
                    idempotency_key=make_key(k, "subscription", attempt or None))
            order.state, order.last_error, order.updated_at = OrderState.PAYMENT_PENDING, None, utcnow()
            s.add(order)
            audit.record(s, self.actor, f"order.{kind}.billing_started", "sales_order", order.id,
                         before=before, after=audit.snapshot(order))
        return None

    def _ensure_membership(self, s: Session, order: SalesOrder, kind: str, first_billing: dt.date,
                           today: dt.date) -> None:
        if order.membership_id is None:
            assert order.customer_id is not None and order.plan_id is not None  # checked by _record_steps
            m = Membership(customer_id=order.customer_id, plan_id=order.plan_id, status=MembershipStatus.ACTIVE,
                           source=MembershipSource.MIGRATION if kind == OrderKind.MIGRATION else MembershipSource.SALE,
                           started_on=today, next_billing_on=first_billing, paid_through=first_billing,
                           legacy_member_id=order.legacy_member_id, pending_sync=True)
            s.add(m)
            s.flush()
            order.membership_id = m.id
            if order.promotion_id:
                # Counted when billing starts. The cap (max_redemptions) is checked when the code is
                # entered: a customer who was shown the discount and signed keeps it, so sales in flight
                # on several terminals can take a capped code past its cap by those few sales.
                _count_redemption(s, order.promotion_id, +1)
            audit.record(s, self.actor, "membership.create", "membership", m.id, after=audit.snapshot(m))
        else:
            m = existing(s, Membership, order.membership_id)
            m.status, m.next_billing_on, m.pending_sync = MembershipStatus.ACTIVE, first_billing, True
            m.paid_through = first_billing  # the period charged today (a sale) or kept (a migration)
            s.add(m)

    def outcome(self, order_id: int) -> BillingOutcome:
        with self.db.read() as s:
            return self._outcome(existing(s, SalesOrder, order_id))

    @staticmethod
    def _outcome(order: SalesOrder) -> BillingOutcome:
        assert order.id is not None  # a stored row
        return BillingOutcome(order.id, order.state, order.last_error, order.state == OrderState.PENDING_SYNC)

    def cancel_order(self, order_id: int) -> BillingOutcome:
        """Abandon an unfinished order (e.g. after a decline): nothing left pending, membership
        cancelled, cars released. Before saying nothing was charged it asks the outbox what was
        really sent: a charge that went through is refunded automatically, and one whose answer
        was lost is looked up at the gateway (and refunded if it happened). The outcome's message
        says which."""
        with self.db.write() as s:
            order = existing(s, SalesOrder, order_id, lock=True)
            if order.state == OrderState.CANCELLED:
                return self._outcome(order)  # already done: a second tap changes nothing
            if order.state == OrderState.COMPLETED or order.gateway_subscription_id:
                raise GatewayRejected("A completed order cannot be cancelled here: refund or cancel the membership.")
            # Locked: a replayer's claim either committed before (and is seen here) or waits for this
            # transaction and then finds the rows no longer pending.
            rows = s.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(col(Outbox.id))
                          .with_for_update()).all()
            if any(r.status == OutboxStatus.PENDING and lease_is_live(r, utcnow()) for r in rows):
                raise GatewayRejected("The payment is being taken right now: wait for the reader or the screen "
                                      "to finish, then cancel.")
            unsure = [r for r in rows if r.operation in CHARGE_OPERATIONS and r.status == OutboxStatus.PENDING
                      and r.attempts > 0]
            for row in rows:
                if row.status == OutboxStatus.PENDING:
                    row.status, row.last_error = OutboxStatus.FAILED, "order cancelled"
                    s.add(row)
            before = audit.snapshot(order)
            note = self._settle(s, order, unsure, "order cancelled")
            order.state, order.last_error, order.updated_at = OrderState.CANCELLED, note, utcnow()
            self._end_membership(s, order)
            s.add(order)
            audit.record(s, self.actor, "order.cancel", "sales_order", order.id, before=before,
                         after=audit.snapshot(order))
        self.run_settlements(order_id)
        with self.db.write() as s:
            order = existing(s, SalesOrder, order_id)
            lookup = s.exec(select(Outbox).where(Outbox.operation == "payment.refund_if_charged",
                                                 Outbox.status == OutboxStatus.DONE)).all()
            for row in lookup:
                if (row.payload or {}).get("order_id") == order_id:  # the gateway answered: say what it found
                    amount = int((row.result or {}).get("amount_cents") or 0)
                    order.last_error = (f"The {money(amount)} charge that reached the bank is refunded automatically."
                                        if amount else None)
                    s.add(order)
            return self._outcome(order)

    def _settle(self, s: Session, order: SalesOrder, unsure: list[Outbox], reason: str) -> str | None:
        """Queue the refund of whatever the order took (or may have taken); the attendant's words."""
        assert order.id is not None  # a stored row
        k = order.idempotency_key
        if order.gateway_payment_id:
            # What is still ours to give back: a manager may have refunded part of it already.
            amount = charged_cents(s, order) - (order.refunded_cents or 0) - refunds_in_flight(s, order.id)
            if amount <= 0:
                return None
            enqueue(s, order_id=None, operation="payment.refund",
                    payload={**({} if self.commissions is None else {"clawback_days": self.commissions.clawback_days}),
                             "payment_id": order.gateway_payment_id, "amount_cents": amount, "order_id": order.id,
                             "reason": reason, "chain": f"{k}:settle"},
                    idempotency_key=make_key(k, "auto-refund"))
            audit.record(s, self.actor, "order.refund_automatic", "sales_order", order.id,
                         after={"amount_cents": amount, "reason": reason})
            return f"The {money(amount)} charge is refunded automatically."
        if unsure:
            enqueue(s, order_id=None, operation="payment.refund_if_charged",
                    payload={"order_id": order.id, "reason": reason, "chain": f"{k}:settle"},
                    idempotency_key=make_key(k, "refund-if-charged"))
            audit.record(s, self.actor, "order.refund_if_charged", "sales_order", order.id, after={"reason": reason})
            return ("The card may have been charged just before the network dropped: the charge is looked up and "
                    "refunded automatically.")
        return None

    def run_settlements(self, order_id: int) -> None:
        """Send the order's automatic refunds now (the app's timer retries them if the network is down)."""
        with self.db.read() as s:
            ids = [r.id for r in s.exec(select(Outbox).where(Outbox.status == OutboxStatus.PENDING,
                                                             col(Outbox.order_id).is_(None),
                                                             col(Outbox.operation).in_(SETTLE_OPERATIONS)))
                   if (r.payload or {}).get("order_id") == order_id]
        if ids:
            self.processor.run_rows(ids)

    def _end_membership(self, s: Session, order: SalesOrder) -> None:
        assert order.id is not None  # a stored row
        release_order(s, order.id)
        if order.membership_id and order.kind == OrderKind.PLAN_CHANGE:
            m = existing(s, Membership, order.membership_id)
            m.pending_sync = False  # the plan did not change: the membership goes on as it was
            s.add(m)
        elif order.membership_id:
            m = existing(s, Membership, order.membership_id)
            if m.status != MembershipStatus.CANCELLED:
                m.status, m.pending_sync = MembershipStatus.CANCELLED, False
                s.add(m)
                if order.promotion_id:
                    # The use was counted when the membership was made; no sale, so the code gets it back.
                    _count_redemption(s, order.promotion_id, -1)

    # --- outbox hooks ----------------------------------------------------------------------------------
    def on_synced(self, s: Session, order_id: int) -> None:
        order = existing(s, SalesOrder, order_id)
        if order.state not in (OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC):
            return
        before = audit.snapshot(order)
        order.state, order.last_error = OrderState.COMPLETED, None
        order.completed_at = order.updated_at = utcnow()
        s.add(order)
        if order.membership_id:
            m = existing(s, Membership, order.membership_id)
            m.pending_sync = False
            m.updated_at = utcnow()
            s.add(m)
        audit.record(s, self.actor, "order.completed", "sales_order", order.id, before=before,
                     after=audit.snapshot(order))

    def on_late_result(self, s: Session, row: Outbox, result: dict[str, Any]) -> None:
        """A charge that went through after its order was cancelled: recorded, then refunded."""
        if row.operation not in CHARGE_OPERATIONS or not result.get("payment_id") or row.order_id is None:
            return
        order = existing(s, SalesOrder, row.order_id, lock=True)
        order.gateway_payment_id = order.gateway_payment_id or result["payment_id"]
        note = self._settle(s, order, [], "charged after the order was cancelled")
        order.last_error = note
        s.add(order)

    def on_row_failed(self, s: Session, row: Outbox, error: PaymentError) -> None:
        on_row_failed(s, row, error)

    def on_pending_sync(self, s: Session, order_id: int, error: PaymentError) -> None:
        order = existing(s, SalesOrder, order_id)
        if order.state in (OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC):
            # A single wash is not paid until the gateway says so (pending sync counts as paid): it stays
            # payable, and paying again replays the same row, so the same payment is read back.
            order.state = OrderState.PAYMENT_PENDING if order.kind == OrderKind.WASH else OrderState.PENDING_SYNC
            order.last_error, order.updated_at = str(error), utcnow()
            s.add(order)
            if order.membership_id:
                m = existing(s, Membership, order.membership_id)
                m.pending_sync = True
                s.add(m)

    def on_failed(self, s: Session, order_id: int, entry: Outbox, error: PaymentError) -> None:
        order = existing(s, SalesOrder, order_id)
        assert order.id is not None  # a stored row
        before = audit.snapshot(order)
        if order.gateway_payment_id and entry.operation not in CHARGE_OPERATIONS:
            # The money was taken and a later step failed for good: never keep it stranded.
            note = self._settle(s, order, [], f"{entry.operation} failed: {error}")
            order.state, order.updated_at = OrderState.CANCELLED, utcnow()
            order.last_error = f"{error} {note}"
            self._end_membership(s, order)
            s.add(order)
            audit.record(s, self.actor, "order.failed_after_charge", "sales_order", order.id, before=before,
                         after={"step": entry.operation, "error": str(error)})
            return
        # Back to the payment step: the attendant can take another card (new keys) or cancel.
        order.state, order.last_error, order.updated_at = OrderState.PAYMENT_PENDING, str(error), utcnow()
        s.add(order)
        release_order(s, order.id)
        if order.membership_id and order.kind == OrderKind.PLAN_CHANGE:
            m = existing(s, Membership, order.membership_id)
            m.pending_sync = False  # the plan change did not happen: the membership is as it was
            s.add(m)
        elif order.membership_id:
            m = existing(s, Membership, order.membership_id)
            m.status = MembershipStatus.PAST_DUE
            s.add(m)
        audit.record(s, self.actor, "order.payment_failed", "sales_order", order.id, before=before,
                     after={"step": entry.operation, "error": str(error)})


def sync_plans(db: Any, gateway: PaymentGateway, currency: str = "usd",
               tax: TaxSettings | None = None) -> list[tuple[str, str, str]]:
    """Create products/plans (and promotion coupons, and the site's sales tax rate) at the gateway; store
    their ids on our rows. The tax rate is found or made by its name, percentage and inclusiveness, so the
    subscription step asks for it again by the same spec (no id is stored here)."""
    out = []
    spec = sales_tax.rate_spec(tax)
    if spec is not None:
        out.append((sales_tax.label(tax), "tax_rate", gateway.sync_tax_rate(spec)))
    with db.read() as s:
        plans = list(s.exec(select(Plan).where(Plan.active)).all())
        promos = list(s.exec(select(Promotion).where(Promotion.active)).all())
    for plan in plans:
        synced = gateway.sync_plan(plan_spec(plan, currency))
        with db.write() as s:
            row = existing(s, Plan, plan.id)
            row.gateway_product_id, row.gateway_price_id = synced.product_id, synced.price_id
            s.add(row)
        out.append((plan.code, synced.product_id, synced.price_id))
    for promo in promos:
        cid = gateway.sync_coupon(promotion_coupon(promo, currency))
        with db.write() as s:
            promo_row = existing(s, Promotion, promo.id)
            promo_row.gateway_coupon_id = cid
            s.add(promo_row)
        out.append((promo.code, "coupon", cid))
    return out


def _count_redemption(s: Session, promotion_id: int, delta: int) -> None:
    """One UPDATE (`n = n + delta`), not read-modify-write: two terminals redeeming the same code at
    once on PostgreSQL would otherwise both write the same count and lose a use. Never below zero."""
    count = col(Promotion.times_redeemed)
    stmt = update(Promotion).where(col(Promotion.id) == promotion_id).values(times_redeemed=count + delta)
    if delta < 0:
        stmt = stmt.where(count >= -delta)
    s.exec(stmt)
