"""One billing-sync job in its own process, with a real fault at a chosen step
(tests/billing/test_adversarial_lifecycle.py).

    python adversary_lifecycle_child.py CTRL_DIR JSON

JSON keys: url; job ("pass": BillingSync.run_once(); "handle": handle_event for one event id);
kill_at (int: SIGKILL this process at that step); hold_at (a label prefix: at the first step whose
label starts with it, write CTRL_DIR/held and wait for CTRL_DIR/release); page_size (the Events API
page size, to get several pages out of a small scenario); event_id and source (job "handle");
timezone (the site's, default UTC).

Every step appends its label to CTRL_DIR/trace (flushed before the step acts), so a clean run lists
the steps a later run may be killed at. The steps:

- lead: the pass leads (its `_pull` starts);
- page: before each Events API call (between pages);
- latest: after the newest event's id was read (the fallback);
- got:<kind>: after each object retrieved from the gateway;
- fetched:<event id>: after every object an event needs was retrieved;
- precommit:<what> / postcommit:<what>: inside each write transaction, just before its COMMIT
  (everything flushed), and just after it.

Prints one JSON line: the report of the pass ({"leader", "events", "error", "cursor"}) or
{"outcome": ...} for "handle".
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlmodel import Session

from clarity_tui.config import Settings
from clarity_tui.payments.lifecycle import event_from_json
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services import billing_sync
from clarity_tui.services.billing_sync import BillingSync
from db.engine import Database
from db.models import Membership
from db.models_billing import BillingSync as SyncRow
from db.models_billing import GatewayEvent as EventRow
from db.models_billing import MembershipPayment


class Steps:
    def __init__(self, ctrl: Path, kill_at: int | None, hold_at: str | None) -> None:
        self.ctrl, self.kill_at, self.hold_at = ctrl, kill_at, hold_at
        self.n = 0
        self.trace = (ctrl / "trace").open("a", encoding="utf-8")

    def __call__(self, label: str) -> None:
        self.n += 1
        self.trace.write(f"{label}\n")
        self.trace.flush()  # in the kernel's hands: a SIGKILL of this process does not lose it
        if self.kill_at is not None and self.n == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.hold_at is not None and label.startswith(self.hold_at):
            self.hold_at = None  # the first match only
            (self.ctrl / "held").write_text(label)
            while not (self.ctrl / "release").exists():
                time.sleep(0.005)  # waiting on the test's file, not standing in for it


def _what(s: Session) -> str:
    seen = s.info.get("adv_seen") or set()
    events = sorted(x.split("=", 1)[1] for x in seen if x.startswith("event="))
    if events:
        return "event:" + ",".join(events)
    return "+".join(sorted(x for x in seen if "=" not in x)) or "write"


def install_commit_hooks(step: Steps) -> None:
    @sa_event.listens_for(Session, "before_flush")
    def _seen(s: Session, _ctx: Any, _instances: Any) -> None:
        seen = s.info.setdefault("adv_seen", set())
        for obj in list(s.new) + list(s.dirty):
            if isinstance(obj, EventRow):
                seen.add(f"event={obj.id}")
            elif isinstance(obj, (Membership, MembershipPayment, SyncRow)):
                seen.add(type(obj).__name__)

    @sa_event.listens_for(Session, "before_commit")
    def _before(s: Session) -> None:
        s.flush()  # everything written, nothing committed
        step(f"precommit:{_what(s)}")

    @sa_event.listens_for(Session, "after_commit")
    def _after(s: Session) -> None:
        step(f"postcommit:{_what(s)}")


class StepGateway(SimulatedGateway):
    """The simulated gateway, reporting each call as a step."""

    def __init__(self, db: Any, step: Steps) -> None:
        super().__init__(db)
        self.step = step

    def list_events(self, **kw: Any):
        self.step("page")
        return super().list_events(**kw)

    def latest_event_id(self):
        got = super().latest_event_id()
        self.step("latest")
        return got

    def retrieve_subscription(self, subscription_id: str):
        got = super().retrieve_subscription(subscription_id)
        self.step("got:subscription")
        return got

    def retrieve_invoice(self, invoice_id: str):
        got = super().retrieve_invoice(invoice_id)
        self.step("got:invoice")
        return got

    def retrieve_charge(self, charge_id: str):
        got = super().retrieve_charge(charge_id)
        self.step("got:charge")
        return got

    def retrieve_dispute(self, dispute_id: str):
        got = super().retrieve_dispute(dispute_id)
        self.step("got:dispute")
        return got

    def retrieve_card(self, payment_method_id: str):
        got = super().retrieve_card(payment_method_id)
        self.step("got:card")
        return got


class StepSync(BillingSync):
    step: Steps

    def _pull(self, report):
        self.step("lead")
        return super()._pull(report)

    def _fetch(self, event):
        got = super()._fetch(event)
        self.step(f"fetched:{event.event_id}")
        return got


def run_job(ctrl: Path, args: dict[str, Any]) -> None:
    if args.get("page_size"):
        billing_sync.PAGE_SIZE = int(args["page_size"])
    step = Steps(ctrl, args.get("kill_at"), args.get("hold_at"))
    install_commit_hooks(step)
    db = Database.from_url(args["url"])
    gw = StepGateway(db, step)
    settings = Settings(database_url=args["url"], site={"timezone": args.get("timezone", "UTC")})
    sync = StepSync(db, gw, settings, terminal=f"child-{os.getpid()}")
    sync.step = step
    if args["job"] == "handle":
        event = event_from_json(SimulatedGateway(db).retrieve_event(args["event_id"]))
        print(json.dumps({"outcome": sync.handle_event(event, source=args.get("source", "webhook"))}), flush=True)
        return
    report = sync.run_once()
    print(json.dumps({"leader": report.leader, "events": dict(report.events), "error": report.error,
                      "cursor": report.cursor, "fallback": report.fallback}), flush=True)


def main() -> None:
    run_job(Path(sys.argv[1]), json.loads(sys.argv[2]))


if __name__ == "__main__":
    main()
