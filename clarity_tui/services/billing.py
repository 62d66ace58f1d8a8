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
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from clarity_tui.payments.base import CouponSpec, CustomerInfo, PaymentGateway, PlanSpec
from clarity_tui.payments.cards import CardToken, ManualCard
from clarity_tui.payments.errors import GatewayRejected, PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.outbox import Operation, OutboxProcessor, RunResult, enqueue, make_key
from clarity_tui.services.promotions import plan_subtotal, price_with
from db.models import (
    Customer,
    Membership,
    MembershipSource,
    MembershipStatus,
    OrderKind,
    OrderState,
    Outbox,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    utcnow,
)

DONE_STATES = {OrderState.COMPLETED, OrderState.CANCELLED}


def add_months(day: dt.date, months: int = 1) -> dt.date:
    """Same day N months later, clamped to the month's end (Jan 31 -> Feb 28/29)."""
    import calendar

    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_period(day: dt.date, interval: str) -> dt.date:
    return add_months(day, 12 if interval == "year" else 1)


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


# --- outbox operations --------------------------------------------------------------


def _order(s: Session, entry: Outbox) -> SalesOrder:
    return s.get(SalesOrder, entry.order_id)


class EnsureCustomer:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            c = s.get(Customer, entry.payload["customer_id"])
            if c.gateway_customer_id:
                return {"gateway_customer_id": c.gateway_customer_id, "existing": True}
            info = CustomerInfo(c.customer_number, f"{c.first_name} {c.last_name}".strip(), c.email, c.phone_e164)
        return {"gateway_customer_id": gateway.ensure_customer(info, idempotency_key=entry.idempotency_key)}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        c = s.get(Customer, entry.payload["customer_id"])
        c.gateway_customer_id = result["gateway_customer_id"]
        c.updated_at = utcnow()
        s.add(c)


class SaveCard:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            pm = s.get(PaymentMethod, entry.payload["payment_method_row_id"])
            cus = s.get(Customer, pm.customer_id).gateway_customer_id
            token = CardToken(pm.gateway_token, pm.brand, pm.last4, pm.exp_month, pm.exp_year)
        saved = gateway.save_card(cus, token, idempotency_key=entry.idempotency_key)
        return {"payment_method_id": saved.payment_method_id, "brand": saved.brand, "last4": saved.last4,
                "exp_month": saved.exp_month, "exp_year": saved.exp_year}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        pm = s.get(PaymentMethod, entry.payload["payment_method_row_id"])
        for other in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == pm.customer_id,
                                                        PaymentMethod.id != pm.id)).all():
            if other.is_default:
                other.is_default = False
                s.add(other)
        pm.brand, pm.last4 = result["brand"] or pm.brand, result["last4"] or pm.last4
        pm.exp_month, pm.exp_year = result["exp_month"] or pm.exp_month, result["exp_year"] or pm.exp_year
        pm.is_default = True
        s.add(pm)


class Charge:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            order = _order(s, entry)
            pm = s.get(PaymentMethod, entry.payload["payment_method_row_id"])
            cus = s.get(Customer, order.customer_id).gateway_customer_id
        r = gateway.charge(cus, pm.gateway_token, entry.payload["amount_cents"],
                           currency=entry.payload.get("currency", "usd"),
                           metadata={"clarity_order": str(order.id), "order_key": order.idempotency_key},
                           idempotency_key=entry.idempotency_key)
        return {"payment_id": r.payment_id, "charge_id": r.charge_id, "amount_cents": r.amount_cents}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        with db.read() as s:
            order = _order(s, entry)
            cus = s.get(Customer, order.customer_id).gateway_customer_id
        found = gateway.find_charge(cus, order.idempotency_key)
        if found is None:
            return None
        return {"payment_id": found.payment_id, "charge_id": found.charge_id, "amount_cents": found.amount_cents}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order = _order(s, entry)
        order.gateway_payment_id = result["payment_id"]
        s.add(order)


