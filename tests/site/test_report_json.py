"""`clarity-tui report --date D --json` (issue 18, item 7): the day's lane figures as one JSON object, on the
site's day (settings.site.timezone), with the keys the issue names; the report's other outputs stay."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from clarity_tui.cli import cli
from db.models_billing import PaymentKind
from tests.helpers.lane_day import LaneDay

pytestmark = pytest.mark.both_databases  # reports: SQL over dates on both databases (tests/conftest.py)

CHICAGO = ZoneInfo("America/Chicago")
DAY = dt.date(2026, 11, 20)
KEYS = {"day", "retail_washes", "member_visits", "limit_refusals", "memberships_sold", "conversion_rate",
        "upsell_credits", "upsell_credit_cents", "renewals", "renewal_failures", "churn_voluntary",
        "churn_card_failure", "visits_per_member", "current_members", "commissions", "sales_by_operator"}


def at(hour: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=CHICAGO).astimezone(dt.UTC)


@pytest.fixture
def chicago_config(tmp_path: Path) -> str:
    path = tmp_path / "chicago.toml"
    path.write_text('[site]\ntimezone = "America/Chicago"\n')
    return str(path)


def _report(url: str, config: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", url, "--config", config, "report", *args])
    return result.exit_code, result.output


def test_the_days_figures_as_json(db, settings, chicago_config) -> None:
    lane = LaneDay(db)
    for hour in (8, 12, 21):  # 9 pm in Chicago is 03:00 UTC the next day: still the site's Nov 20
        lane.wash("retail", at(hour))
    member = lane.membership(dt.date(2026, 11, 1))
    lane.wash("member", at(9))
    lane.refusal(at(10), member)
    sold = lane.sale(at(12), "Alex Attendant", credit_cents=1200)
    lane.commission("Alex Attendant", 500, at(12), sold)
    lane.payment(PaymentKind.RENEWAL, at(6), member, "in_1")
    lane.wash("retail", at(1, DAY + dt.timedelta(days=1)))  # tomorrow's

    code, out = _report(settings.resolved_database_url(), chicago_config, "--date", DAY.isoformat(), "--json")
    assert code == 0, out
    body = json.loads(out)
    assert set(body) == KEYS
    assert body == {"day": "2026-11-20", "retail_washes": 3, "member_visits": 1, "limit_refusals": 1,
                    "memberships_sold": 1, "conversion_rate": 0.3333, "upsell_credits": 1, "upsell_credit_cents": 1200,
                    "renewals": 1, "renewal_failures": 0, "churn_voluntary": 0, "churn_card_failure": 0,
                    "visits_per_member": 1.0, "current_members": 1, "commissions": {"Alex Attendant": 500},
                    "sales_by_operator": {"Alex Attendant": 1}}

    code, out = _report(settings.resolved_database_url(), chicago_config, "--date", "2026-11-19", "--json")
    assert code == 0 and json.loads(out)["retail_washes"] == 0 and json.loads(out)["conversion_rate"] is None


def test_json_is_a_days_figures_and_the_other_outputs_stay(db, settings, chicago_config, tmp_path) -> None:
    lane = LaneDay(db)
    lane.sale(at(12), "Alex Attendant")
    url = settings.resolved_database_url()
    code, out = _report(url, chicago_config, "--shift", "1", "--json")
    assert code == 2 and "--json prints a whole day's figures" in out
    code, out = _report(url, chicago_config, "--date", DAY.isoformat(), "--json", "--csv", "-")
    assert code == 2 and "without --shift or --csv" in out
    code, out = _report(url, chicago_config, "--date", DAY.isoformat())
    assert code == 0 and "Memberships sold: 1" in out
    code, out = _report(url, chicago_config, "--date", DAY.isoformat(), "--csv", "-")
    assert code == 0 and out.splitlines()[1] == '"section","group","count","amount"'
