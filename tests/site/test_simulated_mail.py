"""Issue 14, item 5: in simulator mode email goes to the simulated mailer, as text messages do, so "Reset mail"
on the record's Web login tab works in the demo instead of failing on localhost:25."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlmodel import select

from clarity_tui.config import SmtpConfig
from clarity_tui.messaging.simulated_mail import simulated_mailbox
from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import CustomerService
from clarity_tui.services.mailer import Mailer, make_mailer
from db.models import AuditLog, Customer
from tests.helpers.ui import make_app, wait_until

ATTENDANT = Actor(name="Alex Attendant", role="attendant", terminal="lane-1")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real TCP port standing in for the mail server: a connection to it would be waiting in accept()."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_make_mailer_is_simulated_only_in_simulator_mode(settings, listener) -> None:  # noqa: ANN001
    from clarity_tui.cli_hardware import check_mail

    assert isinstance(make_mailer(settings), Mailer)
    host, port = listener.getsockname()
    sim = settings.model_copy(update={"simulate": True, "smtp": SmtpConfig(host=host, port=port, timeout=2)})
    assert make_mailer(sim) is simulated_mailbox()
    check = check_mail(sim)  # doctor says so, and does not dial the server either
    assert check.ok and "simulated" in check.detail
    assert _connections(listener) == 0


async def test_reset_mail_in_simulator_mode_goes_to_the_simulated_mailer(settings, demo_db, listener) -> None:  # noqa: ANN001
    host, port = listener.getsockname()
    sim = settings.model_copy(update={"simulate": True, "smtp": SmtpConfig(host=host, port=port, timeout=2)})
    with demo_db.read() as s:
        customer = s.exec(select(Customer).where(Customer.email.is_not(None)).order_by(Customer.id)).first()  # type: ignore[union-attr]
        cid, email = customer.id, customer.email
    CustomerService(demo_db).create_web_login(ATTENDANT, cid, "reset.me")
    mailbox = simulated_mailbox()
    mailbox.clear()
    app = make_app(sim, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(CustomerRecordScreen(cid))
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None,
                         "the record")
        app.screen.query_one("TabbedContent").active = "tab-web"
        await wait_until(pilot, lambda: app.screen.query_one("#web-reset").display and
                         not app.screen.query_one("#web-reset").disabled, "the Reset mail button")
        app.screen.query_one("#web-reset").focus()
        await pilot.press("enter")  # the Reset mail button, as a key press reaches it
        await wait_until(pilot, lambda: len(mailbox.sent) == 1 or any(n.severity == "error" for n in app._notifications),
                         "the simulated mailer holds the email")
        assert [str(n.message) for n in app._notifications if n.severity == "error"] == []
        await wait_until(pilot, lambda: any("Password-reset email sent to" in str(n.message)
                                            for n in app._notifications), "the attendant is told it was sent")
        assert not any(n.severity == "error" for n in app._notifications)
    [mail] = mailbox.sent
    assert mail.to == email and "reset-password?token=" in mail.body
    assert _connections(listener) == 0  # no SMTP connection was attempted
    with demo_db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "weblogin.reset_sent")).one()
    mailbox.clear()
