"""Promotion and referral codes: validation with specific messages, and prices.

A promotion discounts the first billing period: today's charge on a sale, the
first invoice on the kept billing date for a migration (a Stripe coupon with
duration "once").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session, func, select

from clarity_tui.payments.errors import PromotionInvalid
from clarity_tui.services.plan_pricing import subtotal
from db.engine import Database
from db.models import Plan, Promotion, PromotionKind, utcnow


@dataclass(frozen=True)
class Price:
    subtotal_cents: int
    discount_cents: int

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents - self.discount_cents


def discount_for(promotion: Promotion | None, subtotal_cents: int) -> int:
    if promotion is None or subtotal_cents <= 0:
        return 0
    if promotion.kind == PromotionKind.PERCENT_OFF:
        # Round half up to the cent, like Stripe's percent_off.
        off = (subtotal_cents * promotion.value + 50) // 100
    else:  # amount_off and referral credits are cents
        off = promotion.value
    return max(0, min(off, subtotal_cents))


def price_with(promotion: Promotion | None, subtotal_cents: int) -> Price:
    return Price(subtotal_cents, discount_for(promotion, subtotal_cents))


def plan_subtotal(plan: Plan, vehicles: int = 1) -> int:
    return subtotal(plan, vehicles)


def find_code(session: Session, code: str) -> Promotion | None:
    wanted = code.strip().upper()
    return session.exec(select(Promotion).where(func.upper(Promotion.code) == wanted)).first()


def check(promotion: Promotion | None, code: str, plan_code: str, now: dt.datetime | None = None) -> Promotion:
    """Raise PromotionInvalid with a message saying what is wrong and what to do."""
    now = now or utcnow()
    shown = code.strip().upper()
    if not shown:
        raise PromotionInvalid("Enter a promotion code, or leave the field empty for none.", code="empty")
    if promotion is None or not promotion.active:
        raise PromotionInvalid(f"Promotion code {shown} does not exist: check the spelling with the customer.",
                               code="unknown")
    expires = promotion.expires_at
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        if expires <= now:
            raise PromotionInvalid(f"Promotion code {shown} expired on {expires.date().isoformat()}: "
                                   "it can no longer be used.", code="expired")
    if promotion.max_redemptions is not None and promotion.times_redeemed >= promotion.max_redemptions:
        raise PromotionInvalid(f"Promotion code {shown} has been used up (all {promotion.max_redemptions} uses "
                               "taken).", code="used_up")
    if promotion.plan_codes and plan_code.upper() not in {p.upper() for p in promotion.plan_codes}:
        allowed = ", ".join(promotion.plan_codes)
        raise PromotionInvalid(f"Promotion code {shown} is not valid for the {plan_code.upper()} plan; it is valid "
                               f"for: {allowed}.", code="wrong_plan")
    return promotion


def validate_code(session: Session, code: str, plan_code: str, now: dt.datetime | None = None) -> Promotion:
    """Look the code up and check it; return the Promotion or raise PromotionInvalid."""
    return check(find_code(session, code), code, plan_code, now)


class PromotionService:
    """The same checks over a Database, for screens and the CLI."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def validate_code(self, code: str, plan_code: str, now: dt.datetime | None = None) -> Promotion:
        with self.db.read() as s:
            return validate_code(s, code, plan_code, now)

    def quote(self, plan_code: str, code: str | None = None, vehicles: int = 1,
              now: dt.datetime | None = None) -> Price:
        with self.db.read() as s:
            plan = s.exec(select(Plan).where(Plan.code == plan_code)).one()
            promo = validate_code(s, code, plan_code, now) if code else None
            return price_with(promo, plan_subtotal(plan, vehicles))
