"""Payments fixtures: a real localstripe server on 127.0.0.1 and a recording Stripe HTTP client
(the classes behind them: tests/helpers/localstripe.py, tests/helpers/stripe_recording.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from db.engine import Database

from tests.helpers.localstripe import API_KEY, LocalStripe
from tests.helpers.stripe_recording import RecordingClient


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    server = LocalStripe(tmp_path_factory.mktemp("localstripe") / "state.pickle")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The session's server, wiped for this test."""
    localstripe_server.flush()
    return localstripe_server


@pytest.fixture
def recorder() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def stripe_gateway(localstripe: LocalStripe, recorder: RecordingClient):
    from clarity_tui.payments.stripe_gateway import StripeGateway

    # Keyed test cards go to localstripe: the account "has" raw card data access (issue 12).
    return StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder, raw_card_data_access=True)


@pytest.fixture
def sim_billing(demo_db):
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.billing import BillingService

    return BillingService(demo_db, SimulatedGateway(demo_db))


@pytest.fixture
def sim_file_db(migrated_sqlite_url: str):
    """A migrated SQLite file (no demo data), for the simulated gateway and other processes on it."""
    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database

    db = open_database(Settings(database_url=migrated_sqlite_url))
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def small_site_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the migrated site with 3 demo customers is kept for this test process (made by the first test)."""
    return tmp_path_factory.mktemp("small-site") / "site.db"


@pytest.fixture
def small_site_db(sqlite_url: str, small_site_template: Path) -> Iterator[Database]:
    """A migrated site with 3 demo customers: each test gets its own copy of one file, migrated and seeded once."""
    import sqlite3
    from contextlib import closing

    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from db.engine import sqlite_path

    if not small_site_template.exists():  # built inside a test, so with the test's isolated environment
        template = open_database(Settings(database_url=f"sqlite:///{small_site_template}"))
        seed_demo(template, customers=3, legacy=0)
        template.dispose()
    target = sqlite_path(sqlite_url)
    assert target is not None
    with closing(sqlite3.connect(small_site_template)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)  # a consistent copy (no half-checkpointed WAL)
    db = open_database(Settings(database_url=sqlite_url))
    yield db
    db.dispose()
