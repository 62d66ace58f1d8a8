"""One billing pass, as the running app and `clarity-tui payments sync` run it (issue 13):

1. the sync (as leader only): the gateway's events, reconciled from fresh objects;
2. what happens on a date with no event: pauses that end, cancels at period end that take effect;
3. dunning: the past-due texts due today (as leader only, so terminals do not race for them; the
   message rows make that exclusive anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from clarity_tui.services.billing_sync import BillingSync, SyncReport, apply_due_dates

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    sync: SyncReport
    date_changes: list[int]
    dunning: Any = None


def run_billing_pass(db: Any, gateway: Any, settings: Any, *, today: dt.date, terminal: str,
                     messaging: Any = None) -> PassReport:
    report = BillingSync(db, gateway, settings, terminal=terminal).run_once()
    try:
        changed = apply_due_dates(db, today)
    except SQLAlchemyError as exc:  # a full or read-only database: the sync's report already says so
        log.warning("billing pass: the date changes were not stored: %s", exc)
        changed = []
    dunning = None
    if report.ok and settings.billing.dunning_enabled and messaging is not None:
        from clarity_tui.services.dunning import run_dunning

        dunning = run_dunning(db, gateway, messaging, settings, today=today, terminal=terminal)
    return PassReport(report, changed, dunning)
