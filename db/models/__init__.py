"""The site's whole data model as SQLModel tables, one module per domain; every name is re-exported here.

Conventions:
- money is integer cents; times are timezone-aware UTC (`utcnow()`), dates are site-local dates;
- `version` columns back optimistic concurrency checks between terminals;
- card data is never stored: only gateway tokens, brand, last 4 and expiry.

Importing this package registers every table on one metadata (create_all, Alembic, the tests).
"""

from __future__ import annotations

from sqlmodel import SQLModel

from db.models.base import json_field, utcnow
from db.models.billing import BillingSync, DunningMessage, GatewayEvent, MembershipPayment, PaymentKind
from db.models.customers import (
    AccountBenefit,
    Customer,
    CustomerRelationship,
    Note,
    PasswordReset,
    QuestionPrompt,
    RelationshipKind,
    Touchpoint,
    Vehicle,
    WebLogin,
)
from db.models.legacy import LegacyMember, LegacyMemberPlate
from db.models.memberships import Membership, MembershipSource, MembershipVehicle, PaymentMethod, Plan, Promotion, PromotionKind
from db.models.operators import AuditLog, Operator, OperatorShift, Role
from db.models.orders import (
    OrderKind,
    OrderProgress,
    Outbox,
    OutboxStatus,
    SalesOrder,
    Signature,
    TermsVersion,
    VehicleClaim,
)
from db.models.sim_gateway import SimGatewayObject, SimGatewayRequest
from db.models.site import OPEN_PLATE_INDEX, Lane, LaneKind, Site, VehicleSession
from db.plate_shape import CONFUSIONS, plate_shape_sql
from db.models.wash import (
    Commission,
    CommissionEntry,
    CommissionKind,
    CommissionRate,
    DispatchStatus,
    OrderLine,
    PlanWashItem,
    Receipt,
    ReceiptStatus,
    VisitPeriod,
    VisitRefusal,
    Wash,
    WashItem,
    WashItemKind,
    WashKind,
)
from db.states import (
    CURRENT_MEMBERSHIP_STATES,
    OPEN_ORDER_STATES,
    OPEN_SESSION_STATES,
    MembershipStatus,
    OrderState,
    SessionStatus,
)

metadata = SQLModel.metadata

__all__ = [
    "CONFUSIONS", "CURRENT_MEMBERSHIP_STATES", "OPEN_ORDER_STATES", "OPEN_PLATE_INDEX", "OPEN_SESSION_STATES",
    "AccountBenefit", "AuditLog", "Commission", "CommissionEntry", "CommissionKind", "CommissionRate",
    "DispatchStatus", "OrderLine", "PlanWashItem", "Receipt", "ReceiptStatus", "VisitPeriod", "VisitRefusal", "Wash", "WashItem",
    "WashItemKind", "WashKind", "BillingSync", "Customer", "CustomerRelationship", "DunningMessage",
    "GatewayEvent", "Lane", "LaneKind", "LegacyMember", "LegacyMemberPlate", "Membership", "MembershipPayment",
    "MembershipSource", "MembershipStatus", "MembershipVehicle", "Note", "Operator", "OperatorShift", "OrderKind",
    "OrderProgress", "OrderState", "Outbox", "OutboxStatus", "PasswordReset", "PaymentKind", "PaymentMethod",
    "Plan", "Promotion", "PromotionKind", "QuestionPrompt", "RelationshipKind", "Role", "SalesOrder", "Signature",
    "SessionStatus", "SimGatewayObject", "SimGatewayRequest", "Site", "TermsVersion", "Touchpoint", "Vehicle", "VehicleClaim",
    "VehicleSession", "WebLogin", "json_field", "metadata", "plate_shape_sql", "utcnow",
]
