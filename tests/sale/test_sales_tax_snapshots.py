"""Sales tax on the sale screens at 80x24 (SQLite, fixed demo data and clock, simulated devices).

Update after an intended visual change: pytest tests/sale/test_sales_tax_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tests.helpers.lanes import Lanes
from tests.helpers.sale import EXCLUSIVE, INCLUSIVE, with_tax
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, wait_until


@pytest.fixture
def db_url(tmp_path) -> str:  # noqa: ANN001
    # Snapshots are about pixels, not backends: SQLite only (test_sales_tax.py covers PostgreSQL).
    return f"sqlite:///{tmp_path / 'site.db'}"


async def _to_plans(pilot, lanes: Lanes) -> Keys:  # noqa: ANN001
    await devices_ready(pilot)
    keys = Keys(pilot)
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    return keys


async def _to_summary(pilot, lanes: Lanes) -> None:  # noqa: ANN001
    keys = await _to_plans(pilot, lanes)
    await keys.press("2")
    await at(pilot, "payment")
    await pilot.press("f4", *"FIRSTMONTH", "enter")
    await wait_until(pilot, lambda: pilot.app.screen.view.discount_cents == 1000, "the discount")
    await keys.press("enter")
    await at(pilot, "checkout-summary")


def test_checkout_summary_with_exclusive_tax(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_summary(pilot, lanes)

    app = sale_app(with_tax(settings, EXCLUSIVE), lanes.db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_checkout_summary_with_inclusive_tax(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_summary(pilot, lanes)

    app = sale_app(with_tax(settings, INCLUSIVE), lanes.db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_plan_selection_with_exclusive_tax(snap_compare, settings, lanes: Lanes) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await _to_plans(pilot, lanes)

    app = sale_app(with_tax(settings, EXCLUSIVE), lanes.db)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
