"""A snapshot of every sale screen at 80x24 (SQLite, fixed demo data and clock, simulated devices).

Update after an intended visual change: pytest tests/sale/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, wait_until


@pytest.fixture
def db_url(tmp_path) -> str:  # noqa: ANN001
    # Snapshots are about pixels, not backends: SQLite only (the flow tests cover PostgreSQL).
    return f"sqlite:///{tmp_path / 'site.db'}"


async def _to_payment(pilot, lanes: Lanes, plan: str = "2") -> Keys:  # noqa: ANN001
    await devices_ready(pilot)
    keys = Keys(pilot)
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    await keys.press(plan)
    await at(pilot, "payment")
    return keys


async def _to_terms(pilot, lanes: Lanes) -> Keys:  # noqa: ANN001
    keys = await _to_payment(pilot, lanes)
    await keys.press("enter")
    await at(pilot, "checkout-summary")
    await keys.press("enter")
    await at(pilot, "terms")
    return keys


def _snap(snap_compare, settings, lanes: Lanes, run_before) -> bool:  # noqa: ANN001
    app = sale_app(settings, lanes.db)
    return snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_plan_selection_marks_the_current_plan(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.member)
        await pilot.press("f2")
        await at(pilot, "plan-select")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_new_customer_form_with_errors(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.unknown)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "customer-quick")
        await pilot.press(*"Dana", "enter", *"Reyes", "enter", *"555", "enter", *"dana@", "enter")
        await wait_until(pilot, lambda: "-error" in pilot.app.screen.query_one("#note-phone").classes, "field errors")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_family_vehicles(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("4")
        await at(pilot, "family-vehicles")
        await pilot.press("f4", *"FAM-0002", "enter")
        await wait_until(pilot, lambda: len(pilot.app.screen.view.vehicles) == 2, "the second vehicle")
        await pilot.pause()

    assert _snap(snap_compare, settings, lanes, run_before)


def test_payment_with_a_promotion(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_payment(pilot, lanes)
        await pilot.press("f4", *"SAVE20")
        await wait_until(pilot, lambda: pilot.app.screen.view.discount_cents == 600, "the discount")
        await pilot.pause()

    assert _snap(snap_compare, settings, lanes, run_before)


def test_payment_with_a_wrong_plan_code(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_payment(pilot, lanes)
        await pilot.press("f4", *"ULTIMATE10", "enter")
        await wait_until(pilot, lambda: "-error" in pilot.app.screen.query_one("#promo-note").classes, "the refusal")
        await pilot.pause()

    assert _snap(snap_compare, settings, lanes, run_before)


def test_manual_card_entry_masked(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_payment(pilot, lanes)
        await pilot.press("k")
        await at(pilot, "manual-card")
        await pilot.press(*"4242424242424241", "enter", *"12/30", "enter", *"123", "enter")
        await wait_until(pilot, lambda: "check digit" in str(pilot.app.screen.query_one("#card-error").content),
                         "the Luhn message")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_checkout_summary(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        keys = await _to_payment(pilot, lanes)
        await pilot.press("f4", *"FIRSTMONTH", "enter")
        await wait_until(pilot, lambda: pilot.app.screen.view.discount_cents == 1000, "the discount")
        await keys.press("enter")
        await at(pilot, "checkout-summary")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_terms(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_terms(pilot, lanes)

    assert _snap(snap_compare, settings, lanes, run_before)


def test_signature_with_live_strokes(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_terms(pilot, lanes)
        await pilot.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)

    assert _snap(snap_compare, settings, lanes, run_before)


def test_pad_unplugged_mid_signature(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_terms(pilot, lanes)
        await pilot.press("f2")
        await at(pilot, "signature")
        await wait_until(pilot, lambda: len(pilot.app.screen.strokes) >= 1, "the first stroke")
        pilot.app.devices.signature_pad.unplug()
        await at(pilot, "device-error", "the pad problem dialog")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_confirmation(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_terms(pilot, lanes)
        await pilot.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        await pilot.press("f5")
        await at(pilot, "confirmation")

    assert _snap(snap_compare, settings, lanes, run_before)


def test_processing_the_payment(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    import threading

    release = threading.Event()

    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_terms(pilot, lanes)
        await pilot.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        # Hold the gateway call while the screen is photographed (released as soon as the photo is taken;
        # the timeout only bounds a run that never gets that far).
        pilot.app.screen.backend.billing.processor.observers.append(
            lambda point, entry: release.wait(60) if point == "before_call" else None)
        await pilot.press("f5")
        await at(pilot, "processing")

    app = sale_app(settings, lanes.db)
    photograph = app.export_screenshot

    def photographed(*args, **kwargs) -> str:
        try:
            return photograph(*args, **kwargs)
        finally:
            release.set()  # the picture is taken: the payment may go on (the app then closes)

    app.export_screenshot = photographed  # type: ignore[method-assign]
    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    finally:
        release.set()
