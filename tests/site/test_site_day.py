"""The site's own day (settings.site.timezone): "today" for billing dates and day reports.

A Texas wash at 8:30 pm is already on tomorrow's date in UTC. Its evening sales belong to
today's report, and a legacy billing date of tomorrow is tomorrow, not "today".
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlmodel import select

from clarity_tui.cli import cli
from clarity_tui.config import ConfigError, load_settings
from clarity_tui.services.actor import Actor
from clarity_tui.services.reports import day_report
from clarity_tui.sitetime import day_window, local_time, site_date
from db.models import OrderKind, OrderState, Plan, Role, SalesOrder

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

CHICAGO = ZoneInfo("America/Chicago")
# Sunday Nov 22, 2026, 8:30 pm in Chicago (CST, UTC-6): already Nov 23 in UTC.
EVENING = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
MANAGER = Actor("Morgan Manager", Role.MANAGER)  # reads the whole day (report.view)


def test_the_site_day_is_the_local_calendar_day() -> None:
    assert site_date(EVENING, CHICAGO) == dt.date(2026, 11, 22)
    assert site_date(EVENING, dt.UTC) == dt.date(2026, 11, 23)
    assert site_date(EVENING.replace(tzinfo=None), CHICAGO) == dt.date(2026, 11, 22)  # stored naive = UTC
    assert day_window(dt.date(2026, 11, 22), CHICAGO) == (dt.datetime(2026, 11, 22, 6, tzinfo=dt.UTC),
                                                          dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC))
    assert local_time(EVENING, CHICAGO) == "Nov 22, 2026 20:30 CST"


def test_days_when_the_clocks_change_are_23_and_25_hours() -> None:
    spring_start, spring_end = day_window(dt.date(2026, 3, 8), CHICAGO)
    fall_start, fall_end = day_window(dt.date(2026, 11, 1), CHICAGO)
    assert spring_end - spring_start == dt.timedelta(hours=23)
    assert fall_end - fall_start == dt.timedelta(hours=25)


def test_an_unknown_time_zone_is_refused_with_the_fix(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "config.toml"
    path.write_text('[site]\ntimezone = "Texas/Dallas"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith("Settings problem at site.timezone")
    assert "unknown time zone 'Texas/Dallas'" in message and "America/Chicago" in message
    path.write_text('[site]\ntimezone = "America/Chicago"\n')
    assert load_settings(path).site.zone == CHICAGO


def _evening_sale(db) -> int:  # noqa: ANN001
    with db.write() as s:
        plan = s.exec(select(Plan).order_by(Plan.id)).first()
        order = SalesOrder(idempotency_key="evening-sale", kind=OrderKind.SALE, state=OrderState.COMPLETED,
                           plan_id=plan.id, subtotal_cents=2999, due_today_cents=2999, terminal="lane-1-term",
                           created_at=EVENING - dt.timedelta(minutes=5), updated_at=EVENING, completed_at=EVENING)
        s.add(order)
        s.flush()
        return order.id


def test_an_evening_sale_is_in_that_days_report(demo_db) -> None:  # noqa: ANN001
    _evening_sale(demo_db)
    assert day_report(demo_db, dt.date(2026, 11, 22), CHICAGO, actor=MANAGER).sold == 1
    assert day_report(demo_db, dt.date(2026, 11, 23), CHICAGO, actor=MANAGER).sold == 0
    # On UTC days the same sale falls on the next day: what the site's zone is for.
    assert day_report(demo_db, dt.date(2026, 11, 22), dt.UTC, actor=MANAGER).sold == 0
    assert day_report(demo_db, dt.date(2026, 11, 23), dt.UTC, actor=MANAGER).sold == 1
    assert (day_report(demo_db, dt.date(2026, 11, 22), CHICAGO, actor=MANAGER).title
            == "Day 2026-11-22 (America/Chicago), every terminal")


def test_the_report_cli_reads_dates_as_site_days(demo_db, settings, tmp_path) -> None:  # noqa: ANN001
    _evening_sale(demo_db)
    path = tmp_path / "config.toml"
    path.write_text(f'database_url = "{settings.resolved_database_url()}"\n[site]\ntimezone = "America/Chicago"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "report", "--date", "2026-11-22"])
    assert result.exit_code == 0, result.output
    assert "Day 2026-11-22 (America/Chicago)" in result.output
    assert "Memberships sold: 1" in result.output
