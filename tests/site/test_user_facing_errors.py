"""A UserFacingError that reaches the crash guard (StillStarting on the UI thread, say) is a message for
the attendant, not a crash: a warning shows its text, no error screen, nothing in the crash log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from clarity_tui.screens.error_screen import ErrorScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.wiring import StillStarting
from clarity_tui.widgets.bubble import SessionBubble
from tests.helpers.lanes import arrive
from tests.helpers.ui import make_app, open_focused_session, wait_until

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp
    from clarity_tui.config import Settings
    from db.engine import Database


def _warned(app: ClarityApp, text: str) -> bool:
    return any(n.message == text and n.severity == "warning" for n in app._notifications)


def _nothing_logged() -> bool:
    from clarity_tui.crash_log import crash_log_path

    path = crash_log_path()
    return not path.exists() or "StillStarting" not in path.read_text()


async def test_a_user_facing_error_in_an_action_is_a_warning_not_a_crash(demo_db: Database, settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def still_starting(self: SessionDetailScreen) -> None:
        raise StillStarting

    monkeypatch.setattr(SessionDetailScreen, "action_done", still_starting)
    arrive(demo_db, "UFE-001")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_focused_session(pilot)
        await pilot.press("f6")
        await wait_until(pilot, lambda: _warned(app, str(StillStarting())), "the warning")
        await pilot.pause()
        assert isinstance(app.screen, SessionDetailScreen) and not app.crashes
        assert not any(isinstance(s, ErrorScreen) for s in app.screen_stack)
    assert _nothing_logged()


async def test_a_user_facing_error_in_a_worker_is_a_warning_not_a_crash(demo_db: Database, settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from clarity_tui.services.sessions import SessionService

    def still_starting(self: SessionService, session_id: int) -> None:
        raise StillStarting

    monkeypatch.setattr(SessionService, "detail", still_starting)
    arrive(demo_db, "UFE-002")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        await pilot.press("enter")
        await wait_until(pilot, lambda: _warned(app, str(StillStarting())), "the warning")
        await pilot.pause()
        assert not app.crashes and not any(isinstance(s, ErrorScreen) for s in app.screen_stack)
    assert _nothing_logged()


async def test_a_webhook_without_its_signing_secret_is_said_and_the_lane_goes_on(demo_db: Database,
                                                                                 settings: Settings) -> None:
    billing = settings.billing
    webhook = billing.webhook.model_copy(update={"enabled": True, "signing_secret": ""})
    settings = settings.model_copy(update={"billing": billing.model_copy(update={"webhook": webhook})})
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: any("The billing webhook did not start" in n.message
                                            and "signing secret" in n.message for n in app._notifications),
                         "the warning")
        assert not app.crashes and app._webhook is None
