"""A terminal's billing sync pass, in its own process (tests/billing/test_leader.py).

    python leader_child.py DB_URL HOLD_DIR|-

With a HOLD_DIR, the pass, once it leads, writes HOLD_DIR/leading and waits for HOLD_DIR/release
before it asks the gateway for anything: the test holds one leader mid-pass while others try.
Prints one JSON line: {"leader": bool, "events": {...}}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from clarity_tui.config import Settings
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.billing_sync import BillingSync
from db.engine import Database


class HeldGateway(SimulatedGateway):
    """The simulated gateway, with a pause the test controls before the first events call."""

    def __init__(self, db, hold: Path) -> None:
        super().__init__(db)
        self.hold = hold

    def _wait(self) -> None:
        (self.hold / "leading").write_text("1")
        while not (self.hold / "release").exists():
            time.sleep(0.01)

    def list_events(self, **kw):
        self._wait()
        return super().list_events(**kw)

    def latest_event_id(self):
        self._wait()
        return super().latest_event_id()


def main() -> None:
    url, hold = sys.argv[1], sys.argv[2]
    db = Database.from_url(url)
    gw = HeldGateway(db, Path(hold)) if hold != "-" else SimulatedGateway(db)
    report = BillingSync(db, gw, Settings(database_url=url, site={"timezone": "UTC"}), terminal="child").run_once()
    print(json.dumps({"leader": report.leader, "events": dict(report.events), "error": report.error}), flush=True)


if __name__ == "__main__":
    main()
