"""The single wash at the lane as a terminal builds it: the demo menu, a car waiting, the wash sale service
with the simulated gateway, text messages and mailbox, and the card reader attended."""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.messaging.simulated_mail import SimulatedMailer
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.card_present import reader_attended
from clarity_tui.services.orders.wash_sale import WashPayResult, WashSaleService
from clarity_tui.services.receipts import ReceiptSender
from clarity_tui.services.sales_tax import TaxSettings
from db.engine import Database
from db.models import AuditLog, OrderLine, Outbox, Receipt, SalesOrder, Wash
from hardware.card_reader.simulated import SimulatedCardReader
from tests.helpers.actors import ATTENDANT
from tests.helpers.clock import TODAY


@dataclass
class Lane:
    """A terminal's wash sale, the messages it sent, and its reader."""

    service: WashSaleService
    sms: SimulatedSms
    mail: SimulatedMailer
    reader: SimulatedCardReader

    def pay(self, order_id: int) -> WashPayResult:
        """Agree on the reader: the customer is at the lane's reader while the payment runs."""
        with reader_attended(self.reader):
            return self.service.pay(order_id)


def wash_lane(db: Database, *, actor: Actor = ATTENDANT, terminal: str = "lane-1-term", reader: Any = None,
              tax: TaxSettings | None = None, sms: SimulatedSms | None = None) -> Lane:
    sms = sms or SimulatedSms(responder=None)
    mail = SimulatedMailer()
    receipts = ReceiptSender(db, sms=sms, mailer=mail, actor=actor, tax=tax)
    service = WashSaleService(db, SimulatedGateway(db), actor, terminal=terminal, today=lambda: TODAY, tax=tax,
                              receipts=receipts)
    return Lane(service, sms, mail, reader or SimulatedCardReader(delay=0))


def lines_of(db: Database, order_id: int) -> list[tuple[str, str, int]]:
    with db.read() as s:
        return [(ln.kind, ln.code, ln.amount_cents) for ln in
                s.exec(select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id)))]


def order_row(db: Database, order_id: int) -> SalesOrder:
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        assert order is not None
        return order


def wash_of_session(db: Database, session_id: int) -> Wash | None:
    with db.read() as s:
        return s.exec(select(Wash).where(Wash.session_id == session_id)).first()


def audit_actions(db: Database, order_id: int) -> list[str]:
    with db.read() as s:
        return list(s.exec(select(AuditLog.action).where(AuditLog.entity == "sales_order",
                                                         AuditLog.entity_id == str(order_id))
                           .order_by(col(AuditLog.id))))


def charge_rows(db: Database, order_id: int) -> list[Outbox]:
    with db.read() as s:
        return list(s.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(col(Outbox.id))))


def receipt_row_of(db: Database, order_id: int) -> Receipt | None:
    with db.read() as s:
        return s.get(Receipt, order_id)


def outbox_operations(db: Database) -> list[str]:
    """Every outbox row's operation, oldest first (the outbox holds gateway calls only)."""
    with db.read() as s:
        return list(s.exec(select(Outbox.operation).order_by(col(Outbox.id))))


def wait_receipt(lane: Lane, order_id: int) -> str:
    """The receipt's status once the receipts' worker has done it (a future, not a sleep)."""
    outcome = lane.service.receipts.send_later(order_id) if lane.service.receipts else None
    assert outcome is not None
    return outcome.result(timeout=60).status


def _racer(url: str, how: str, arg: int, terminal: str, *, start: Callable[[], object]) -> Any:
    """One terminal, once every racer is connected (`start`): "open" the session `arg`'s single wash, or
    "receipt": send the order `arg`'s receipt (with its own text-message provider)."""
    from clarity_tui.services.orders.guards import OrderBusy

    db = Database.from_url(url)
    with db.read() as s:  # connect before the race
        s.exec(select(SalesOrder.id)).first()
    lane = wash_lane(db, actor=Actor(f"attendant {terminal}", ATTENDANT.role, terminal), terminal=terminal)
    start()
    out: Any
    if how == "receipt":
        assert lane.service.receipts is not None
        out = (lane.service.receipts.send(arg).status, len(lane.sms.sent))
    else:
        try:
            out = ("opened", lane.service.open_for_session(arg).order_id)
        except OrderBusy as exc:
            out = ("busy", str(exc))
    db.dispose()
    return out


class _DiesMidSend:
    """A text-message provider whose process is killed as the text goes: the claim is taken, nothing sent."""

    def send(self, to: str, body: str) -> Any:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _crashing_sender(url: str, order_id: int) -> None:
    db = Database.from_url(url)
    ReceiptSender(db, sms=_DiesMidSend(), mailer=None, actor=ATTENDANT).send(order_id)


def crash_mid_send(url: str, order_id: int) -> int:
    """A terminal's process claims the order's receipt and is SIGKILLed mid-send; its exit code."""
    from tests.helpers import forked

    proc = forked.context().Process(target=_crashing_sender, args=(url, order_id))
    proc.start()
    proc.join(timeout=120)
    if proc.exitcode is None:  # it hung instead of dying: stop it, and the test fails on the code
        proc.kill()
        proc.join()
    assert proc.exitcode is not None
    return proc.exitcode


def race(url: str, how: str, arg: int, terminals: list[str]) -> dict[str, Any]:
    """Each terminal in its own process (forked from the warm server) does `how` at once (see _racer)."""
    from tests.helpers import forked

    return dict(zip(terminals, forked.race(_racer, [(url, how, arg, t) for t in terminals]), strict=True))
