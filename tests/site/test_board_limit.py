"""The board shows LIMIT on a member's car refused over its plan's visit limit (issue 18 item 3), through Pilot."""

from __future__ import annotations

import pytest

from clarity_tui.widgets.bubble import SessionBubble
from tests.helpers.ui import make_app, wait_until
from tests.helpers.visits import MORNING, close, read_at, visit_member

pytestmark = pytest.mark.both_databases


def _bubble(app, session_id: int) -> SessionBubble | None:
    found = app.screen.query(f"#session-{session_id}")
    return found.first(SessionBubble) if found else None


async def test_a_car_over_its_limit_shows_limit_and_a_member_within_it_shows_member(db, settings) -> None:
    over = visit_member(db, limit=1, plan_name="Gold Club")
    within = visit_member(db, limit=1, plan_name="Silver")
    close(db, read_at(db, over.plate, "Lane 1", MORNING))  # this morning's visit
    visiting = read_at(db, within.plate, "Lane 2", MORNING)
    app = make_app(settings, db, clock=lambda: MORNING)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: (b := _bubble(app, visiting)) is not None and b.border_title == "MEMBER",
                         "the member within the limit")
        # The car comes back the same day, read while the board is up (another process's camera would be the same
        # commit): its bubble arrives as LIMIT, with the plan's name still on it.
        refused = read_at(db, over.plate, "Lane 3", MORNING.replace(hour=18))
        await wait_until(pilot, lambda: (b := _bubble(app, refused)) is not None and b.border_title == "LIMIT",
                         "the LIMIT badge")
        bubble = _bubble(app, refused)
        assert bubble is not None and bubble.has_class("-limit") and not bubble.has_class("-member")
        assert bubble.view.plan_name == "Gold Club"  # still a member: the plan is named
        assert bubble.view.badge_label == "LIMIT"
