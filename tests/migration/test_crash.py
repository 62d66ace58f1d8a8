"""A real SIGKILL after the gateway saved the card: the next run finishes without a second SetupIntent."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from sqlmodel import select

from db.models import LegacyMember, Membership, SalesOrder, SimGatewayObject
from tests.helpers import forked
from tests.helpers.lanes import NEXT_BILL, Legacy
from tests.helpers.migration import service, to_signed

REPO = Path(__file__).resolve().parents[2]


def probe(db_url: str, order_id: int, kill_at: str = "") -> subprocess.CompletedProcess[str]:
    return forked.run(["-m", "tests.migration.crashmigrate", db_url, str(order_id), kill_at],
                      cwd=REPO, capture_output=True, text=True, timeout=120)


def count(db, kind: str) -> int:  # noqa: ANN001
    with db.read() as s:
        return len(s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind)).all())


@pytest.mark.parametrize("kill_at", ["card.save:after_call", "card.save:after_done"])
def test_sigkill_after_the_card_was_saved(legacy: Legacy, settings, kill_at: str) -> None:  # noqa: ANN001
    db = legacy.db
    order_id = to_signed(service(db), legacy)
    killed = probe(settings.database_url, order_id, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert count(db, "setup_intent") == 1 and count(db, "subscription") == 0
    again = probe(settings.database_url, order_id)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split() == ["completed", "True"]
    assert count(db, "setup_intent") == 1 and count(db, "subscription") == 1 and count(db, "payment_intent") == 0
    with db.read() as s:
        assert s.get(SalesOrder, order_id).state == "completed"
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
        assert m.next_billing_on == NEXT_BILL
        assert s.get(LegacyMember, legacy.jane_id).migrated_customer_id == m.customer_id
