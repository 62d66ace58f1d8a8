"""Crash safety (SIGKILL between outbox steps) and network loss, against a real localstripe server."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from clarity_tui.payments.stripe_gateway import StripeGateway
from clarity_tui.services.billing import BillingService
from db.models import Membership, SalesOrder
from tests.helpers import forked
from tests.helpers.localstripe import API_KEY, LocalStripe
from tests.helpers.orders import new_order

ROOT = Path(__file__).resolve().parents[2]
FUTURE = dt.date.today().year + 2
STEPS = ["customer.ensure", "card.save", "payment.charge", "subscription.create"]
POINTS = ["before_call", "after_call", "after_done"]


def run_probe(db_url: str, api_base: str, order_id: int, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CLARITY_FAULT_KILL_AFTER"}
    if kill_at:
        env["CLARITY_FAULT_KILL_AFTER"] = kill_at
    return forked.run(["-m", "tests.payments.crashprobe", db_url, api_base, str(order_id)],
                      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def stripe_demo_db(small_site_db):  # noqa: ANN001, ANN201
    return small_site_db  # tests/payments/conftest.py


def prepared_order(db, api_base: str) -> int:  # noqa: ANN001
    order_id = new_order(db, "DELUXE")
    service = BillingService(db, StripeGateway(API_KEY, api_base=api_base, raw_card_data_access=True))
    service.add_manual_card(order_id, "4242424242424242", f"12/{FUTURE % 100}", "123")
    return order_id


def assert_exactly_once(server: LocalStripe, db, order_id: int) -> None:  # noqa: ANN001
    assert len(server.list("customers")) == 1
    assert len(server.list("subscriptions", status="all")) == 1
    charges = server.list("charges")
    assert [(c["amount"], c["status"]) for c in charges] == [(2999, "succeeded")]
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        membership = s.get(Membership, order.membership_id)
        assert order.state == "completed", order.last_error
        assert order.gateway_payment_id == charges[0]["payment_intent"]
        assert not membership.pending_sync and membership.gateway_subscription_id == order.gateway_subscription_id


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [f"{step}:{point}" for step in STEPS for point in POINTS])
def test_sigkill_between_steps_then_restart(localstripe, stripe_demo_db, sqlite_url, kill_at) -> None:
    order_id = prepared_order(stripe_demo_db, localstripe.url)
    crashed = run_probe(sqlite_url, localstripe.url, order_id, kill_at)
    assert crashed.returncode == -9, crashed.stderr  # it really died at that point
    restarted = run_probe(sqlite_url, localstripe.url, order_id, None)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("completed"), restarted.stdout + restarted.stderr
    assert_exactly_once(localstripe, stripe_demo_db, order_id)


@pytest.mark.slow
def test_server_stops_mid_flow_then_replay(tmp_path, db) -> None:
    """Stop the gateway after the card is saved: the order completes locally, then syncs exactly once."""
    from clarity_tui.seeding.demo import seed_demo

    seed_demo(db, customers=3, legacy=0)
    server = LocalStripe(tmp_path / "own-server.pickle")
    server.start()
    try:
        order_id = prepared_order(db, server.url)
        service = BillingService(db, StripeGateway(API_KEY, api_base=server.url, timeout=5))

        def stop_after_card(point: str, entry) -> None:  # noqa: ANN001
            if entry.operation == "card.save" and point == "after_done":
                server.stop()

        service.processor.observers.append(stop_after_card)
        out = service.start_sale(order_id)
        assert out.pending_sync and "network" in out.message
        with db.read() as s:
            order = s.get(SalesOrder, order_id)
            assert s.get(Membership, order.membership_id).pending_sync  # the board shows the SYNC badge
        assert service.processor.replay_pending()[0].status == "pending_sync"  # still down: kept
        server.start()  # same port, same saved state
        assert [r.status for r in service.processor.replay_pending()] == ["synced"]
        assert service.processor.replay_pending() == []
        assert_exactly_once(server, db, order_id)
    finally:
        server.stop()


def test_timeout_leaves_order_resumable(localstripe, demo_db) -> None:
    import socket

    order_id = new_order(demo_db, "BASIC")
    good = BillingService(demo_db, StripeGateway(API_KEY, api_base=localstripe.url, raw_card_data_access=True))
    good.add_manual_card(order_id, "4242424242424242", f"12/{FUTURE % 100}", "123")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        slow = BillingService(demo_db, StripeGateway(API_KEY, api_base=f"http://127.0.0.1:{silent.getsockname()[1]}",
                                                     timeout=0.5))
        out = slow.start_sale(order_id)
    assert out.pending_sync and "timed out" in out.message
    assert good.resume_order(order_id).completed
    assert len(localstripe.list("charges")) == 1


def test_migration_through_stripe_anchored_with_coupon(localstripe, recorder, demo_db) -> None:
    from clarity_tui.payments.base import to_epoch

    anchor = dt.date.today() + dt.timedelta(days=9)
    order_id = new_order(demo_db, "ULTIMATE", promo="ULTIMATE10", kind="migration")
    service = BillingService(demo_db, StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder,
                                                    raw_card_data_access=True))
    service.add_manual_card(order_id, "4242424242424242", f"12/{FUTURE % 100}", "123")
    assert service.start_migration(order_id, anchor).completed
    assert localstripe.list("charges") == []  # nothing charged today
    (sub,) = recorder.calls("POST", "/v1/subscriptions")
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
    assert sub.params["trial_end"] == str(to_epoch(anchor))
    assert sub.params["discounts[0][coupon]"] == "clarity-ultimate10"
    assert sub.params["items[0][plan]"] == "clarity-ultimate-3999-month"
    assert sub.idempotency_key == f"{order.idempotency_key}:subscription"
    assert [s_["id"] for s_ in localstripe.list("subscriptions", status="all")] == [order.gateway_subscription_id]
