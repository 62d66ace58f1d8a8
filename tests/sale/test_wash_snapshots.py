"""The single-wash screen at 80x24, in full colour and in 16 colours (issue 18): the menu's packages and
extras with their keys, the total, and the actions, before and after the payment."""

from __future__ import annotations

import pytest

from clarity_tui.config import Settings
from clarity_tui.screens.wash_sale import WashSaleScreen
from clarity_tui.seeding.demo import seed_demo
from clarity_tui.services.bootstrap import open_database
from tests.helpers.actors import ATTENDANT
from tests.helpers.lanes import arrive
from tests.helpers.sale import fast_devices
from tests.helpers.ui import devices_ready, make_app, text_of, wait_until


@pytest.fixture
def snap_url(tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'snap.db'}"


@pytest.mark.parametrize("paid", [False, True], ids=["chosen", "paid"])
@pytest.mark.parametrize("colours", ["full", "sixteen"])
def test_wash_screen_80x24(snap_compare, snap_url, monkeypatch, colours, paid) -> None:  # noqa: ANN001
    if colours == "sixteen":
        monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    settings = Settings(database_url=snap_url, terminal_id="snap-term", site={"timezone": "UTC"})
    db = open_database(settings)
    seed_demo(db, customers=10, legacy=5)
    session_id = arrive(db, "SNP-1001", "Lane 2", make="Honda", model="Civic", colour="Blue")
    app = make_app(fast_devices(settings), db, fixed_clock=True, actor=ATTENDANT)

    async def open_it(pilot) -> None:  # noqa: ANN001
        await devices_ready(pilot)
        app.push_screen(WashSaleScreen(session_id))
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 6, "the menu")
        await pilot.press("2", "a")  # Deluxe and the first extra
        await wait_until(pilot, lambda: "Tire" in text_of(app, "#wash-total"), "the extra on the total")
        if paid:
            await pilot.press("f5")
            await wait_until(pilot, lambda: text_of(app, "#wash-message").startswith("Paid"), "the payment")
        await pilot.pause()
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=open_it)
    finally:
        db.dispose()
