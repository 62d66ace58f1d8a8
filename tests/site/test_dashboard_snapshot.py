"""Snapshots of the manager's dashboard at 80x24, in full colour and in 16 colours (issue 18, item 7).

Deterministic: a fixed month of rows (tests/helpers/dashboard.py) and the fixed test clock.
Update after an intended visual change with: ./dev test tests/site/test_dashboard_snapshot.py --snapshot-update
"""

from __future__ import annotations

import pytest

from clarity_tui.screens.dashboard import DashboardScreen, OperatorRow
from clarity_tui.services.actor import Actor
from db.models import Role
from tests.helpers.dashboard import busy_month
from tests.helpers.ui import make_app, wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # pixels, not backends

MANAGER = Actor("Morgan Manager", Role.MANAGER, "lane-1-term", None)


async def _dashboard(pilot) -> None:
    await pilot.press("ctrl+d")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen) and pilot.app.screen.days is not None
                     and len(pilot.app.screen.query(OperatorRow)) == 3, "the dashboard's figures")
    await pilot.pause()


def test_dashboard_80x24(db, settings, snap_compare) -> None:
    busy_month(db)
    assert snap_compare(make_app(settings, db, fixed_clock=True, actor=MANAGER), terminal_size=(80, 24),
                        run_before=_dashboard)


def test_dashboard_80x24_sixteen_colours(db, settings, snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    busy_month(db)
    assert snap_compare(make_app(settings, db, fixed_clock=True, actor=MANAGER), terminal_size=(80, 24),
                        run_before=_dashboard)
