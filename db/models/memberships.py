"""Plans, memberships and the vehicles they cover, saved cards and promotions."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Column, Integer, String
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utcnow
from db.states import MembershipStatus


class MembershipSource(StrEnum):
    SALE = "sale"
    MIGRATION = "migration"


class PromotionKind(StrEnum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    REFERRAL = "referral"


class Plan(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=80)
    tier: int = 1
    price_cents: int
    interval: str = Field(default="month", max_length=8)
    benefits: list[str] | None = json_field()
    active: bool = True
    # Family plans: the price covers `max_vehicles`; each extra vehicle costs extra, up to
    # `vehicle_limit` vehicles in all (None: max_vehicles, or DEFAULT_VEHICLE_LIMIT when extras
    # cost money; see services/plan_pricing.py). Never unlimited.
    max_vehicles: int = 1
    extra_vehicle_price_cents: int = 0
    vehicle_limit: int | None = None
    gateway_product_id: str | None = Field(default=None, max_length=64)
    gateway_price_id: str | None = Field(default=None, max_length=64)
    # Member visits (issue 18): at most `visit_limit` washes per `visit_period` ("day" or "month") per
    # covered car; None: no limit. Our terms say once a day, so that is the default.
    # No column default (SQLModel would give the column the default, and the ORM then writes 1 for an
    # explicit None): the default is the model's, so Plan(visit_limit=None) means no limit.
    visit_limit: int | None = Field(default=1, sa_column=Column(Integer, nullable=True))
    visit_period: str | None = Field(default="day", sa_column=Column(String(8), nullable=True))


class Membership(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    status: str = Field(default=MembershipStatus.ACTIVE, max_length=16)
    source: str = Field(default=MembershipSource.SALE, max_length=16)
    started_on: dt.date
    expires_on: dt.date | None = None
    next_billing_on: dt.date | None = None
    legacy_member_id: int | None = Field(default=None, foreign_key="legacy_member.id")
    legacy_id: str | None = Field(default=None, max_length=64)
    gateway_subscription_id: str | None = Field(default=None, max_length=64)
    cancel_at_period_end: bool = False
    pending_sync: bool = False
    # A downgrade waits for the next billing date: the plan it changes to, and when.
    scheduled_plan_id: int | None = Field(default=None, foreign_key="plan.id")
    scheduled_plan_on: dt.date | None = None
    # The billing engine's view (issue 13): the date the member has paid through (the current period's
    # end; the unpaid period's start while past due), the gateway's own status, and a pause's end.
    paid_through: dt.date | None = None
    gateway_status: str | None = Field(default=None, max_length=24)
    resumes_on: dt.date | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    version: int = 1


class MembershipVehicle(SQLModel, table=True):
    __tablename__ = "membership_vehicle"
    membership_id: int = Field(foreign_key="membership.id", primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id", primary_key=True, index=True)


class PaymentMethod(SQLModel, table=True):
    """A saved card, by gateway token only. Never a card number or CVC."""

    __tablename__ = "payment_method"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    gateway: str = Field(default="simulated", max_length=16)
    gateway_token: str = Field(max_length=64)
    brand: str = Field(max_length=20)
    last4: str = Field(max_length=4)
    exp_month: int
    exp_year: int
    is_default: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow)
    detached_at: dt.datetime | None = None


class Promotion(SQLModel, table=True):
    """A promotion or referral code, mapped to a gateway coupon."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    kind: str = Field(default=PromotionKind.PERCENT_OFF, max_length=16)
    # Percent (0-100) for percent_off; cents for amount_off and referral.
    value: int
    description: str | None = Field(default=None, max_length=200)
    referring_customer_id: int | None = Field(default=None, foreign_key="customer.id")
    # None: valid for every plan; otherwise a list of plan codes.
    plan_codes: list[str] | None = json_field()
    max_redemptions: int | None = None
    times_redeemed: int = 0
    expires_at: dt.datetime | None = None
    active: bool = True
    gateway_coupon_id: str | None = Field(default=None, max_length=64)
