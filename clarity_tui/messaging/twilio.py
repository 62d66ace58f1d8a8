"""A Twilio-compatible REST provider: send with the Messages API, poll it for the reply.

POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json   (To, From, Body; HTTP basic auth)
GET  {api_base}/2010-04-01/Accounts/{sid}/Messages.json?From=<customer>&To=<our number>&DateSent>=<day>

Polling means the lane needs no public webhook. Any server speaking this shape works
(Twilio itself, or a compatible gateway). Standard library only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

from clarity_tui.messaging.base import InboundSms, MessagingError, MessagingUnavailable, SentSms, SmsProvider


class TwilioSms(SmsProvider):
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *,
                 api_base: str = "https://api.twilio.com", timeout: float = 10.0) -> None:
        if not (account_sid and auth_token and from_number):
            raise MessagingError("SMS is not set up: set messaging.twilio.account_sid, auth_token and from_number "
                                 "(or use the simulated provider).")
        self.account_sid = account_sid
        self.from_number = from_number
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()

    @property
    def _messages_url(self) -> str:
        return f"{self.api_base}/2010-04-01/Accounts/{urllib.parse.quote(self.account_sid)}/Messages.json"

    def _call(self, method: str, url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": self._auth, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            detail = body.get("message") or exc.reason
            if exc.code in (401, 403):
                raise MessagingError(f"The SMS service refused our credentials ({detail}): check "
                                     "messaging.twilio settings.") from None
            if exc.code >= 500:
                raise MessagingUnavailable(f"The SMS service is having problems ({exc.code}): type the email "
                                           "in instead.") from None
            raise MessagingError(f"The SMS service refused the message: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MessagingUnavailable(f"Cannot reach the SMS service ({reason}): type the email in "
                                       "instead.") from None

    def send(self, to: str, body: str) -> SentSms:
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        data = self._call("POST", self._messages_url, {"To": to, "From": self.from_number, "Body": body})
        # Replies are matched by time: take the earlier of our clock and the server's (whole seconds).
        created = _parse_time(data.get("date_created")) or before
        return SentSms(str(data.get("sid", "")), to, body, min(before, created))

    def replies(self, from_: str, since: dt.datetime) -> list[InboundSms]:
        query = urllib.parse.urlencode({"From": from_, "To": self.from_number,
                                        "DateSent>": since.astimezone(dt.UTC).date().isoformat(), "PageSize": "50"})
        data = self._call("GET", f"{self._messages_url}?{query}")
        out = []
        for m in data.get("messages", []):
            at = _parse_time(m.get("date_sent") or m.get("date_created"))
            if m.get("direction", "inbound") != "inbound" or at is None or at < since.replace(microsecond=0):
                continue
            if m.get("from") != from_:
                continue
            out.append(InboundSms(str(m.get("sid", "")), from_, str(m.get("body", "")), at))
        return sorted(out, key=lambda m: m.received_at)


def _parse_time(value: Any) -> dt.datetime | None:
    """Twilio dates are RFC 2822 ('Sun, 22 Nov 2026 14:30:00 +0000')."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value)).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None
