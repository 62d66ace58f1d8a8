"""Crash probe for the sale: sign and pay a session's sale headlessly, SIGKILLing this process
right after the card charge is committed (before the subscription and before activation).

python -m tests.sale.crashsale DB_URL SESSION_ID TERMINAL

Only this test script kills itself; product code has outbox observers, not fault switches.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys


def main() -> None:
    db_url, session_id, terminal = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.orders import SaleService
    from db.engine import Database

    db = Database.from_url(db_url)
    service = SaleService(db, SimulatedGateway(db), Actor(name="attendant", terminal=terminal), terminal=terminal,
                          today=lambda: dt.date(2026, 11, 22))

    def observer(point: str, entry) -> None:  # noqa: ANN001
        if (entry.operation, point) == ("payment.charge", "after_done"):
            os.kill(os.getpid(), signal.SIGKILL)

    service.billing.processor.observers.append(observer)
    view = service.open_for_session(session_id)
    service.choose_plan(view.id, "ULTIMATE")
    service.review(view.id)
    service.checkout(view.id)
    service.accept_terms(view.id, service.current_terms().id, "presented")
    service.record_signature(view.id, [[[0.1, 0.5, 0], [0.4, 0.4, 30], [0.8, 0.6, 60]]], "<svg/>",
                             device="signature_pad simulated crash-probe")
    print("order", view.id, flush=True)
    service.pay(view.id)
    print("not killed", flush=True)


if __name__ == "__main__":
    main()
