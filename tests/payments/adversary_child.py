"""A terminal process for tests/payments/test_adversarial_money.py: waits at a start line, acts, may die.

python -m tests.payments.adversary_child DB_URL MODE [ARGS...]
  sell ORDER_ID                      BillingService.start_sale
  replay [N]                         OutboxProcessor.replay_pending, N times (what `payments replay` does)
  cancel ORDER_ID                    BillingService.cancel_order
  refund ORDER_ID CENTS|all          MembershipActions.refund, as a manager
  change MEMBERSHIP_ID VERSION OPERATION ALLOWED_STATUS[,..] [KEY=VALUE ...]
                                     MembershipActions.change (pause, resume, cancel, keep, change_plan)
  card MEMBERSHIP_ID VERSION TOKEN   MembershipActions.update_card with a reader token
  plan MEMBERSHIP_ID VERSION PLAN    PlanChanges.from_record (a plan change order)

It prints "ready" once connected, waits for one line on stdin (the start signal), acts, and prints one
line: "ok|<outcome>" or "refused|<message>". With ADV_KILL=<operation>:<point> (point: before_call |
after_call | after_done) it prints "dying|<operation>:<point>" and SIGKILLs itself at that outbox point:
no cleanup, no lease release, no flush. Only this test helper reads that variable.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    db_url, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    from clarity_tui.payments.cards import CardToken
    from clarity_tui.payments.errors import PaymentError
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.billing import BillingService
    from clarity_tui.services.membership_actions import ActionRefused, MembershipActions
    from clarity_tui.services.plan_changes import PlanChangeRefused, PlanChanges
    from db.engine import Database
    from db.models import Role

    db = Database.from_url(db_url)
    name = f"adv-{os.getpid()}"
    manager = Actor("Morgan Manager", Role.MANAGER, name, 2)
    billing = BillingService(db, SimulatedGateway(db), Actor(name, terminal=name))
    kill_at = os.environ.get("ADV_KILL")

    def observer(point: str, entry) -> None:  # noqa: ANN001
        if kill_at == f"{entry.operation}:{point}":
            print(f"dying|{kill_at}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    billing.processor.observers.append(observer)
    with db.read() as s:  # connect before the start line
        s.connection()
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        if mode == "sell":
            out = billing.start_sale(int(args[0]))
            print(f"ok|{out.state}|{out.message or ''}", flush=True)
        elif mode == "replay":
            results = []
            for _ in range(int(args[0]) if args else 1):
                results += billing.processor.replay_pending()
            print("ok|" + ";".join(f"{r.order_id}:{r.status}" for r in results), flush=True)
        elif mode == "cancel":
            out = billing.cancel_order(int(args[0]))
            print(f"ok|{out.state}|{out.message or ''}", flush=True)
        elif mode == "refund":
            amount = None if args[1] == "all" else int(args[1])
            out = MembershipActions(billing).refund(manager, int(args[0]), amount)
            print(f"ok|{out.status}", flush=True)
        elif mode == "change":
            extra = dict(a.split("=", 1) for a in args[4:])
            if "plan_id" in extra:
                extra["plan_id"] = int(extra["plan_id"])
            out = MembershipActions(billing).change(manager, int(args[0]), int(args[1]), args[2],
                                                    set(args[3].split(",")), "changed", **extra)
            print(f"ok|{out.status}", flush=True)
        elif mode == "card":
            out = MembershipActions(billing).update_card(manager, int(args[0]), int(args[1]),
                                                         CardToken(args[2], "visa", "4242", 12, 2031))
            print(f"ok|{out.status}|{out.charged_cents}", flush=True)
        elif mode == "plan":
            direction, out = PlanChanges(billing).from_record(manager, int(args[0]), int(args[1]), args[2])
            print(f"ok|{direction}|{out.state}|{out.message or ''}", flush=True)
        else:
            raise SystemExit(f"unknown mode {mode}")
    except (PaymentError, ActionRefused, PlanChangeRefused) as exc:
        print(f"refused|{type(exc).__name__}|{exc}", flush=True)
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
