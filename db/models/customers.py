"""Customers, their vehicles, and what the customer record's tabs keep: relationships, web login,
touchpoints, benefits and notes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utcnow
from db.plate_shape import plate_shape_sql


class RelationshipKind(StrEnum):
    HOUSEHOLD = "household"
    BUSINESS = "business"
    CONTACT = "contact"
    SOLD_FOR = "sold_for"


class Customer(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_number: str = Field(max_length=20, unique=True)
    first_name: str = Field(default="", max_length=80)
    last_name: str = Field(default="", max_length=80)
    phone_e164: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    address_line1: str | None = Field(default=None, max_length=120)
    address_line2: str | None = Field(default=None, max_length=120)
    city: str | None = Field(default=None, max_length=80)
    region: str | None = Field(default=None, max_length=40)
    postal_code: str | None = Field(default=None, max_length=16)
    country: str | None = Field(default=None, max_length=2)
    question_answers: dict[str, Any] | None = json_field()
    gateway_customer_id: str | None = Field(default=None, max_length=64)
    # Search keys, maintained by the customers service: casefolded, accent-free
    # names, lower-case email, and reversed phone digits so "last N digits" is
    # an index prefix scan.
    search_last: str = Field(default="", max_length=80, index=True)
    search_first: str = Field(default="", max_length=80, index=True)
    email_lower: str | None = Field(default=None, max_length=254, index=True)
    phone_rev: str | None = Field(default=None, max_length=20, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    version: int = 1


class Vehicle(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("plate_region", "plate_normalized"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    plate: str = Field(max_length=16)
    plate_region: str = Field(default="", max_length=16)
    plate_normalized: str = Field(max_length=16, index=True)
    make: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=40)
    colour: str | None = Field(default=None, max_length=24)
    year: int | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class QuestionPrompt(SQLModel, table=True):
    """A configurable customer question ("How did you hear about us?")."""

    __tablename__ = "question_prompt"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=40, unique=True)
    text: str = Field(max_length=200)
    choices: list[str] | None = json_field()
    position: int = 0
    active: bool = True


class CustomerRelationship(SQLModel, table=True):
    __tablename__ = "customer_relationship"
    __table_args__ = (UniqueConstraint("customer_id", "related_customer_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    related_customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str = Field(default=RelationshipKind.HOUSEHOLD, max_length=16)
    created_at: dt.datetime = Field(default_factory=utcnow)


class WebLogin(SQLModel, table=True):
    __tablename__ = "web_login"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", unique=True)
    username: str = Field(max_length=120, unique=True)
    # scrypt hash, never the password.
    password_hash: str | None = Field(default=None, max_length=255)
    must_change_password: bool = False
    reset_sent_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class PasswordReset(SQLModel, table=True):
    """A password-reset link sent by email: only the token's sha256 is kept."""

    __tablename__ = "password_reset"
    id: int | None = Field(default=None, primary_key=True)
    web_login_id: int = Field(foreign_key="web_login.id", index=True)
    token_sha256: str = Field(max_length=64, unique=True)
    sent_to: str = Field(max_length=254)
    expires_at: dt.datetime
    used_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class Touchpoint(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    title: str = Field(max_length=200)
    due_on: dt.date | None = None
    assignee_operator_id: int | None = Field(default=None, foreign_key="operator.id")
    done: bool = False
    done_at: dt.datetime | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class AccountBenefit(SQLModel, table=True):
    __tablename__ = "account_benefit"
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    # The membership an extra benefit was added to (services/member_benefits.py); None: an account benefit.
    membership_id: int | None = Field(default=None, foreign_key="membership.id", index=True)
    kind: str = Field(max_length=40)
    description: str | None = Field(default=None, max_length=200)
    quantity: int = 1
    remaining: int = 1
    expires_on: dt.date | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    operator_notice: bool = False
    author_operator_id: int | None = Field(default=None, foreign_key="operator.id")
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


# Customer search (issue 7, migration 0003): prefix ranges on the folded keys. On
# PostgreSQL these and the single-column search indexes are built COLLATE "C" (byte
# order, what the range queries use); see services/search.py.
Index("ix_customer_last_first", Customer.search_last, Customer.search_first)
Index("ix_customer_first_last", Customer.search_first, Customer.search_last)
Index("ix_customer_number_prefix", Customer.customer_number)
# The look-alike shape of the site's own vehicles (migration 0010): a misread of a current customer's
# plate is found by equality on it (services/plate_lookalikes.py).
Index("ix_vehicle_plate_shape", plate_shape_sql(Vehicle.plate_normalized))
