"""Crash probe: pay (set up billing for) a signed migration order, SIGKILLing this process at a step.

python -m tests.migration.crashmigrate DB_URL ORDER_ID OPERATION:POINT
(point: before_call | after_call | after_done). SIGKILL: no cleanup, no flush, like a power cut.
Without a kill point it does what the app does at start-up: recover(), then pay().
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    db_url, order_id = sys.argv[1], int(sys.argv[2])
    kill_at = sys.argv[3] if len(sys.argv) > 3 else ""
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.migration import MigrationService
    from db.engine import Database
    from tests.helpers.clock import TODAY

    db = Database.from_url(db_url)
    service = MigrationService(db, SimulatedGateway(db), Actor(name="Alex Attendant", terminal="lane-1-term"),
                               terminal="lane-1-term", today=lambda: TODAY)

    def observer(point: str, entry) -> None:  # noqa: ANN001
        if kill_at == f"{entry.operation}:{point}":
            os.kill(os.getpid(), signal.SIGKILL)

    service.billing.processor.observers.append(observer)
    if not kill_at:
        service.recover()
    result = service.pay(order_id)
    print(result.state, result.ok)


if __name__ == "__main__":
    main()
