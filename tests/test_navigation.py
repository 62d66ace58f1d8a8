"""Screens ask the app to open each other (clarity_tui/messages.py), and the app's wiring never blocks its UI thread."""

from __future__ import annotations

import pytest

from clarity_tui.app import ClarityApp
from clarity_tui.bootconfig import resolve_boot_config
from clarity_tui.messages import OpenCustomer, SearchCustomers
from clarity_tui.wiring import StillStarting, services_of
from tests.helpers.ui import make_app, screen_id, wait_until


async def test_a_screen_asks_the_app_for_a_customer_record_and_for_a_search_that_picks(settings, demo_db) -> None:
    app = make_app(settings, demo_db)
    picked: list[int | None] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: screen_id(app) == "board", "the board")
        app.screen.post_message(SearchCustomers("", pick=picked.append))
        await wait_until(pilot, lambda: screen_id(app) == "customer-pick", "the search, as a picker")
        await pilot.press("escape")
        await wait_until(pilot, lambda: picked == [None], "the picker's answer: none chosen")
        await wait_until(pilot, lambda: screen_id(app) == "board", "back on the board")
        app.screen.post_message(OpenCustomer(None))
        await wait_until(pilot, lambda: screen_id(app) == "customer-record", "a blank record for a new customer")


def test_before_the_boot_the_ui_thread_is_told_to_wait_and_a_worker_waits(settings, demo_db) -> None:
    booting = ClarityApp(boot=resolve_boot_config(None, settings.resolved_database_url(), None))
    assert booting.services is None
    with pytest.raises(StillStarting):
        services_of(booting)  # the UI thread: a calm message, never a wait
    with pytest.raises(StillStarting):
        booting.wait_for_services(timeout=0.01)  # a worker thread: waits, then gives up
    booted = make_app(settings, demo_db)
    assert booted.wait_for_services(timeout=0.01) is booted.services is not None
    assert services_of(booted).db is demo_db
