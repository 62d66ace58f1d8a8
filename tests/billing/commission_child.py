"""A terminal process for tests/billing/test_commissions.py: waits at a start line, then acts once.

python -m tests.billing.commission_child DB_URL MODE ORDER_ID [CENTS]
  activate ORDER_ID        OrderSteps.activate (the completion hook: the operator's commission with it)
  earn ORDER_ID            commissions.earn in a transaction of its own (two inserts racing for one row)
  refund ORDER_ID CENTS    MembershipActions.refund as a manager (the refund hook takes the commission back)

It prints "ready" once connected, waits for one line on stdin, acts, and prints "ok|<result>".
"""

from __future__ import annotations

import datetime as dt
import os
import sys


def main() -> None:
    db_url, mode, order_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing import BillingService
    from clarity_tui.services.commissions import earn
    from clarity_tui.services.membership_actions import MembershipActions
    from clarity_tui.services.orders.checkout import OrderSteps
    from db.engine import Database
    from db.models import Role, SalesOrder

    db = Database.from_url(db_url)
    name = f"commission-{os.getpid()}"
    billing = BillingService(db, SimulatedGateway(db), Actor(name, terminal=name))
    with db.read() as s:  # connect before the start line
        s.connection()
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        if mode == "activate":
            steps = OrderSteps(db, billing, Actor.system("recover", name), terminal=name, today=dt.date.today,
                               zone=dt.UTC, tax=None)
            print(f"ok|{steps.activate(order_id)}", flush=True)
        elif mode == "earn":
            with db.write() as s:
                row = earn(s, s.get_one(SalesOrder, order_id), None)
                print(f"ok|{row.amount_cents if row else None}", flush=True)
        elif mode == "refund":
            manager = Actor("Morgan Manager", Role.MANAGER, name, 2)
            out = MembershipActions(billing).refund(manager, order_id, int(sys.argv[4]))
            print(f"ok|{out.status}", flush=True)
        else:
            raise SystemExit(f"unknown mode {mode}")
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
