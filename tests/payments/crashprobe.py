"""Crash probe: run one order's billing through the outbox, SIGKILLing itself at a chosen step.

python -m tests.payments.crashprobe DB_URL API_BASE ORDER_ID
CLARITY_FAULT_KILL_AFTER=<operation>:<point> (point: before_call | after_call | after_done)
makes the process kill itself (SIGKILL: no cleanup, no flush) at that point. Only this
test script reads that variable; product code has observers, not fault switches.
A run without a kill point does what the app does at start-up: replay pending steps,
or start the sale if it was never started.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    db_url, api_base, order_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from clarity_tui.payments.stripe_gateway import StripeGateway
    from clarity_tui.services.billing import BillingService
    from db.engine import Database
    from db.models import SalesOrder

    db = Database.from_url(db_url)
    service = BillingService(db, StripeGateway("sk_test_clarity", api_base=api_base, timeout=10))
    kill_at = os.environ.get("CLARITY_FAULT_KILL_AFTER")

    def observer(point: str, entry) -> None:  # noqa: ANN001
        if kill_at == f"{entry.operation}:{point}":
            os.kill(os.getpid(), signal.SIGKILL)

    service.processor.observers.append(observer)
    with db.read() as s:
        state = s.get(SalesOrder, order_id).state
    if state == "signed":
        out = service.start_sale(order_id)
    else:
        service.processor.replay_pending()
        out = service.outcome(order_id)
    print(out.state, out.message or "")


if __name__ == "__main__":
    main()
