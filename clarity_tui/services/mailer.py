"""Customer email over SMTP (the standard library's smtplib), through the configured server.

In simulator mode (settings.simulate) email goes to the simulated mailer instead (clarity_tui.messaging
.simulated_mail), as text messages go to the simulated SMS provider: `make_mailer(settings)` picks.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from clarity_tui.errors import UserFacingError
from clarity_tui.config import SmtpConfig


if TYPE_CHECKING:
    from clarity_tui.messaging.simulated_mail import SimulatedMailer


class MailSender(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


def make_mailer(settings: Any) -> Mailer | SimulatedMailer:
    """The SMTP mailer; in simulator mode, the process's simulated mailer (nothing leaves the machine)."""
    if getattr(settings, "simulate", False):
        from clarity_tui.messaging.simulated_mail import simulated_mailbox

        return simulated_mailbox()
    return Mailer(settings.smtp)


class MailError(UserFacingError, RuntimeError):
    """str() says what failed and what to check."""


class Mailer:
    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, to: str, subject: str, body: str) -> None:
        cfg = self.config
        msg = EmailMessage()
        msg["From"] = cfg.from_address
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        where = f"{cfg.host}:{cfg.port}"
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(f"The mail server {where} refused the login: check smtp.username/smtp.password.") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"The mail server {where} refused the address {to}: check the customer's email.") from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise MailError(
                f"Could not send the email through {where} ({exc.__class__.__name__}: {exc}): "
                "check the smtp settings and that the mail server is reachable, then try again."
            ) from exc
