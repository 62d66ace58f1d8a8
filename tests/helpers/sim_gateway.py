"""The simulated gateway's billing clock as tests drive it: a subscribed customer, the events it sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clarity_tui.payments.base import CustomerInfo, PlanSpec
from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.simulated import SimulatedGateway, sim_token

FUTURE = dt.date.today().year + 3


def noon(days: int) -> int:
    """Noon UTC `days` from today, as a Unix time."""
    d = dt.date.today() + dt.timedelta(days=days)
    return int(dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp())


def member(gw: SimulatedGateway, in_days: int = 3, *, outcome: str = "ok", plan: PlanSpec | None = None,
           key: str = "m", **sub_kw: Any) -> tuple[str, str, str]:
    """A gateway customer with a saved card and a subscription whose first billing is `in_days` away."""
    cus = gw.ensure_customer(CustomerInfo(f"C-{key}", key), idempotency_key=f"{key}:cus")
    pm = gw.save_card(cus, CardToken(sim_token(outcome), "visa", "4242", 12, FUTURE), idempotency_key=f"{key}:card")
    synced = gw.sync_plan(plan or PlanSpec("BASIC", "Basic", 1999))
    sub = gw.create_subscription(cus, synced.price_id, first_billing=dt.date.today() + dt.timedelta(days=in_days),
                                 extra_price_id=synced.extra_price_id, idempotency_key=f"{key}:sub", **sub_kw)
    return cus, pm.payment_method_id, sub.subscription_id


def bodies(gw: SimulatedGateway, after: str | None = None) -> list[dict]:
    """Every event after `after`, as Stripe sends them."""
    page = gw.list_events(after=after, types=(), limit=100)
    assert not page.has_more
    return [gw.retrieve_event(e.event_id) for e in page.events]
