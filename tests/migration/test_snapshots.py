"""Snapshots of the migration screens at 80x24 (SQLite, fixed demo data and clock, simulated devices).

Update after an intended visual change: pytest tests/migration/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import datetime as dt

import pytest

from db.models import LegacyMember
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Legacy
from tests.helpers.migration_ui import contact_by_sms, migration_app, start
from tests.helpers.ui import at, text_of, wait_until


@pytest.fixture
def db_url(tmp_path) -> str:  # noqa: ANN001
    # Snapshots are about pixels, not backends: SQLite only (the flow tests cover PostgreSQL).
    return f"sqlite:///{tmp_path / 'site.db'}"


def _snap(snap_compare, settings, legacy: Legacy, run_before) -> bool:  # noqa: ANN001
    return snap_compare(migration_app(settings, legacy.db), terminal_size=(80, 24), run_before=run_before)


def test_match_screen_with_a_look_alike_plate(snap_compare, settings, legacy: Legacy) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await start(pilot, legacy.bo_session)

    assert _snap(snap_compare, settings, legacy, run_before)


def test_contact_screen_prefilled_from_the_legacy_record(snap_compare, settings, legacy: Legacy) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await at(pilot, "migration-contact")

    assert _snap(snap_compare, settings, legacy, run_before)


def test_card_screen_with_a_past_billing_date(snap_compare, settings, legacy: Legacy) -> None:  # noqa: ANN001
    with legacy.db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.next_bill_on = TODAY - dt.timedelta(days=2)
        s.add(jane)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        await wait_until(pilot, lambda: "in the past" in text_of(pilot.app, "#billing-line"), "the refusal")

    assert _snap(snap_compare, settings, legacy, run_before)
