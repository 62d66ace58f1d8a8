"""The order's outbox operations: what each billing step sends to the gateway, and records.

Split from billing.py (which keeps the BillingService that writes these rows): one class per step,
each with `execute` (the gateway call, with the row's key), `apply` (our rows, in the transaction
that marks the row done) and, where money moves, `recover` (find an earlier attempt by the order key).
OPERATIONS maps every operation name the outbox may meet to its class.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from clarity_tui.payments.base import ChargeResult, CouponSpec, CustomerInfo, PaymentGateway
from clarity_tui.payments.cards import CardToken
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.card_present import CARD_PRESENT_CHARGE, CARD_PRESENT_OPERATIONS
from clarity_tui.services.dunning import DunningLink
from clarity_tui.services.hosted_card import HOSTED_CARD_OPERATIONS
from clarity_tui.services.identity import display_name
from clarity_tui.services.membership_steps import ACTION_OPERATIONS, make_default
from clarity_tui.services.outbox import NOT_RUN, Operation, existing, gateway_customer, payload_of
from clarity_tui.services.plan_pricing import extra_vehicles, plan_spec
from clarity_tui.services.reader_card import READER_CARD_OPERATIONS
from clarity_tui.services.sales_tax import spec_from_payload, tax_metadata
from clarity_tui.services.wash_payment import WASH_CHARGE, WASH_OPERATIONS
from db.models import (
    Customer,
    Membership,
    OrderKind,
    Outbox,
    OutboxStatus,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    utcnow,
)


def _order(s: Session, entry: Outbox) -> SalesOrder:
    return existing(s, SalesOrder, entry.order_id)


class EnsureCustomer:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            c = existing(s, Customer, payload_of(entry)["customer_id"])
            if c.gateway_customer_id:
                return {"gateway_customer_id": c.gateway_customer_id, "existing": True}
            info = CustomerInfo(c.customer_number, display_name(c.first_name, c.last_name), c.email, c.phone_e164)
        return {"gateway_customer_id": gateway.ensure_customer(info, idempotency_key=entry.idempotency_key)}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        c = existing(s, Customer, payload_of(entry)["customer_id"])
        c.gateway_customer_id = result["gateway_customer_id"]
        c.updated_at = utcnow()
        s.add(c)


class SaveCard:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            pm = existing(s, PaymentMethod, payload_of(entry)["payment_method_row_id"])
            cus = gateway_customer(s, pm.customer_id)
            token = CardToken(pm.gateway_token, pm.brand, pm.last4, pm.exp_month, pm.exp_year)
        saved = gateway.save_card(cus, token, idempotency_key=entry.idempotency_key,
                                  make_default=payload_of(entry).get("make_default", True))
        return {"payment_method_id": saved.payment_method_id, "brand": saved.brand, "last4": saved.last4,
                "exp_month": saved.exp_month, "exp_year": saved.exp_year}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        pm = existing(s, PaymentMethod, payload_of(entry)["payment_method_row_id"])
        pm.brand, pm.last4 = result["brand"] or pm.brand, result["last4"] or pm.last4
        pm.exp_month, pm.exp_year = result["exp_month"] or pm.exp_month, result["exp_year"] or pm.exp_year
        s.add(pm)
        if payload_of(entry).get("make_default", True):
            assert pm.id is not None  # a stored row
            make_default(s, pm.id)


class Charge:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            order = _order(s, entry)
            p = payload_of(entry)
            pm = existing(s, PaymentMethod, p["payment_method_row_id"])
            cus = gateway_customer(s, order.customer_id)
        r = gateway.charge(cus, pm.gateway_token, p["amount_cents"],
                           currency=p.get("currency", "usd"),
                           metadata={"clarity_order": str(order.id), "order_key": order.idempotency_key,
                                     **tax_metadata(p)},
                           idempotency_key=entry.idempotency_key)
        return {"payment_id": r.payment_id, "charge_id": r.charge_id, "amount_cents": r.amount_cents}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        with db.read() as s:
            order = _order(s, entry)
            cus = gateway_customer(s, order.customer_id)
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
        p = payload_of(entry)
        with db.read() as s:
            order = _order(s, entry)
            plan = existing(s, Plan, order.plan_id)
            promo = existing(s, Promotion, p["promotion_id"]) if p.get("promotion_id") else None
            cus = gateway_customer(s, order.customer_id)
            spec = plan_spec(plan, p.get("currency", "usd"))
            coupon = promotion_coupon(promo, p.get("currency", "usd")) if promo else None
            # Rows from before family billing have no count: the order's vehicles say it.
            extra = int(p.get("extra_vehicles", extra_vehicles(plan, len(order.vehicle_ids or []))))
        synced = gateway.sync_plan(spec)
        coupon_id = gateway.sync_coupon(coupon) if coupon else None
        # The renewals' sales tax: the gateway's tax rate (found or made by its spec, like the plan's price).
        tax_spec = spec_from_payload(p.get("tax_rate"))
        tax_rate_ids = [gateway.sync_tax_rate(tax_spec)] if tax_spec is not None else []
        r = gateway.create_subscription(
            cus, synced.price_id, first_billing=dt.date.fromisoformat(p["first_billing"]), coupon_id=coupon_id,
            metadata={"clarity_order": str(order.id), "order_key": order.idempotency_key},
            extra_price_id=synced.extra_price_id, extra_vehicles=extra, tax_rate_ids=tax_rate_ids,
            idempotency_key=entry.idempotency_key)
        return {"subscription_id": r.subscription_id, "status": r.status, "product_id": synced.product_id,
                "price_id": synced.price_id, "coupon_id": coupon_id, "tax_rate_ids": tax_rate_ids}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        p = payload_of(entry)
        with db.read() as s:
            order = _order(s, entry)
            plan = existing(s, Plan, order.plan_id)
            promo = existing(s, Promotion, p["promotion_id"]) if p.get("promotion_id") else None
            cus = gateway_customer(s, order.customer_id)
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
            m = existing(s, Membership, order.membership_id)
            m.gateway_subscription_id = result["subscription_id"]
            s.add(m)
        plan = existing(s, Plan, order.plan_id)
        if result.get("product_id") and result.get("price_id"):  # a recovered result may not know them
            plan.gateway_product_id, plan.gateway_price_id = result["product_id"], result["price_id"]
            s.add(plan)
        if result.get("coupon_id") and payload_of(entry).get("promotion_id"):
            promo = existing(s, Promotion, payload_of(entry)["promotion_id"])
            promo.gateway_coupon_id = result["coupon_id"]
            s.add(promo)


class RefundIfCharged:
    """A cancelled order whose charge was sent but never answered: look it up, refund it if it happened.

    Its own refund is looked for first (by every key the row has used), so a replay after a lost
    answer, a cached 5xx or a day offline never refunds twice."""

    def _found(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> tuple[Any, dict[str, Any] | None]:
        with db.read() as s:
            order = existing(s, SalesOrder, payload_of(entry)["order_id"])
            # A single wash is paid one-off on the reader, often by nobody we know: found by its order key.
            wash = order.kind == OrderKind.WASH
            cus = None if wash else existing(s, Customer, order.customer_id).gateway_customer_id  # none: not charged
            key = order.idempotency_key
        if wash:
            # A refunded one too: a replay after our refund's answer was lost must find that refund.
            paid = gateway.find_card_present_payment(None, key, save_card=False, include_refunded=True)
            charge = None if paid is None else ChargeResult(paid.payment_id, paid.amount_cents - paid.refunded_cents,
                                                            "succeeded", paid.charge_id)
        else:
            charge = gateway.find_charge(cus, key) if cus else None
        if charge is None:
            return None, {"payment_id": None, "amount_cents": 0, "refund_id": None}
        for refund_key in [*(payload_of(entry).get("prior_keys") or []), entry.idempotency_key]:
            done = gateway.find_refund(charge.payment_id, refund_key)
            if done is not None:
                return charge, {"payment_id": charge.payment_id, "amount_cents": done.amount_cents,
                                "refund_id": done.refund_id}
        if charge.amount_cents <= 0:  # refunded already, by someone else (a manager): nothing left to give back
            return charge, {"payment_id": charge.payment_id, "amount_cents": 0, "refund_id": None}
        return charge, None

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        charge, known = self._found(db, gateway, entry)
        if known is not None:
            return known
        r = gateway.refund(charge.payment_id, amount_cents=charge.amount_cents, idempotency_key=entry.idempotency_key)
        return {"payment_id": charge.payment_id, "amount_cents": r.amount_cents, "refund_id": r.refund_id}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        charge, known = self._found(db, gateway, entry)
        return known if charge is not None else None

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order_id = payload_of(entry)["order_id"]
        if result.get("payment_id"):
            s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id).values(
                gateway_payment_id=func.coalesce(col(SalesOrder.gateway_payment_id), result["payment_id"]),
                refunded_cents=col(SalesOrder.refunded_cents) + int(result["amount_cents"])))
        audit.record(s, Actor.system("outbox"), "order.refunded" if result.get("payment_id") else "order.nothing_charged",
                     "sales_order", order_id, after=result)


# Steps that take the first payment, and the refunds that settle a cancelled or failed order.
CHARGE_OPERATIONS = ("payment.charge", CARD_PRESENT_CHARGE, WASH_CHARGE)
SETTLE_OPERATIONS = ("payment.refund", "payment.refund_if_charged")


def attempt_suffix(s: Session, order_id: int) -> str:
    """"" for an order's first attempt, "#2", "#3"... after each step that failed for good."""
    failed = s.exec(select(Outbox.id).where(Outbox.order_id == order_id, Outbox.status == OutboxStatus.FAILED,
                                            col(Outbox.last_error).not_in([NOT_RUN, "order cancelled"]))).all()
    return f"#{len(failed) + 1}" if failed else ""


