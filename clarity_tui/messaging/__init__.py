"""Messaging: SMS to customers (ask for an email at the lane), behind one interface.

    provider = make_sms_provider(settings)      # "simulated" or "twilio"
    sent = provider.send("+15125550143", "Reply with your email ...")
    replies = provider.replies_since(sent)      # poll: no public webhook needed

Headless (no Textual); the REST provider uses only the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarity_tui.messaging.base import (
    InboundSms,
    MessagingError,
    MessagingUnavailable,
    SentSms,
    SmsProvider,
)

if TYPE_CHECKING:
    from clarity_tui.config import Settings


def make_sms_provider(settings: Settings) -> SmsProvider:
    """The provider named by settings.messaging.provider."""
    cfg = settings.messaging
    if cfg.provider == "twilio":
        from clarity_tui.messaging.twilio import TwilioSms

        return TwilioSms(cfg.twilio.account_sid, cfg.twilio.auth_token, cfg.twilio.from_number,
                         api_base=cfg.twilio.api_base, timeout=cfg.twilio.timeout_seconds)
    from clarity_tui.messaging.simulated import SimulatedSms, email_responder

    responder = email_responder if cfg.simulated_reply == "auto" else None
    return SimulatedSms(reply_after=cfg.simulated_reply_after_seconds, responder=responder)


__all__ = ["InboundSms", "MessagingError", "MessagingUnavailable", "SentSms", "SmsProvider", "make_sms_provider"]
