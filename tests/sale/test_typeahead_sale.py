"""Type-ahead in the sale flow (issue 14, item 2): keys sent as one burst from the board, across screen
pushes and the flow's worker, end with the same database state as the same keys pressed slowly.
SQLite (two databases of the same kind, seeded alike: one driven slowly, one in a burst).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel import select

from clarity_tui.config import Settings
from db.models import Customer
from tests.helpers.burst import burst, slow, text
from tests.helpers.db_state import db_state, diff
from tests.helpers.lanes import Lanes, seed_lanes
from tests.helpers.sale import fast_devices
from tests.helpers.ui import at, devices_ready, focus_bubble, text_of, wait_until
from tests.helpers.sale_ui import sale_app, signer_done

WALK_UP = ["enter", "f2", "1", *text("Dana"), "enter", *text("Reyes"), "enter", *text("(512) 555-2368"), "enter",
           *text("dana@example.com"), "enter"]
# The returning member of the issue: Enter (open the session) F2 (purchase) 2 (Deluxe) Enter (the saved card)
# Enter (checkout) F2 (terms presented); F5 (Agree) can only follow the customer's signature, typed slowly
# or not, so it is its own burst once the simulated signer has finished.
RETURNING = ["enter", "f2", "2", "enter", "enter", "f2"]


async def _drive(settings: Settings, db: Any, session_id: int, mode: str, keys: list[str],
                 until: str, after: Callable[[Any], Awaitable[None]] | None = None) -> int:
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await focus_bubble(pilot, session_id)
        if mode == "burst":
            burst(pilot, keys)
        else:
            await slow(pilot, keys)
        await at(pilot, until, f"the {until} screen after the {mode} keys")
        if after is not None:
            await after(pilot)
        return app.typeahead.buffered_total


async def test_walk_up_form_burst_from_the_board(settings: Settings, lanes: Lanes, twin_settings: Settings,
                                                 twin_demo_db) -> None:  # noqa: ANN001
    twin = seed_lanes(twin_demo_db)
    held = await _drive(settings, lanes.db, lanes.unknown, "burst", WALK_UP, "payment")
    await _drive(twin_settings, twin_demo_db, twin.unknown, "slow", WALK_UP, "payment")
    assert held > 0  # keys did arrive before the UI had caught up
    with lanes.db.read() as s:
        c = s.exec(select(Customer).where(Customer.email == "dana@example.com")).one()
        assert (c.first_name, c.last_name, c.phone_e164) == ("Dana", "Reyes", "+15125552368")
    burst_state, slow_state = db_state(lanes.db), db_state(twin_demo_db)
    assert burst_state == slow_state, diff(burst_state, slow_state)


def _sign_then_agree(mode: str) -> Callable[[Any], Awaitable[None]]:
    async def after(pilot: Any) -> None:
        await signer_done(pilot)
        if mode == "burst":
            burst(pilot, ["f5"])
        else:
            await slow(pilot, ["f5"])
        await at(pilot, "confirmation", "the confirmation")
    return after


async def test_returning_member_sale_as_one_burst(settings: Settings, lanes: Lanes, twin_settings: Settings,
                                                  twin_demo_db) -> None:  # noqa: ANN001
    twin = seed_lanes(twin_demo_db)
    held = await _drive(settings, lanes.db, lanes.ivana, "burst", RETURNING, "signature", _sign_then_agree("burst"))
    await _drive(twin_settings, twin_demo_db, twin.ivana, "slow", RETURNING, "signature", _sign_then_agree("slow"))
    assert held > 0
    burst_state, slow_state = db_state(lanes.db), db_state(twin_demo_db)
    orders = [o for o in burst_state["sales_order"] if o["session_id"] == lanes.ivana]
    assert [o["state"] for o in orders] == ["completed"]
    assert burst_state == slow_state, diff(burst_state, slow_state)


async def test_esc_reaches_a_card_reader_that_waits_for_a_card(settings: Settings, lanes: Lanes) -> None:  # noqa: ANN001
    """A long card-reader wait is never a reason to hold keys: R then Esc in one burst cancels the read
    (the gate let Esc through without waiting for its time limit)."""
    from clarity_tui.screens.device_action import DeviceActionScreen
    from tests.helpers.ui import make_app

    settings = fast_devices(settings)
    settings.hardware.card_reader.options = {"delay": 600, "timeout_after": 600}  # the customer never taps
    before = db_state(lanes.db)["payment_method"]
    app = make_app(settings, lanes.db, fixed_clock=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await focus_bubble(pilot, lanes.ivana)
        await slow(pilot, ["enter", "f2", "2"])
        await at(pilot, "payment")
        burst(pilot, ["r"])
        await wait_until(pilot, lambda: isinstance(app.screen, DeviceActionScreen) and app.typeahead.pending == 0,
                         "the reader waiting for a card")
        # The reader's wait is no key's unfinished business: nothing holds the keys typed now.
        assert not app.typeahead._busy()
        burst(pilot, ["escape"])
        await wait_until(pilot, lambda: app.screen.id == "payment" and "try the reader again" in text_of(app, "#pay-message"),
                         "the read cancelled, back on the payment step")
    assert db_state(lanes.db)["payment_method"] == before  # no card was saved