def charged_cents(s: Session, order: SalesOrder) -> int:
    """What the gateway took for the order: the result of the charge row that made its payment."""
    for row in s.exec(select(Outbox).where(Outbox.order_id == order.id,
                                           col(Outbox.operation).in_(CHARGE_OPERATIONS))):
        if (row.result or {}).get("payment_id") == order.gateway_payment_id:
            return int((row.result or {}).get("amount_cents") or 0)
    return order.due_today_cents


def promotion_coupon(promo: Promotion, currency: str = "usd") -> CouponSpec:
    if promo.kind == "percent_off":
        return CouponSpec(promo.code, percent_off=promo.value, currency=currency)
    return CouponSpec(promo.code, amount_off_cents=promo.value, currency=currency)


OPERATIONS: dict[str, Operation] = {
    "customer.ensure": EnsureCustomer(),
    "card.save": SaveCard(),
    "payment.charge": Charge(),
    "subscription.create": CreateSubscription(),
    "payment.refund_if_charged": RefundIfCharged(),
    "dunning.link": DunningLink(),  # the past-due text's card-update link (services/dunning.py)
    **ACTION_OPERATIONS,
    **CARD_PRESENT_OPERATIONS,
    **WASH_OPERATIONS,  # a single wash, paid on the reader (services/wash_payment.py)
    **HOSTED_CARD_OPERATIONS,
    **READER_CARD_OPERATIONS,
}
