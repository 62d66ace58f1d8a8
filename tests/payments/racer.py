"""A terminal process for the race tests: waits at a start line, then sells or replays.

python -m tests.payments.racer DB_URL NAME sell ORDER_ID
python -m tests.payments.racer DB_URL NAME replay
Prints "ready", waits for a line on stdin (the start signal the parent sends once every racer is
ready, so they leave together), then prints one line: the outcome.
"""

from __future__ import annotations

import sys


def main() -> None:
    db_url, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    from clarity_tui.payments.errors import PaymentError
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing import BillingService
    from db.engine import Database

    db = Database.from_url(db_url)
    billing = BillingService(db, SimulatedGateway(db), Actor(name, terminal=name))
    with db.read() as s:  # connect before the start line
        s.connection()
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "sell":
        try:
            out = billing.start_sale(int(sys.argv[4]))
            print(f"{out.state}|{out.message or ''}")
        except PaymentError as exc:
            print(f"refused|{exc}")
    else:
        results = billing.processor.replay_pending()
        print("|".join(f"{r.order_id}:{r.status}" for r in results))
    db.dispose()


if __name__ == "__main__":
    main()
