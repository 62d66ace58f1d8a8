"""A migration order deleted while the migration is under way is refused in words, never an AttributeError."""

from __future__ import annotations

import pytest
from sqlmodel import select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.migration.claim import claim_legacy_member
from clarity_tui.services.orders import OrderTaken
from db.engine import Database
from db.models import LegacyMember, OrderProgress, SalesOrder
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Legacy
from tests.helpers.migration import service


def _delete_order(db: Database, order_id: int) -> None:
    with db.write() as s:
        for progress in s.exec(select(OrderProgress).where(OrderProgress.order_id == order_id)):
            s.delete(progress)
        s.flush()
        order = s.get(SalesOrder, order_id)
        assert order is not None
        s.delete(order)


def test_claiming_the_legacy_member_of_a_deleted_order_is_refused(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    _delete_order(db, view.id)
    with pytest.raises(OrderTaken) as refused:
        claim_legacy_member(svc.steps, view.id, TODAY)
    assert isinstance(refused.value, UserFacingError) and "no longer exists" in str(refused.value)
    with pytest.raises(UserFacingError):
        svc.billing_date(view.id)
    with db.read() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        assert jane is not None and jane.migrated_at is None  # nothing was claimed for a deleted order
