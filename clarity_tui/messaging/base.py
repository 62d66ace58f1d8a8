"""The SMS provider interface: send a text, then poll for the customer's replies."""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass

from clarity_tui.errors import UserFacingError


class MessagingError(UserFacingError):
    """The provider refused the message; str() says why and what to do."""


class MessagingUnavailable(MessagingError):
    """The provider cannot be reached (network, outage): type the information in instead."""


@dataclass(frozen=True)
class SentSms:
    id: str
    to: str  # E.164
    body: str
    sent_at: dt.datetime  # UTC


@dataclass(frozen=True)
class InboundSms:
    id: str
    from_: str  # E.164, the customer
    body: str
    received_at: dt.datetime  # UTC


class SmsProvider(abc.ABC):
    name: str = "sms"

    @abc.abstractmethod
    def send(self, to: str, body: str) -> SentSms:
        """Send a text to an E.164 number. Raises MessagingError / MessagingUnavailable."""

    @abc.abstractmethod
    def replies(self, from_: str, since: dt.datetime) -> list[InboundSms]:
        """Texts received from `from_` at or after `since`, oldest first (a poll; never blocks long)."""

    def replies_since(self, sent: SentSms) -> list[InboundSms]:
        return self.replies(sent.to, sent.sent_at)
