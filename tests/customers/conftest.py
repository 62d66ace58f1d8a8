"""Fixtures for the customer search and record tests: tricky customers, an SMTP server (actors and the
customers themselves: tests/helpers/actors.py, tests/helpers/customers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.helpers.customers import Tricky, add_tricky


@pytest.fixture
def tricky(demo_db) -> Tricky:
    return add_tricky(demo_db)


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SmtpSink("127.0.0.1", port)

    class Keep(Message):
        def handle_message(self, message) -> None:
            sink.messages.append(message)

    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


