"""The simulated gateway's own store (issue 4).

The simulated gateway keeps its customers, cards, intents, subscriptions, refunds, products/plans and
coupons here, so simulator mode behaves like a real gateway across restarts, with the same idempotency
semantics.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from db.models.base import json_field, utcnow


class SimGatewayObject(SQLModel, table=True):
    """One object of the simulated gateway (cus_sim_..., pm_sim_..., sub_sim_...)."""

    __tablename__ = "sim_gateway_object"
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32, index=True)
    customer: str | None = Field(default=None, max_length=64, index=True)
    data: dict[str, Any] | None = json_field()
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class SimGatewayRequest(SQLModel, table=True):
    """An idempotency record: the same key returns the same stored response."""

    __tablename__ = "sim_gateway_request"
    idempotency_key: str = Field(primary_key=True, max_length=255)
    operation: str = Field(max_length=48)
    # sha256 of the request parameters: a reused key with other parameters is refused.
    request_hash: str = Field(max_length=64)
    response: dict[str, Any] | None = json_field()
    created_at: dt.datetime = Field(default_factory=utcnow)
