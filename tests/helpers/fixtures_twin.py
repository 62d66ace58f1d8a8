"""Fixtures (a pytest plugin, registered in tests/conftest.py): a second database of the same backend as
`settings`, seeded like `demo_db`, so one run's state can be compared with another's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clarity_tui.config import Settings
from tests.helpers.pg import admin_execute, pg_conninfo


@pytest.fixture
def twin_settings(settings: Settings, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a second database of the same backend as `settings` (SQLite file or PostgreSQL)."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        yield settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'twin.db'}"})
        return
    template = request.getfixturevalue("pg_template")
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield settings.model_copy(update={"database_url": pg_conninfo(name)})
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def twin_demo_db(twin_settings: Settings) -> Iterator[Any]:
    """The twin database with the same demo site as `demo_db` (the demo seed is deterministic)."""
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo

    database = open_database(twin_settings)
    seed_demo(database, customers=40, legacy=20)
    yield database
    database.dispose()
