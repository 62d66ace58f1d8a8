"""Which membership counts as current: one rule (services/membership_rules.py), built on db.states."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select

from clarity_tui.services.membership_rules import CURRENT_STATUSES, current_membership, current_rank, is_current
from db.engine import Database
from db.models import Customer, Membership, Plan
from db.states import CURRENT_MEMBERSHIP_STATES


def test_the_current_statuses_are_the_database_states_best_first() -> None:
    assert [str(s) for s in CURRENT_STATUSES] == list(CURRENT_MEMBERSHIP_STATES)
    assert [current_rank(s) for s in ("active", "past_due", "paused", "cancelled", "expired")] == [0, 1, 2, 3, 3]
    assert is_current("paused") and not is_current("cancelled") and not is_current("expired")


def test_the_best_status_wins_then_the_newest(db: Database) -> None:
    with db.write() as s:
        plan = Plan(code="BASIC", name="Basic", price_cents=1999)
        customer = Customer(customer_number="C900001")
        s.add_all([plan, customer])
        s.flush()
        assert plan.id is not None and customer.id is not None
        customer_id, plan_id = customer.id, plan.id

    def add(status: str) -> int:
        with db.write() as s:
            m = Membership(customer_id=customer_id, plan_id=plan_id, status=status, started_on=dt.date(2026, 1, 1))
            s.add(m)
            s.flush()
            assert m.id is not None
            return m.id

    def current() -> int | None:
        with db.read() as s:
            m = current_membership(s, customer_id)
            return None if m is None else m.id

    add("cancelled")
    assert current() is None
    paused = add("paused")
    assert current() == paused
    past_due = add("past_due")
    assert current() == past_due
    first_active = add("active")
    add("paused")
    assert current() == first_active
    newer_active = add("active")
    assert current() == newer_active
    with db.read() as s:
        assert current_membership(s, None) is None
        assert len(s.exec(select(Membership)).all()) == 6
