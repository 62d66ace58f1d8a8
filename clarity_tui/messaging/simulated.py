"""A simulated SMS provider: records what is sent and, in simulator mode, the customer replies.

The reply arrives `reply_after` seconds after the text (by the provider's clock), with the
text a responder returns for it (None: the customer never answers). It goes through the
same send/poll calls as the real provider, so the lane flow cannot tell them apart.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable

from clarity_tui.messaging.base import InboundSms, MessagingError, SentSms, SmsProvider

Responder = Callable[[SentSms], "str | None"]


def email_responder(sent: SentSms) -> str:
    """Simulator mode: the customer texts back an address made from their number."""
    return f"Hi! It's member{sent.to[-4:]}@example.com"


class SimulatedSms(SmsProvider):
    name = "simulated"

    def __init__(self, *, reply_after: float = 4.0, responder: Responder | None = email_responder,
                 clock: Callable[[], dt.datetime] | None = None, fail_with: str | None = None) -> None:
        self.reply_after = reply_after
        self.responder = responder
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.fail_with = fail_with  # a refusal every send raises (tests, diagnostics)
        self.sent: list[SentSms] = []
        self._inbound: list[InboundSms] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, to: str, body: str) -> SentSms:
        if self.fail_with:
            raise MessagingError(self.fail_with)
        with self._lock:
            sent = SentSms(f"SMsim{next(self._ids):06d}", to, body, self.clock())
            self.sent.append(sent)
            reply = self.responder(sent) if self.responder else None
            if reply is not None:
                at = sent.sent_at + dt.timedelta(seconds=self.reply_after)
                self._inbound.append(InboundSms(f"SMsim{next(self._ids):06d}", to, reply, at))
        return sent

    def receive(self, from_: str, body: str, at: dt.datetime | None = None) -> InboundSms:
        """A text from the customer arrives now (tests, the simulator)."""
        with self._lock:
            msg = InboundSms(f"SMsim{next(self._ids):06d}", from_, body, at or self.clock())
            self._inbound.append(msg)
            return msg

    def replies(self, from_: str, since: dt.datetime) -> list[InboundSms]:
        now = self.clock()
        with self._lock:
            return sorted((m for m in self._inbound if m.from_ == from_ and since <= m.received_at <= now),
                          key=lambda m: m.received_at)
