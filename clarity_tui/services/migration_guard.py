"""Guards of a migration (issue 14 item 4): who the legacy member is, and who may migrate them.

- The legacy status and the last billing are shown wherever a legacy member is offered (the match
  screen, `legacy find`, the Purchase prompt on a LEGACY bubble): `status_words`.
- A cancelled or terminated legacy member is migrated only with a manager's approval and a reason:
  `approve_inactive` is called by MigrationService.begin (the service enforces it, not only the
  screen), checks Permission.MIGRATE_INACTIVE on the approving manager and their active operator row,
  and returns what the audit row `migration.inactive_approved` carries (the manager and the reason).
- The last billing date is not a column of legacy_member: it is read from the imported row (`raw`),
  whose header names it in the exports we know (SiteWatch "Last Recharge", "Last Bill Date"...).
  An export without such a column shows "last billed: not in the export".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import display_name
from clarity_tui.services.permissions import Permission, PermissionDenied, require
from clarity_tui.services.orders.guards import SaleError
from db.models import LegacyMember, Operator, Role

# The furthest a manager may move the first billing date.
MAX_OVERRIDE_DAYS = 92
INACTIVE_STATUSES = frozenset({"cancelled", "canceled", "terminated"})
LAST_BILL_HEADERS = frozenset({
    "last_bill_date", "last bill date", "last_billed", "last billed", "last_billed_on", "last bill",
    "last_billing_date", "last billing date", "last recharge", "last recharge date", "last_recharge",
    "last charge", "last charge date", "last_charge_date", "last payment", "last payment date",
    "last_payment_date"})
MAX_REASON = 200


class MigrationError(SaleError):
    """A refused migration step; str() says what happened and what to do. Nothing was changed."""


class InactiveLegacyMember(MigrationError):
    """The legacy member is cancelled or terminated: a manager must approve, with a reason."""


def check_override_day(day: dt.date, today: dt.date) -> None:
    """A manager's first billing date: after today (nothing is charged today in a migration), within
    MAX_OVERRIDE_DAYS. Screens call it before asking for the manager's PIN."""
    if day <= today:
        raise MigrationError(f"Choose a date after today ({today.strftime('%b %d, %Y')}): nothing is charged "
                             "today in a migration.")
    if day > today + dt.timedelta(days=MAX_OVERRIDE_DAYS):
        raise MigrationError(f"Choose a date within {MAX_OVERRIDE_DAYS} days.")


def is_inactive(status: str | None) -> bool:
    return (status or "").strip().casefold() in INACTIVE_STATUSES


def last_billed(raw: dict[str, Any] | None) -> dt.date | None:
    """The legacy POS's last billing date, from the imported row, when the export has it."""
    from clarity_tui.services.legacy.parsers import RowProblem, parse_date

    for header, value in (raw or {}).items():
        if str(header).strip().casefold() in LAST_BILL_HEADERS and str(value or "").strip():
            try:
                return parse_date(str(value))
            except (RowProblem, ValueError):
                return None
    return None


def status_words(status: str | None, last_billed_on: dt.date | None) -> str:
    """'status CANCELLED · last billed Oct 03, 2026' (upper case when a manager must approve)."""
    shown = (status or "not in the export")
    if is_inactive(status):
        shown = shown.upper()
    billed = last_billed_on.strftime("%b %d, %Y") if last_billed_on else "not in the export"
    return f"status {shown} · last billed {billed}"


def inactive_message(name: str, status: str | None, last_billed_on: dt.date | None) -> str:
    billed = f", last billed {last_billed_on.strftime('%b %d, %Y')}" if last_billed_on else ""
    return (f"{name}'s legacy membership is {(status or '').lower()}{billed}: migrating them needs a manager's "
            "approval and the reason.")


def approve_inactive(s: Session, lm: LegacyMember, manager: Actor | None, reason: str | None) -> dict[str, Any] | None:
    """None when the legacy member is not cancelled or terminated. Otherwise the approval's audit
    details, or InactiveLegacyMember (no manager), PermissionDenied (not an active manager) or
    MigrationError (no reason). Nothing is written here."""
    if not is_inactive(lm.status):
        return None
    name = display_name(lm.first_name, lm.last_name)
    if manager is None:
        raise InactiveLegacyMember(inactive_message(name, lm.status, last_billed(lm.raw)))
    require(manager, Permission.MIGRATE_INACTIVE)
    approver = s.get(Operator, manager.operator_id) if manager.operator_id is not None else None
    if approver is None or not approver.active or Role(approver.role) != Role.MANAGER:
        raise PermissionDenied("Only an active manager can approve migrating a cancelled or terminated legacy "
                               "member: ask a manager to approve it with their PIN.")
    why = " ".join((reason or "").split())
    if not why:
        raise MigrationError("Say why this cancelled or terminated member is migrated: the reason is audited.")
    return {"legacy_id": lm.legacy_id, "legacy_status": lm.status, "manager": approver.name,
            "manager_operator_id": approver.id, "reason": why[:MAX_REASON]}


def split_vehicle(desc: str | None) -> tuple[str | None, str | None, str | None]:
    """'Silver Toyota Camry' -> colour, make, model (a best effort on free text)."""
    words = (desc or "").split()
    if len(words) >= 3:
        return words[0][:24], words[1][:40], " ".join(words[2:])[:40]
    if len(words) == 2:
        return None, words[0][:40], words[1][:40]
    return None, None, (words[0][:40] if words else None)
