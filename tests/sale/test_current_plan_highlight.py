"""Issue 14, item 5: when a current member opens Purchase/change plan, the highlighted (focused) card is the
plan they have, not the first one; a customer with no membership starts on the first card as before."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import select

from db.models import Membership, Plan
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, wait_until


def _move_member_to_the_last_plan(lanes: Lanes) -> str:
    """Put the lane's member on the last plan the screen lists, so the first card is not theirs."""
    with lanes.db.write() as s:
        plans = s.exec(select(Plan).where(Plan.active == True).order_by(Plan.tier, Plan.price_cents)).all()  # noqa: E712
        last = plans[-1]
        s.exec(update(Membership).where(Membership.customer_id == lanes.member_customer_id,
                                        Membership.status == "active").values(plan_id=last.id))
        return last.code


async def test_a_members_current_plan_is_the_highlighted_card(settings, lanes: Lanes) -> None:  # noqa: ANN001
    code = _move_member_to_the_last_plan(lanes)
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.member)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        cards = list(app.screen.query("PlanCard"))
        current = next(c for c in cards if c.plan.relation == "current")
        assert current.plan.code == code and current is not cards[0]
        await wait_until(pilot, lambda: app.focused is current, "the current plan's card focused")
        assert "CURRENT PLAN" in str(current.query_one(".plan-relation").render())


async def test_a_customer_with_no_membership_starts_on_the_first_card(settings, lanes: Lanes) -> None:  # noqa: ANN001
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        cards = list(app.screen.query("PlanCard"))
        assert not any(c.plan.relation == "current" for c in cards)
        await wait_until(pilot, lambda: app.focused is cards[0], "the first card focused")
