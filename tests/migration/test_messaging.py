"""SMS providers: the Twilio-compatible REST provider against a real local HTTP server, and the
simulated one; the migration's email-by-SMS round trip over real HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from clarity_tui.config import Settings
from clarity_tui.messaging import MessagingError, MessagingUnavailable, make_sms_provider
from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.messaging.twilio import TwilioSms
from tests.helpers.lanes import Legacy
from tests.helpers.migration import service
from tests.helpers.twilio_server import TwilioStub


@pytest.fixture
def twilio():  # noqa: ANN201
    with TwilioStub() as stub:
        yield stub


def provider(stub: TwilioStub, **kw) -> TwilioSms:  # noqa: ANN003
    return TwilioSms(stub.account_sid, stub.auth_token, stub.number, api_base=stub.url, **kw)


def test_send_and_poll_for_the_reply(twilio: TwilioStub) -> None:
    sms = provider(twilio)
    sent = sms.send("+15125550143", "Reply with your email")
    assert sent.id.startswith("SM") and sent.to == "+15125550143"
    method, path, form = twilio.requests[0]
    assert (method, path) == ("POST", "/2010-04-01/Accounts/AC_test/Messages.json")
    assert form == {"To": ["+15125550143"], "From": ["+15125550100"], "Body": ["Reply with your email"]}
    assert sms.replies_since(sent) == []
    twilio.inbound("+15125550199", "someone else")  # another customer's text is not ours
    twilio.inbound("+15125550143", "old reply", at=sent.sent_at - dt.timedelta(minutes=5))
    twilio.inbound("+15125550143", "jane@example.com")
    replies = sms.replies_since(sent)
    assert [r.body for r in replies] == ["jane@example.com"]
    get = [r for r in twilio.requests if r[0] == "GET"][-1]
    assert get[2]["From"] == ["+15125550143"] and get[2]["To"] == ["+15125550100"] and "DateSent>" in get[2]


def test_errors_are_clear(twilio: TwilioStub) -> None:
    with pytest.raises(MessagingError, match="not a valid phone number"):
        provider(twilio).send("5125550143", "hi")
    bad = TwilioSms(twilio.account_sid, "wrong", twilio.number, api_base=twilio.url)
    with pytest.raises(MessagingError, match="credentials"):
        bad.send("+15125550143", "hi")
    twilio.fail_next = (503, {"message": "down"})
    with pytest.raises(MessagingUnavailable, match="having problems"):
        provider(twilio).send("+15125550143", "hi")
    with TwilioStub() as gone:
        url = gone.url
    with pytest.raises(MessagingUnavailable, match="Cannot reach"):
        TwilioSms("AC_test", "secret", "+15125550100", api_base=url, timeout=2).send("+15125550143", "hi")
    with pytest.raises(MessagingError, match="not set up"):
        TwilioSms("", "", "")


def test_settings_pick_the_provider(twilio: TwilioStub) -> None:
    s = Settings(messaging={"provider": "twilio", "twilio": {"account_sid": "AC_test", "auth_token": "secret",
                                                             "from_number": "+15125550100", "api_base": twilio.url}})
    assert isinstance(make_sms_provider(s), TwilioSms)
    assert isinstance(make_sms_provider(Settings()), SimulatedSms)
    silent = make_sms_provider(Settings(messaging={"simulated_reply": "never"}))
    sent = silent.send("+15125550143", "hi")
    assert silent.replies_since(sent) == []


def test_simulated_reply_arrives_after_the_delay() -> None:
    now = [dt.datetime(2026, 11, 22, 14, 30, tzinfo=dt.UTC)]
    sms = SimulatedSms(reply_after=5, clock=lambda: now[0])
    sent = sms.send("+15125550143", "hi")
    assert sms.replies_since(sent) == []
    now[0] += dt.timedelta(seconds=5)
    assert [r.body for r in sms.replies_since(sent)] == ["Hi! It's member0143@example.com"]


def test_migration_email_by_sms_over_real_http(legacy: Legacy, twilio: TwilioStub) -> None:
    svc = service(legacy.db, sms=provider(twilio))
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    sent = svc.request_email(view.id, legacy.jane_phone)
    assert "Reply to this text with your email" in twilio.messages[0]["body"]
    assert svc.check_reply(sent).text is None
    twilio.inbound(legacy.jane_phone, "Sure: Jane.Doe@Example.com thanks!")
    reply = svc.check_reply(sent)
    assert reply.email == "Jane.Doe@example.com"
