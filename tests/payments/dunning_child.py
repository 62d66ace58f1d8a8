"""A terminal process for the dunning tests: waits at a start line, then runs dunning once.

python -m tests.payments.dunning_child DB_URL TWILIO_URL TODAY NAME [KILL_AT]

Texts go to a real Twilio-compatible server (tests/helpers/twilio_server.py) over HTTP, so every
process's messages land in one place the test can count. KILL_AT makes the process SIGKILL itself
(no cleanup, no flush) at one point of a text's life:
- `link`: inside the gateway's call for the card-update link (the row is `claimed`, nothing sent);
- `before_send`: in the SMS provider, before its request (the row is `sending`, nothing sent);
- `after_send`: in the SMS provider, after the provider took the text (`sending`, the text went out).
Only this script reads KILL_AT; the product has no fault switch.
Prints "ready", waits for a line on stdin (all racers leave together), then one line per outcome.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys


def main() -> None:
    db_url, twilio_url, today, name = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3]), sys.argv[4]
    kill_at = sys.argv[5] if len(sys.argv) > 5 else ""
    from clarity_tui.config import Settings
    from clarity_tui.messaging.twilio import TwilioSms
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.dunning import run_dunning
    from db.engine import Database

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    class Provider(TwilioSms):
        def send(self, to: str, body: str):  # noqa: ANN201
            if kill_at == "before_send":
                die()
            sent = super().send(to, body)
            if kill_at == "after_send":
                die()
            return sent

    db = Database.from_url(db_url)
    gateway = SimulatedGateway(db)
    if kill_at == "link":
        gateway.on_in_flight = lambda operation, key: die() if key.startswith("dunning-") else None
    sms = Provider("AC_test", "secret", "+15125550100", api_base=twilio_url, timeout=10)
    settings = Settings(database_url=db_url, terminal_id=name, site={"timezone": "UTC"})
    with db.read() as s:  # connect before the start line
        s.connection()
    print("ready", flush=True)
    sys.stdin.readline()
    report = run_dunning(db, gateway, sms, settings, today=today, terminal=name)
    for o in report.outcomes:
        print(f"{o.invoice_id}|{o.step}|{o.status}")
    db.dispose()


if __name__ == "__main__":
    main()
