"""The manager's dashboard (issue 18, item 7) through Pilot: Ctrl+D on the board opens it for a manager, with
each figure's value and a chart of the last 30 days; an attendant is refused and stays on the board."""

from __future__ import annotations

import pytest
from textual.widgets import Sparkline, Static

from clarity_tui.screens.dashboard import DashboardScreen, OperatorRow
from clarity_tui.services.actor import Actor
from clarity_tui.services.lane_metrics import CHART_KEYS, series
from db.models import Role
from tests.helpers.dashboard import TODAY, busy_month
from tests.helpers.ui import make_app, text_of, wait_until

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the figures' SQL: test_lane_metrics

MANAGER = Actor("Morgan Manager", Role.MANAGER, "lane-1-term", None)
ATTENDANT = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term", None)


async def test_a_manager_opens_the_dashboard_by_its_key(db, settings) -> None:
    busy_month(db)
    days = series(db, TODAY, settings.site.zone)
    app = make_app(settings, db, fixed_clock=True, actor=MANAGER)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.days is not None
                         and len(app.screen.query(OperatorRow)) == 3, "the dashboard's figures")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen) and screen.days == days  # the service's figures, as read
        assert text_of(app, "#dashboard-title").startswith("30 days to Sun Nov 22, 2026 (UTC)")

        def label(key: str) -> str:
            return text_of(app, f"#figure-{key} .figure-label")

        # The last day: 3 retail washes, 3 memberships sold; 30 days: 26 sold of 120 retail washes.
        assert label("conversion") == "Conversion 100.0% 30 d 21.7%"
        assert label("visits") == "Visits/member (month) 6.62 8 members"  # 53 visits since Nov 1, 8 members
        assert label("renewals") == "Renewals 0 30 d 6"
        assert label("renewal_failures") == "Renewal failures 0 30 d 5"
        assert label("churn_voluntary") == "Churn: cancelled 0 30 d 1"
        assert label("churn_card_failure") == "Churn: card failed 0 30 d 1"
        for key in CHART_KEYS:  # each figure has its chart: a bar a day
            bars = screen.query_one(f"#figure-{key} Sparkline", Sparkline)
            assert bars.data is not None and len(bars.data) == 30
        rows = [" ".join(str(part.render()) for part in row.query(Static)) for row in screen.query(OperatorRow)]
        assert rows[0].startswith("Alex Attendant") and "1 today · 15 in 30 d · $75.00" in rows[0]
        assert rows[1].startswith("Blair Booth") and "1 today · 10 in 30 d · $45.00" in rows[1]
        assert rows[2].startswith("Casey Closer") and "1 today · 1 in 30 d · $0.00" in rows[2]
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, DashboardScreen), "back to the board")


async def test_an_attendant_is_refused_and_stays_on_the_board(db, settings) -> None:
    app = make_app(settings, db, fixed_clock=True, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        board = app.screen
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: any("Alex Attendant (attendant) may not view reports of the whole site"
                                            in str(n.message) for n in app._notifications), "the refusal")
        assert app.screen is board
        assert not any(isinstance(s, DashboardScreen) for s in app.screen_stack)
