"""The membership lifecycle's tables: they live in db/models/billing.py (kept here for the many importers)."""

from db.models.billing import BillingSync, DunningMessage, GatewayEvent, MembershipPayment, PaymentKind

__all__ = ["BillingSync", "DunningMessage", "GatewayEvent", "MembershipPayment", "PaymentKind"]
