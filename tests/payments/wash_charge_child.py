"""A lane paying a single wash on the simulated reader, that SIGKILLs itself at a chosen outbox point.

python -m tests.payments.wash_charge_child DB_URL ORDER_ID POINT
POINT: before_call | after_call | after_done of the `card_present.wash` row (after_call: the gateway
took the money and the order is not yet recorded as paid). SIGKILL: no cleanup, no flush, no lease
released. Only this script kills; product code has observers, not fault switches.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    db_url, order_id, kill_at = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.billing import BillingService
    from clarity_tui.services.card_present import reader_attended
    from clarity_tui.services.wash_payment import WASH_CHARGE
    from db.engine import Database
    from db.models import Outbox
    from hardware.card_reader.simulated import SimulatedCardReader

    db = Database.from_url(db_url)
    billing = BillingService(db, SimulatedGateway(db))

    def observer(point: str, entry: Outbox) -> None:
        if entry.operation == WASH_CHARGE and point == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    billing.processor.observers.append(observer)
    with reader_attended(SimulatedCardReader(delay=0)):
        result = billing.processor.run_order(order_id)
    print(result.status, result.message or "")


if __name__ == "__main__":
    main()
