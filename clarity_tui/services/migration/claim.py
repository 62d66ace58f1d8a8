"""Migrate once only: the legacy member is claimed by one order, before any gateway call.

`claim_legacy_member` marks the legacy row with a conditional UPDATE (`migrated_at IS NULL`) in its own
transaction, so of two terminals exactly one wins; the other's order is cancelled and it is told who
migrated the member and when (nothing was saved at the gateway). A cancelled migration releases it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import col

from clarity_tui.services import audit
from clarity_tui.services.migration.matching import AlreadyMigrated, customer_number, migrated_message
from clarity_tui.services.migration_guard import MigrationError
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.services.orders.guards import get_order
from db.models import LegacyMember, Membership, MembershipSource, MembershipStatus, utcnow


def _rowcount(result: Any) -> int:
    """Rows an UPDATE changed (Session.execute is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


def claim_legacy_member(steps: OrderSteps, order_id: int, today: dt.date) -> None:
    """Mark the legacy member migrated by this order (and create its membership, once), or raise
    AlreadyMigrated and cancel the order."""
    actor, now = steps.actor, utcnow()
    with steps.db.write() as s:
        order = get_order(s, order_id)
        if order.legacy_member_id is None or order.customer_id is None or order.plan_id is None:
            raise MigrationError("The migration needs its legacy member, customer and plan: start again.")
        won = _rowcount(s.execute(update(LegacyMember)
                                  .where(col(LegacyMember.id) == order.legacy_member_id,
                                         col(LegacyMember.migrated_at).is_(None))
                                  .values(migrated_at=now, migrated_by=actor.name[:120],
                                          migrated_terminal=steps.terminal[:64],
                                          migrated_customer_id=order.customer_id)))
        lm = s.get(LegacyMember, order.legacy_member_id)
        if lm is None:
            raise MigrationError("The legacy member of this migration no longer exists.")
        s.refresh(lm)
        if won or lm.migrated_customer_id == order.customer_id:
            if order.membership_id is None:
                m = Membership(customer_id=order.customer_id, plan_id=order.plan_id,
                               status=MembershipStatus.ACTIVE, source=MembershipSource.MIGRATION,
                               started_on=today, next_billing_on=order.next_billing_on,
                               # The legacy POS was paid up to the billing date the member keeps.
                               paid_through=order.next_billing_on,
                               legacy_member_id=lm.id, legacy_id=lm.legacy_id, pending_sync=True)
                s.add(m)
                s.flush()
                order.membership_id = m.id
                s.add(order)
                audit.record(s, actor, "membership.create", "membership", m.id, after=audit.snapshot(m))
            if won:
                audit.record(s, actor, "legacy.migrated", "legacy_member", lm.id,
                             after={"legacy_id": lm.legacy_id, "customer_id": order.customer_id,
                                    "terminal": steps.terminal, "order_id": order_id})
            return
        message = migrated_message(lm, customer_number(s, lm.migrated_customer_id), steps.zone)
    # Lost the race: nothing reached the gateway; this order ends here.
    with steps.db.write() as s:
        steps.cancel_row(s, get_order(s, order_id), "migration.refused_already_migrated", {"reason": message})
    raise AlreadyMigrated(message)


def release_legacy_member(steps: OrderSteps, order_id: int, legacy_member_id: int, customer_id: int) -> None:
    """A cancelled migration frees its legacy member (if this order's customer had claimed it)."""
    with steps.db.write() as s:
        released = _rowcount(s.execute(update(LegacyMember).where(
            col(LegacyMember.id) == legacy_member_id, col(LegacyMember.migrated_customer_id) == customer_id)
            .values(migrated_at=None, migrated_by=None, migrated_terminal=None, migrated_customer_id=None)))
        if released:
            audit.record(s, steps.actor, "legacy.migration_released", "legacy_member", legacy_member_id,
                         after={"order_id": order_id})
