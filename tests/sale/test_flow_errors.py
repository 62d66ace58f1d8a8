"""What a flow step shows when its service call fails (issue 16, item 3): a UserFacingError's message is
the attendant's; any other exception (a ValueError from a bug) goes to the crash guard, logged, and the
calm error screen comes up. Its text is never shown on the step as if it were advice."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from clarity_tui.crash_log import crash_log_path
from clarity_tui.screens.error_screen import ErrorScreen
from clarity_tui.services.orders import SaleError, SaleService
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, text_of, wait_until

BUG = "invalid literal for int() with base 10: 'x1'"  # what a programming error says
ADVICE = "The order changed on another lane: check it with the customer again."


def summary_screen(app: ClarityApp) -> Screen[Any]:
    return next(s for s in app.screen_stack if s.id == "checkout-summary")


def said(app: ClarityApp) -> str:
    """The summary's message line, wrapped lines joined."""
    return " ".join(text_of(app, "#summary-message").split())


async def to_summary(pilot: Pilot[None], lanes: Lanes) -> None:
    keys = Keys(pilot)
    await devices_ready(pilot)
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    await keys.press("2")
    await at(pilot, "payment")
    await keys.press("enter")  # the saved default card
    await at(pilot, "checkout-summary")


async def test_a_value_error_in_a_step_is_logged_and_never_shown_as_a_message(
        settings: Settings, lanes: Lanes, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: SaleService, order_id: int) -> None:
        raise ValueError(BUG)

    monkeypatch.setattr(SaleService, "checkout", broken)
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_summary(pilot, lanes)
        await pilot.press("enter")  # Checkout
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the calm error screen")
        message = str(summary_screen(app).query_one("#summary-message").render())
        assert BUG not in message
        assert all(BUG not in n.message for n in app._notifications)
    assert f"ValueError: {BUG}" in crash_log_path().read_text()


async def test_a_user_facing_error_in_a_step_is_shown_on_the_step(
        settings: Settings, lanes: Lanes, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: SaleService, order_id: int) -> None:
        raise SaleError(ADVICE)

    monkeypatch.setattr(SaleService, "checkout", refused)
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_summary(pilot, lanes)
        await pilot.click("#checkout")  # the button runs the same action as its key (Enter)
        await wait_until(pilot, lambda: ADVICE in said(app), "the refusal on the summary")
        assert app.screen.id == "checkout-summary" and not app.crashes
        assert not app.screen.query_one("#checkout").disabled  # the attendant can try again