class CreateSubscription:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p = entry.payload
        with db.read() as s:
            order = _order(s, entry)
            plan = s.get(Plan, order.plan_id)
            promo = s.get(Promotion, p["promotion_id"]) if p.get("promotion_id") else None
            cus = s.get(Customer, order.customer_id).gateway_customer_id
            spec = PlanSpec(plan.code, plan.name, plan.price_cents, plan.interval, p.get("currency", "usd"))
            coupon = promotion_coupon(promo, p.get("currency", "usd")) if promo else None
        synced = gateway.sync_plan(spec)
        coupon_id = gateway.sync_coupon(coupon) if coupon else None
        r = gateway.create_subscription(
            cus, synced.price_id, first_billing=dt.date.fromisoformat(p["first_billing"]), coupon_id=coupon_id,
            metadata={"clarity_order": str(order.id), "order_key": order.idempotency_key},
            idempotency_key=entry.idempotency_key)
        return {"subscription_id": r.subscription_id, "status": r.status, "product_id": synced.product_id,
                "price_id": synced.price_id, "coupon_id": coupon_id}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        with db.read() as s:
            order = _order(s, entry)
            plan = s.get(Plan, order.plan_id)
            promo = s.get(Promotion, entry.payload["promotion_id"]) if entry.payload.get("promotion_id") else None
            cus = s.get(Customer, order.customer_id).gateway_customer_id
            product_id, price_id = plan.gateway_product_id, plan.gateway_price_id
            coupon_id = promo.gateway_coupon_id if promo else None
        found = gateway.find_subscription(cus, order.idempotency_key)
        if found is None:
            return None
        return {"subscription_id": found.subscription_id, "status": found.status, "product_id": product_id,
                "price_id": found.plan_price_id or price_id, "coupon_id": found.coupon_id or coupon_id}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order = _order(s, entry)
        order.gateway_subscription_id = result["subscription_id"]
        s.add(order)
        if order.membership_id:
            m = s.get(Membership, order.membership_id)
            m.gateway_subscription_id = result["subscription_id"]
            s.add(m)
        plan = s.get(Plan, order.plan_id)
        if result.get("product_id") and result.get("price_id"):  # a recovered result may not know them
            plan.gateway_product_id, plan.gateway_price_id = result["product_id"], result["price_id"]
            s.add(plan)
        if result.get("coupon_id") and entry.payload.get("promotion_id"):
            promo = s.get(Promotion, entry.payload["promotion_id"])
            promo.gateway_coupon_id = result["coupon_id"]
            s.add(promo)


class MembershipCall:
    """pause / resume / cancel at period end / change plan / refund on an existing membership."""

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        # Only a refund moves money; pausing, resuming, cancelling or changing plan twice is harmless.
        if entry.operation != "payment.refund":
            return None
        found = gateway.find_refund(entry.payload["payment_id"], entry.idempotency_key)
        return None if found is None else {"refund_id": found.refund_id, "amount_cents": found.amount_cents}

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p, key = entry.payload, entry.idempotency_key
        if entry.operation == "payment.refund":
            r = gateway.refund(p["payment_id"], amount_cents=p.get("amount_cents"), idempotency_key=key)
            return {"refund_id": r.refund_id, "amount_cents": r.amount_cents}
        with db.read() as s:
            m = s.get(Membership, p["membership_id"])
            sub = m.gateway_subscription_id
            plan = s.get(Plan, p["plan_id"]) if p.get("plan_id") else None
        if not sub:
            raise GatewayRejected("This membership has no gateway subscription yet: sync it first.")
        if entry.operation == "subscription.pause":
            r = gateway.pause(sub, idempotency_key=key,
                              resumes_at=dt.date.fromisoformat(p["resumes_at"]) if p.get("resumes_at") else None)
        elif entry.operation == "subscription.resume":
            r = gateway.resume(sub, idempotency_key=key)
        elif entry.operation == "subscription.cancel":
            r = gateway.cancel_at_period_end(sub, idempotency_key=key)
        else:
            synced = gateway.sync_plan(PlanSpec(plan.code, plan.name, plan.price_cents, plan.interval,
                                                p.get("currency", "usd")))
            r = gateway.change_plan(sub, synced.price_id, idempotency_key=key)
        return {"subscription_id": r.subscription_id, "status": r.status}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        p = entry.payload
        if entry.operation == "payment.refund":
            return
        m = s.get(Membership, p["membership_id"])
        if entry.operation == "subscription.pause":
            m.status = MembershipStatus.PAUSED
        elif entry.operation == "subscription.resume":
            m.status = MembershipStatus.ACTIVE
        elif entry.operation == "subscription.cancel":
            m.cancel_at_period_end = True
        else:
            m.plan_id = p["plan_id"]
        m.updated_at = utcnow()
        m.version += 1
        s.add(m)


