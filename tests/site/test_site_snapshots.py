"""Snapshots of the PIN pad over the board at 80x24, in full colour and in 16 colours.

Update after an intended visual change with: ./dev test tests/site/test_site_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tests.helpers.signin import choose, signin_settings
from tests.helpers.ui import make_app

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'site.db'}"


def _app(settings, db):  # noqa: ANN001, ANN202
    return make_app(signin_settings(settings), db, fixed_clock=True, require_signin=True)


async def _three_digits(pilot) -> None:  # noqa: ANN001
    await choose(pilot, "Morgan Manager")
    await pilot.press("6", "5", "4")
    await pilot.pause()


def test_pin_pad_80x24(demo_db, settings, snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(_app(settings, demo_db), terminal_size=(80, 24), run_before=_three_digits)


def test_pin_pad_80x24_sixteen_colours(demo_db, settings, snap_compare, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    assert snap_compare(_app(settings, demo_db), terminal_size=(80, 24), run_before=_three_digits)
