"""Where the simulated billing clock's failure rate comes from (issue 13 item 5: `billing.simulated_failure_rate`
is "a setting like any other, so --config, the environment or the scenario file can set it"), and the shipped
demo scenario running the clock, on both databases. The environment variable is tested in test_sim_clock.py
and test_billing_cli.py."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from clarity_tui.config import load_settings
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.billing_sync import BillingSync
from clarity_tui.simulator.scenario import load_scenario
from tests.helpers import forked
from tests.helpers.billing import make_member
from tests.helpers.ui import make_app, wait_until

ROOT = Path(__file__).resolve().parents[2]
RUSH_HOUR = ROOT / "clarity_tui" / "simulator" / "scenarios" / "rush_hour.toml"


def _members(db, gw: SimulatedGateway, n: int = 3) -> list[str]:  # noqa: ANN001
    """n members whose first renewal falls within the next day, at any time of day (a date would bill at
    noon UTC, which one day's advance does not reach before noon)."""
    soon = gw.clock_now() + dt.timedelta(hours=2)
    return [make_member(db, gw, first_billing=soon).subscription_id for _ in range(n)]


def test_the_failure_rate_in_a_settings_toml_given_with_config_reaches_the_cli_clock(db, gw, settings,  # noqa: ANN001
                                                                                   tmp_path) -> None:
    subs = _members(db, gw)
    gw.advance_clock(0.01, failure_rate=0.0)  # the clock row exists: the CLI's process moves the same clock
    config = tmp_path / "site.toml"
    config.write_text(f'database_url = "{settings.resolved_database_url()}"\n\n'
                      '[billing]\nsimulated_failure_rate = 1.0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARITY_BILLING__")}
    done = forked.run(["-m", "clarity_tui", "--config", str(config), "payments", "clock", "advance", "2", "--json"],
                      capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["failure_rate"], report["renewals"], report["failures"]) == (1.0, 3, 3)
    assert {gw.retrieve_subscription(s).status for s in subs} == {"past_due"}


@pytest.mark.parametrize("source", ["scenario file", "settings toml"])
async def test_the_failure_rate_reaches_the_clock_the_simulator_runs(db, gw, settings, tmp_path,  # noqa: ANN001
                                                                    source: str) -> None:
    """The app's billing clock (the palette command a technician runs) takes the scenario file's
    billing_failure_rate, or else the settings' billing.simulated_failure_rate."""
    subs = _members(db, gw)
    BillingSync(db, gw, settings).run_once()
    quiet = 'initial_vehicles = 0\n\n[arrivals]\nper_minute = 0\n'
    scenario_file = tmp_path / "scenario.toml"
    if source == "scenario file":
        scenario_file.write_text("billing_failure_rate = 1.0\n" + quiet)
        site = settings.model_copy(update={"simulate": True})
        assert site.billing.simulated_failure_rate == 0.0  # the setting alone would fail nothing
    else:
        scenario_file.write_text(quiet)
        config = tmp_path / "site.toml"
        config.write_text(f'database_url = "{settings.resolved_database_url()}"\nsimulate = true\n'
                          'terminal_id = "lane-1-term"\n\n[site]\ntimezone = "UTC"\n\n'
                          '[billing]\nsimulated_failure_rate = 1.0\n')
        site = load_settings(config)
        assert site.billing.simulated_failure_rate == 1.0
    scenario = load_scenario(scenario_file)
    assert scenario.billing_days_per_minute == 0  # only the palette moves the clock here
    app = make_app(site, db, scenario=scenario)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: bool(app.billing_commands()), "the simulator's billing commands")
        # The start-up billing pass first: a clock advance that finds the database busy waits for the next try.
        await wait_until(pilot, lambda: not any(w.group == "billing" and w.is_running for w in app.workers),
                         "the start-up billing pass")
        assert {gw.retrieve_subscription(s).status for s in subs} == {"trialing"}
        day = next(c for c in app.billing_commands() if c.title == "Billing clock: advance 1 day")
        day.callback()  # the renewals fall due within the day; Stripe's retries come days later
        await wait_until(pilot, lambda: gw.clock_now() > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23),
                         "the clock to move a day")
        # Every renewal failed (with the default rate of 0 none would): the board's sync reports them.
        await wait_until(pilot, lambda: {gw.retrieve_subscription(s).status for s in subs} == {"past_due"},
                         "every renewal to fail", timeout=60)
        await wait_until(pilot, lambda: _gateway_statuses(db) == {"past_due"}, "the sync to record them", timeout=60)


def _gateway_statuses(db) -> set[str | None]:  # noqa: ANN001
    from sqlmodel import select

    from db.models import Membership

    with db.read() as s:
        return set(s.exec(select(Membership.gateway_status)).all())


def test_the_demo_scenario_runs_the_billing_clock_at_a_modest_rate(db, settings) -> None:  # noqa: ANN001
    """The shipped scenario moves the clock on its own, slowly enough to follow on the board, fast enough that
    the demo seed's members renew (and some fail) within a few minutes."""
    from clarity_tui.seeding.demo import seed_demo

    scenario = load_scenario(RUSH_HOUR)
    assert 0 < scenario.billing_days_per_minute <= 2
    assert scenario.billing_failure_rate == pytest.approx(0.1)
    seed_demo(db, customers=60, legacy=0, gateway=True)
    gw = SimulatedGateway(db)
    minutes = 3
    report = gw.advance_clock(scenario.billing_days_per_minute * minutes, failure_rate=scenario.billing_failure_rate,
                              seed=7)
    assert report.renewals > 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_demo_with_no_scenario_file_runs_the_billing_clock(demo_db, settings) -> None:  # noqa: ANN001
    """`./dev demo` is the simulator with no scenario file: its app boots with the billing clock running,
    so a technician sees members renew, fail and recover on the board within minutes."""
    from clarity_tui.app import ClarityApp
    from clarity_tui.bootconfig import resolve_boot_config

    app = ClarityApp(boot=resolve_boot_config(None, settings.resolved_database_url(), True))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.is_booted or app.boot_error is not None, "the full boot in simulator mode")
        assert app.boot_error is None
        assert (app.scenario.billing_days_per_minute, app.scenario.billing_failure_rate) == (1.0, 0.1)
        await wait_until(pilot, lambda: any(t.name == "billing-clock" for t in app._timers), "the billing clock's timer")
