"""Payments: the PaymentGateway interface, the Stripe gateway and the simulated one.

Headless (no Textual). Heavy modules (stripe) load lazily through `make_gateway`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clarity_tui.payments.base import (
    ChargeResult,
    CouponSpec,
    CustomerInfo,
    PaymentGateway,
    PlanSpec,
    RefundResult,
    SubscriptionResult,
    SyncedPlan,
)
from clarity_tui.payments.cards import CardToken, ManualCard, SavedCard
from clarity_tui.payments.errors import (
    CardDeclined,
    CardExpired,
    GatewayAuthError,
    GatewayRejected,
    GatewayUnavailable,
    IdempotencyConflict,
    InvalidCard,
    PaymentError,
    PromotionInvalid,
)

if TYPE_CHECKING:
    from clarity_tui.config import Settings
    from db.engine import Database


def make_gateway(settings: Settings, db: Database, **kw: Any) -> PaymentGateway:
    """The gateway named by settings.payments.gateway ("simulated" or "stripe")."""
    if settings.payments.gateway == "stripe":
        from clarity_tui.payments.stripe_gateway import StripeGateway

        return StripeGateway.from_settings(settings, **kw)
    from clarity_tui.payments.simulated import SimulatedGateway

    return SimulatedGateway(db, currency=settings.payments.currency)


__all__ = [
    "CardDeclined", "CardExpired", "CardToken", "ChargeResult", "CouponSpec", "CustomerInfo", "GatewayAuthError",
    "GatewayRejected", "GatewayUnavailable", "IdempotencyConflict", "InvalidCard", "ManualCard", "PaymentError",
    "PaymentGateway", "PlanSpec", "PromotionInvalid", "RefundResult", "SavedCard", "SubscriptionResult",
    "SyncedPlan", "make_gateway",
]
