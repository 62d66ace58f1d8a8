"""Fixtures (a pytest plugin, registered in tests/conftest.py): the demo site with cars in the lanes,
for the sale (`lanes`) and the migration (`legacy`), used by several test directories."""

from __future__ import annotations

import pytest

from db.engine import Database
from tests.helpers.lanes import Lanes, Legacy, seed_lanes, seed_legacy


@pytest.fixture
def lanes(demo_db: Database) -> Lanes:
    return seed_lanes(demo_db)


@pytest.fixture
def legacy(demo_db: Database) -> Legacy:
    return seed_legacy(demo_db)
