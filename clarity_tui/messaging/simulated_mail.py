"""A simulated mailer for simulator mode: emails are kept in memory (and logged), never sent.

Like SimulatedSms for text messages: the lane and the record cannot tell it from the SMTP mailer (same `send`),
so "Reset mail" works in the demo without a mail server. One mailbox per process (`simulated_mailbox()`), so
every screen's service sends into the same place and a technician (or a test) can read what went out.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentMail:
    to: str
    subject: str
    body: str
    sent_at: dt.datetime  # UTC


class SimulatedMailer:
    name = "simulated"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[SentMail] = []

    def send(self, to: str, subject: str, body: str) -> None:
        mail = SentMail(to, subject, body, dt.datetime.now(dt.UTC))
        with self._lock:
            self._sent.append(mail)
        log.info("simulated email to %s: %s", to, subject)

    @property
    def sent(self) -> list[SentMail]:
        with self._lock:
            return list(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()


_MAILBOX = SimulatedMailer()


def simulated_mailbox() -> SimulatedMailer:
    """This process's simulated mailer."""
    return _MAILBOX
