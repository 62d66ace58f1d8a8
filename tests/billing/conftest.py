"""Billing lifecycle fixtures: the simulated gateway (members to bill: tests/helpers/billing.py)."""

from __future__ import annotations

import pytest

from clarity_tui.payments.simulated import SimulatedGateway


@pytest.fixture
def gw(db) -> SimulatedGateway:
    return SimulatedGateway(db)