def promotion_coupon(promo: Promotion, currency: str = "usd") -> CouponSpec:
    if promo.kind == "percent_off":
        return CouponSpec(promo.code, percent_off=promo.value, currency=currency)
    return CouponSpec(promo.code, amount_off_cents=promo.value, currency=currency)


OPERATIONS: dict[str, Operation] = {
    "customer.ensure": EnsureCustomer(),
    "card.save": SaveCard(),
    "payment.charge": Charge(),
    "subscription.create": CreateSubscription(),
    "subscription.pause": MembershipCall(),
    "subscription.resume": MembershipCall(),
    "subscription.cancel": MembershipCall(),
    "subscription.change_plan": MembershipCall(),
    "payment.refund": MembershipCall(),
}


class BillingService:
    """Money steps for orders; the sale (issue 5) and migration (issue 6) flows call these."""

    def __init__(self, db: Any, gateway: PaymentGateway, actor: Actor | None = None, *, currency: str = "usd") -> None:
        self.db = db
        self.gateway = gateway
        self.actor = actor or Actor.system("billing")
        self.currency = currency
        self.processor = OutboxProcessor(db, gateway, OPERATIONS, hooks=self)

    # --- cards --------------------------------------------------------------------------------
    def add_manual_card(self, order_id: int, number: str, expiry: str | tuple[int, int], cvc: str) -> PaymentMethod:
        """Validate (Luhn, expiry, CVC), send straight to the gateway, keep only the token.

        Needs the gateway: a keyed card cannot wait offline (we never store it)."""
        card = ManualCard.parse(number, expiry, cvc)
        with self.db.read() as s:
            key = s.get(SalesOrder, order_id).idempotency_key
        token = self.gateway.tokenize_card(card, idempotency_key=make_key(key, "tokenize", secrets.token_hex(8)))
        del card
        return self.attach_card_token(order_id, token)

    def attach_card_token(self, order_id: int, token: Any) -> PaymentMethod:
        """Record a reader's (or keyed) card token on the order; returns the payment_method row."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order.customer_id is None:
                raise GatewayRejected("Choose the customer before taking a card.")
            pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                                    PaymentMethod.gateway_token == token.payment_method_id)).first()
            if pm is None:
                pm = PaymentMethod(customer_id=order.customer_id, gateway=self.gateway.name,
                                   gateway_token=token.payment_method_id, brand=token.brand or "unknown",
                                   last4=(token.last4 or "")[-4:], exp_month=int(token.exp_month or 0),
                                   exp_year=int(token.exp_year or 0))
                s.add(pm)
                s.flush()
            order.payment_method_id = pm.id
            order.updated_at = utcnow()
            s.add(order)
            audit.record(s, self.actor, "order.card", "sales_order", order.id,
                         after={"payment_method_id": pm.id, "brand": pm.brand, "last4": pm.last4})
            return pm

    def choose_saved_card(self, order_id: int, payment_method_row_id: int) -> None:
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            pm = s.get(PaymentMethod, payment_method_row_id)
            if pm is None or pm.customer_id != order.customer_id or pm.detached_at is not None:
                raise GatewayRejected("That card is not saved on this customer.")
            order.payment_method_id = pm.id
            s.add(order)

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
        today = today or dt.date.today()
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order is None:
                raise GatewayRejected(f"Order {order_id} does not exist.")
            if order.state in DONE_STATES:
                return self._outcome(order)
            missing = [n for n, v in (("customer", order.customer_id), ("plan", order.plan_id),
                                      ("card", order.payment_method_id)) if v is None]
            if missing:
                raise GatewayRejected(f"The order has no {' or '.join(missing)} yet: complete that step first.")
            before = audit.snapshot(order)
            plan = s.get(Plan, order.plan_id)
            promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
            customer = s.get(Customer, order.customer_id)
            if anchor is None:
                price = price_with(promo, plan_subtotal(plan, max(1, len(order.vehicle_ids or []))))
                order.subtotal_cents, order.discount_cents = price.subtotal_cents, price.discount_cents
                order.due_today_cents = price.total_cents
                first_billing = order.next_billing_on or next_period(today, plan.interval)
            else:
                order.subtotal_cents = plan_subtotal(plan, max(1, len(order.vehicle_ids or [])))
                order.discount_cents, order.due_today_cents = 0, 0
                first_billing = anchor
            if first_billing <= today:
                raise GatewayRejected(f"The next billing date {first_billing.isoformat()} is not after today: "
                                      "choose a later date.")
            order.kind = kind
            order.next_billing_on = first_billing
            self._ensure_membership(s, order, kind, first_billing, today)
            k = order.idempotency_key
            pm = s.get(PaymentMethod, order.payment_method_id)
            if not customer.gateway_customer_id:
                enqueue(s, order_id=order.id, operation="customer.ensure", payload={"customer_id": customer.id},
                        idempotency_key=make_key(k, "customer"))
            enqueue(s, order_id=order.id, operation="card.save", payload={"payment_method_row_id": pm.id},
                    idempotency_key=make_key(k, "card", pm.gateway_token))
            if order.due_today_cents > 0:
                enqueue(s, order_id=order.id, operation="payment.charge",
                        payload={"payment_method_row_id": pm.id, "amount_cents": order.due_today_cents,
                                 "currency": self.currency},
                        idempotency_key=make_key(k, "charge", pm.gateway_token))
            # A sale's promotion is spent on today's charge; a migration's on its first invoice.
            sub_promo = promo.id if (promo and anchor is not None) else None
            enqueue(s, order_id=order.id, operation="subscription.create",
                    payload={"first_billing": first_billing.isoformat(), "promotion_id": sub_promo,
                             "currency": self.currency},
                    idempotency_key=make_key(k, "subscription"))
            order.state, order.last_error, order.updated_at = OrderState.PAYMENT_PENDING, None, utcnow()
            s.add(order)
            audit.record(s, self.actor, f"order.{kind}.billing_started", "sales_order", order.id,
                         before=before, after=audit.snapshot(order))
        self.processor.run_order(order_id)
        return self.outcome(order_id)

    def _ensure_membership(self, s: Session, order: SalesOrder, kind: str, first_billing: dt.date,
                           today: dt.date) -> None:
        if order.membership_id is None:
            m = Membership(customer_id=order.customer_id, plan_id=order.plan_id, status=MembershipStatus.ACTIVE,
                           source=MembershipSource.MIGRATION if kind == OrderKind.MIGRATION else MembershipSource.SALE,
                           started_on=today, next_billing_on=first_billing, legacy_member_id=order.legacy_member_id,
                           pending_sync=True)
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
            m = s.get(Membership, order.membership_id)
            m.status, m.next_billing_on, m.pending_sync = MembershipStatus.ACTIVE, first_billing, True
            s.add(m)

    def outcome(self, order_id: int) -> BillingOutcome:
        with self.db.read() as s:
            return self._outcome(s.get(SalesOrder, order_id))

    @staticmethod
    def _outcome(order: SalesOrder) -> BillingOutcome:
        return BillingOutcome(order.id, order.state, order.last_error, order.state == OrderState.PENDING_SYNC)

    def cancel_order(self, order_id: int) -> BillingOutcome:
        """Abandon an unfinished order (e.g. after a decline): nothing left pending, membership cancelled."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order.state == OrderState.CANCELLED:
                return self._outcome(order)  # already done: a second tap changes nothing
            if order.state == OrderState.COMPLETED:
                raise GatewayRejected("A completed order cannot be cancelled here: refund or cancel the membership.")
            if order.gateway_subscription_id or order.gateway_payment_id:
                raise GatewayRejected("Money already moved for this order: refund it instead of cancelling.")
            for row in s.exec(select(Outbox).where(Outbox.order_id == order_id, Outbox.status == "pending")).all():
                row.status, row.last_error = "failed", "order cancelled"
                s.add(row)
            before = audit.snapshot(order)
            order.state, order.updated_at = OrderState.CANCELLED, utcnow()
            if order.membership_id:
                m = s.get(Membership, order.membership_id)
                m.status, m.pending_sync = MembershipStatus.CANCELLED, False
                s.add(m)
                if order.promotion_id:
                    # The use was counted when the membership was made; no sale, so the code gets it back.
                    _count_redemption(s, order.promotion_id, -1)
            s.add(order)
            audit.record(s, self.actor, "order.cancel", "sales_order", order.id, before=before,
                         after=audit.snapshot(order))
            return self._outcome(order)

    # --- membership changes ------------------------------------------------------------------------
    def _membership_call(self, operation: str, membership_id: int, idempotency_key: str,
                         **payload: Any) -> RunResult:
        with self.db.write() as s:
            m = s.get(Membership, membership_id)
            if m is None:
                raise GatewayRejected(f"Membership {membership_id} does not exist.")
            enqueue(s, order_id=None, operation=operation,
                    payload={"membership_id": membership_id, "currency": self.currency, **payload},
                    idempotency_key=idempotency_key)
            audit.record(s, self.actor, operation, "membership", membership_id, after=payload or None)
        return self.processor.run_order(None)

    def pause(self, membership_id: int, *, idempotency_key: str, resumes_at: dt.date | None = None) -> RunResult:
        return self._membership_call("subscription.pause", membership_id, idempotency_key,
                                     resumes_at=resumes_at.isoformat() if resumes_at else None)

    def resume(self, membership_id: int, *, idempotency_key: str) -> RunResult:
        return self._membership_call("subscription.resume", membership_id, idempotency_key)

    def cancel_at_period_end(self, membership_id: int, *, idempotency_key: str) -> RunResult:
        return self._membership_call("subscription.cancel", membership_id, idempotency_key)

    def change_plan(self, membership_id: int, plan_id: int, *, idempotency_key: str) -> RunResult:
        return self._membership_call("subscription.change_plan", membership_id, idempotency_key, plan_id=plan_id)

    def refund(self, order_id: int, *, amount_cents: int | None = None, idempotency_key: str | None = None) -> RunResult:
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if not order.gateway_payment_id:
                raise GatewayRejected("Nothing was charged on this order, so there is nothing to refund.")
            key = idempotency_key or make_key(order.idempotency_key, "refund", str(amount_cents))
            enqueue(s, order_id=None, operation="payment.refund",
                    payload={"payment_id": order.gateway_payment_id, "amount_cents": amount_cents,
                             "order_id": order_id}, idempotency_key=key)
            audit.record(s, self.actor, "order.refund", "sales_order", order_id, after={"amount_cents": amount_cents})
        return self.processor.run_order(None)

    # --- outbox hooks ----------------------------------------------------------------------------------
    def on_synced(self, s: Session, order_id: int) -> None:
        order = s.get(SalesOrder, order_id)
        if order.state not in (OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC):
            return
        before = audit.snapshot(order)
        order.state, order.last_error = OrderState.COMPLETED, None
        order.completed_at = order.updated_at = utcnow()
        s.add(order)
        if order.membership_id:
            m = s.get(Membership, order.membership_id)
            m.pending_sync = False
            m.updated_at = utcnow()
            s.add(m)
        audit.record(s, self.actor, "order.completed", "sales_order", order.id, before=before,
                     after=audit.snapshot(order))

    def on_pending_sync(self, s: Session, order_id: int, error: PaymentError) -> None:
        order = s.get(SalesOrder, order_id)
        if order.state in (OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC):
            order.state = OrderState.PENDING_SYNC
            order.last_error, order.updated_at = str(error), utcnow()
            s.add(order)
            if order.membership_id:
                m = s.get(Membership, order.membership_id)
                m.pending_sync = True
                s.add(m)

    def on_failed(self, s: Session, order_id: int, entry: Outbox, error: PaymentError) -> None:
        order = s.get(SalesOrder, order_id)
        before = audit.snapshot(order)
        # Back to the payment step: the attendant can take another card (new keys) or cancel.
        order.state, order.last_error, order.updated_at = OrderState.PAYMENT_PENDING, str(error), utcnow()
        s.add(order)
        if order.membership_id:
            m = s.get(Membership, order.membership_id)
            m.status = MembershipStatus.PAST_DUE
            s.add(m)
        audit.record(s, self.actor, "order.payment_failed", "sales_order", order.id, before=before,
                     after={"step": entry.operation, "error": str(error)})


def sync_plans(db: Any, gateway: PaymentGateway, currency: str = "usd") -> list[tuple[str, str, str]]:
    """Create products/plans (and promotion coupons) at the gateway; store their ids on our rows."""
    out = []
    with db.read() as s:
        plans = list(s.exec(select(Plan).where(Plan.active)).all())
        promos = list(s.exec(select(Promotion).where(Promotion.active)).all())
    for plan in plans:
        synced = gateway.sync_plan(PlanSpec(plan.code, plan.name, plan.price_cents, plan.interval, currency))
        with db.write() as s:
            row = s.get(Plan, plan.id)
            row.gateway_product_id, row.gateway_price_id = synced.product_id, synced.price_id
            s.add(row)
        out.append((plan.code, synced.product_id, synced.price_id))
    for promo in promos:
        cid = gateway.sync_coupon(promotion_coupon(promo, currency))
        with db.write() as s:
            row = s.get(Promotion, promo.id)
            row.gateway_coupon_id = cid
            s.add(row)
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
