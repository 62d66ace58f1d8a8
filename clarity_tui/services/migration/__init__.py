"""Migrating a legacy POS member at the lane (headless); MigrationService (service.py) runs the steps.

    matching        who the legacy member is: candidates by plate or phone, "already migrated"
    contact         the email by SMS, the legacy plates as the customer's vehicles
    billing_date    the first billing date (the legacy one, or a manager's) and the review
    claim           migrate once only: the conditional claim of the legacy row, and its release
    service         MigrationService, the steps the screens, the CLI and tests drive
"""

from clarity_tui.services.migration.billing_date import BillingDate, BillingDateInPast
from clarity_tui.services.migration.contact import EmailReply
from clarity_tui.services.migration.matching import AlreadyMigrated, LegacyCandidate, migrated_message
from clarity_tui.services.migration.service import MigrationService
from clarity_tui.services.migration_guard import (
    MAX_OVERRIDE_DAYS,
    InactiveLegacyMember,
    MigrationError,
    check_override_day,
)

__all__ = [
    "MAX_OVERRIDE_DAYS", "AlreadyMigrated", "BillingDate", "BillingDateInPast", "EmailReply", "InactiveLegacyMember",
    "LegacyCandidate", "MigrationError", "MigrationService", "check_override_day", "migrated_message",
]
