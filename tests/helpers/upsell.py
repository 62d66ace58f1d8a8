"""A single wash paid on the simulated gateway (a real charge), for "Join today" and its refunds, and the
terminal process the race tests start (it joins, or refunds, when all are at the barrier)."""

from __future__ import annotations

import traceback
import uuid
from typing import Any

from clarity_tui.payments.cards import ManualCard
from clarity_tui.payments.simulated import SimulatedGateway
from db.engine import Database
from db.models import OrderKind, OrderState, SalesOrder, VehicleSession, utcnow


def paid_wash(db: Database, session_id: int, cents: int = 1500, *, terminal: str = "lane-1-term",
              state: str = OrderState.COMPLETED, charged: bool = True) -> int:
    """A single-wash order of the session, paid `cents` by a real simulated charge (as the wash sale leaves it)."""
    payment_id = None
    if charged:
        gateway = SimulatedGateway(db)
        key = uuid.uuid4().hex
        card = gateway.tokenize_card(ManualCard.parse("4242424242424242", "12/40", "123"),
                                     idempotency_key=f"{key}:tokenize")
        payment_id = gateway.charge("cus_sim_walk_in", card.payment_method_id, cents,
                                    idempotency_key=f"{key}:charge").payment_id
    with db.write() as s:
        vs = s.get(VehicleSession, session_id)
        assert vs is not None
        order = SalesOrder(idempotency_key=f"wash-{uuid.uuid4().hex}", kind=OrderKind.WASH, state=state,
                           session_id=session_id, customer_id=vs.customer_id, lane_id=vs.lane_id, terminal=terminal,
                           subtotal_cents=cents, due_today_cents=cents, gateway_payment_id=payment_id,
                           completed_at=utcnow() if state == OrderState.COMPLETED else None)
        s.add(order)
        s.flush()
        assert order.id is not None
        return order.id


def race_process(url: str, what: str, wash_id: int, terminal: str, barrier: Any, results: Any) -> None:
    """One terminal: "join" (Join today with the wash) or "refund" (a manager refunds the wash in full),
    started when every terminal is at the barrier. Reports (terminal, outcome, detail)."""
    try:
        from clarity_tui.errors import UserFacingError
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.membership_actions import MembershipActions
        from clarity_tui.services.upsell import join_today
        from tests.helpers.actors import MANAGER
        from tests.helpers.sale import sale_service

        db = Database.from_url(url)
        sale = sale_service(db, terminal)
        with db.read() as s:  # connected before the race: the race is the steps, not the connecting
            s.get(SalesOrder, wash_id)
        barrier.wait(timeout=60)
        try:
            if what == "join":
                view = join_today(sale, wash_id)
                outcome: tuple[str, Any] = ("joined", view.id)
            else:
                MembershipActions(BillingService(db, SimulatedGateway(db))).refund(MANAGER, wash_id)
                outcome = ("refunded", None)
        except UserFacingError as exc:
            outcome = ("refused", str(exc))
        db.dispose()
        results.put((terminal, *outcome))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        barrier.abort()
        results.put((terminal, "error", traceback.format_exc()))
