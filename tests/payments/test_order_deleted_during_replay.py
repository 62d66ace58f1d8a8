"""An order deleted (on another terminal) while its settlement waits in the outbox: the replay fails that row
with a PaymentError the attendant can read, and goes on; it never dies on an AttributeError."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete
from sqlmodel import col, select

from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.errors import PaymentError
from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from clarity_tui.services.billing import BillingService
from db.engine import Database
from db.models import OrderProgress, Outbox, OutboxStatus, SalesOrder, Signature, VehicleClaim
from tests.helpers.orders import new_order


@pytest.mark.both_databases
def test_a_settlement_whose_order_was_deleted_fails_as_a_payment_error(demo_db: Database) -> None:
    gw = SimulatedGateway(demo_db)
    billing = BillingService(demo_db, gw)
    order_id = new_order(demo_db, customer_number="C100003")
    billing.attach_card_token(order_id, CardToken(sim_token("ok"), "visa", "4242", 12, dt.date.today().year + 3))
    gw.inject_fault("payment_intent.create", drop=True)  # charged, and the answer is lost
    assert billing.start_sale(order_id).pending_sync
    gw.online = False  # the cancel's look-up (refund_if_charged) waits in the outbox
    billing.cancel_order(order_id)
    with demo_db.write() as s:
        settle = s.exec(select(Outbox).where(Outbox.operation == "payment.refund_if_charged")).one()
        assert settle.status == OutboxStatus.PENDING and settle.order_id is None
        s.exec(delete(Outbox).where(col(Outbox.order_id) == order_id))
        s.exec(delete(VehicleClaim).where(col(VehicleClaim.order_id) == order_id))
        s.exec(delete(Signature).where(col(Signature.order_id) == order_id))
        s.exec(delete(OrderProgress).where(col(OrderProgress.order_id) == order_id))
        s.exec(delete(SalesOrder).where(col(SalesOrder.id) == order_id))
    gw.online = True

    (result,) = billing.processor.replay_pending()

    assert result.status == "failed" and isinstance(result.error, PaymentError)
    assert f"sales_order {order_id} no longer exists" in str(result.error)
    with demo_db.read() as s:
        row = s.get(Outbox, settle.id)
        assert row is not None and row.status == OutboxStatus.FAILED and "no longer exists" in (row.last_error or "")
