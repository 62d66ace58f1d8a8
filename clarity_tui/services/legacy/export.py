"""The migrated members, for the legacy POS's operators: who moved, when, and their new billing date (CSV)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from clarity_tui.services import csv_safe
from db.engine import Database
from db.models import Customer, LegacyMember, Membership


def export_migrated(db: Database, since: dt.date | None = None, source_system: str | None = None) -> list[dict[str, Any]]:
    """Migrated legacy members (oldest first): legacy id, new billing date, who and when.

    The operator loads this into the old POS to stop billing those members there."""
    q = (select(LegacyMember, col(Customer.customer_number), col(Membership.next_billing_on),
                col(Membership.gateway_subscription_id))
         .join(Customer, col(Customer.id) == col(LegacyMember.migrated_customer_id), isouter=True)
         .join(Membership, (col(Membership.legacy_member_id) == col(LegacyMember.id))
               & (col(Membership.customer_id) == col(LegacyMember.migrated_customer_id)), isouter=True)
         .where(col(LegacyMember.migrated_at).is_not(None)))
    if since is not None:
        q = q.where(col(LegacyMember.migrated_at) >= dt.datetime.combine(since, dt.time(), dt.UTC))
    if source_system:
        q = q.where(col(LegacyMember.source_system) == source_system)
    out = []
    with db.read() as s:
        for lm, number, next_billing, sub in s.execute(q.order_by(col(LegacyMember.migrated_at), col(LegacyMember.id))):
            at = lm.migrated_at if lm.migrated_at.tzinfo else lm.migrated_at.replace(tzinfo=dt.UTC)
            out.append({"source_system": lm.source_system, "legacy_id": lm.legacy_id,
                        "legacy_next_bill_on": lm.next_bill_on.isoformat() if lm.next_bill_on else "",
                        "new_next_billing_on": next_billing.isoformat() if next_billing else "",
                        "customer_number": number or "", "migrated_at": at.isoformat(timespec="seconds"),
                        "migrated_by": lm.migrated_by or "", "terminal": lm.migrated_terminal or "",
                        "subscription_id": sub or ""})
    return out


EXPORT_COLUMNS = ("source_system", "legacy_id", "legacy_next_bill_on", "new_next_billing_on", "customer_number",
                  "migrated_at", "migrated_by", "terminal", "subscription_id")


def write_export_csv(rows: list[dict[str, Any]], out: io.TextIOBase | Any) -> None:
    """The export as CSV; every cell goes through csv_safe (legacy ids are whatever the old POS held)."""
    writer = csv_safe.dict_writer(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)

