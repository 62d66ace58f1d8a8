"""A single wash paid card-present on the lane's reader, through the outbox (issue 18 item 2).

Like the membership's first payment (`card_present.charge`, services/card_present.py) but one-off: a
card_present PaymentIntent with no setup_future_usage, so no card is kept, for the order's customer only
when that customer is already at the gateway (most single washes have nobody). One outbox row
(`card_present.wash`) does it:
  execute  create the payment with the row's key (metadata: order id and key), collect it on the
           attended reader, read it back; an unpaid one is cancelled before the row fails, so a failed
           row always means "nothing was charged" and the next attempt gets a new key.
  recover  (the key may have expired, or a 5xx was cached under it) find the paid payment by order key.
  apply    order.gateway_payment_id, then `on_wash_paid`: the order completes and its car waits for the
           tunnel, in the transaction that marks the row done (never one without the other).
Brand and last 4 stay in the row's result (for the receipt); the card number never reaches this process.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import CardPresentPayment, PaymentGateway
from clarity_tui.services.card_present import ReaderPaymentFlow, forget_moto
from clarity_tui.services.outbox import NOT_RUN, Operation, enqueue, existing, make_key, payload_of
from clarity_tui.services.wash_ledger import on_wash_paid
from db.models import Customer, OrderKind, OrderState, Outbox, OutboxStatus, SalesOrder, utcnow

WASH_CHARGE = "card_present.wash"

NOT_A_WASH = "Order {id} is not a single wash: take its payment from the sale."
NOTHING_DUE = "Nothing is due for this wash: choose a package or an extra before taking the card."
ALREADY_PAID = "This wash is paid already: send the car to the tunnel."
NOT_PAYABLE = "This wash order is {state}: open a new one for the car."
CHANGED_WHILE_UNSURE = ("The wash changed while its last payment is still unsettled (the network dropped): cancel "
                        "the order (a payment that went through is refunded) and start the wash again.")


def enqueue_wash_charge(s: Session, order: SalesOrder, *, currency: str = "usd") -> Outbox:
    """The wash order's card-present row (in the caller's transaction), amount `order.due_today_cents`.

    A row that is pending or done is returned as it is (the same key: never a second payment). After a
    failed attempt (declined, cancelled, nobody at the reader: nothing was charged) the next one gets a
    new key. The gateway customer is fixed here, so a replay sends exactly the same request."""
    if order.kind != OrderKind.WASH:
        raise E.GatewayRejected(NOT_A_WASH.format(id=order.id))
    rows = s.exec(select(Outbox).where(Outbox.order_id == order.id, Outbox.operation == WASH_CHARGE)
                  .order_by(col(Outbox.id))).all()
    live = [r for r in rows if r.status in (OutboxStatus.PENDING, OutboxStatus.DONE)]
    if live:
        if live[-1].status == OutboxStatus.PENDING and payload_of(live[-1]).get("amount_cents") != order.due_today_cents:
            raise E.GatewayRejected(CHANGED_WHILE_UNSURE)
        return live[-1]
    if order.state == OrderState.COMPLETED:
        raise E.GatewayRejected(ALREADY_PAID)
    if order.state == OrderState.CANCELLED:
        raise E.GatewayRejected(NOT_PAYABLE.format(state="cancelled"))
    if order.due_today_cents <= 0:
        raise E.GatewayRejected(NOTHING_DUE)
    customer = s.get(Customer, order.customer_id) if order.customer_id else None
    failed = sum(1 for r in rows if r.status == OutboxStatus.FAILED and r.last_error != NOT_RUN)
    return enqueue(s, order_id=order.id, operation=WASH_CHARGE,
                   payload={"amount_cents": order.due_today_cents, "currency": currency, "attempt": failed + 1,
                            "tax_cents": order.tax_cents,
                            "gateway_customer": customer.gateway_customer_id if customer else None},
                   idempotency_key=make_key(order.idempotency_key, "wash", f"attempt-{failed + 1}"))


class WashCharge(ReaderPaymentFlow):
    """`card_present.wash`: a single wash, paid on the reader; the card is not kept."""

    save_card = False

    @staticmethod
    def _context(db: Any, entry: Outbox) -> tuple[int, str, str | None]:
        """(order id, order key, gateway customer id or None)."""
        with db.read() as s:
            order = existing(s, SalesOrder, entry.order_id)
            assert order.id is not None  # a stored row
            return order.id, order.idempotency_key, payload_of(entry).get("gateway_customer") or None

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        order_id, order_key, cus = self._context(db, entry)
        return self._result(gateway, self.collect(gateway, entry, customer_id=cus, order_id=order_id,
                                                  order_key=order_key))

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        _, order_key, cus = self._context(db, entry)
        found = gateway.find_card_present_payment(cus, order_key, save_card=False)
        return None if found is None else self._result(gateway, found)

    @staticmethod
    def _result(gateway: PaymentGateway, pi: CardPresentPayment) -> dict[str, Any]:
        return {"payment_id": pi.payment_id, "charge_id": pi.charge_id, "amount_cents": pi.amount_cents,
                "brand": pi.brand, "last4": (pi.last4 or "")[-4:], "gateway": gateway.name}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order = existing(s, SalesOrder, entry.order_id)
        order.gateway_payment_id = result["payment_id"]
        order.last_error, order.updated_at = None, utcnow()
        s.add(order)
        forget_moto(order.idempotency_key)
        on_wash_paid(s, order)


def wash_card(s: Session, order_id: int) -> tuple[str, str] | None:
    """(brand, last 4) of the card that paid the wash, for its receipt; None while it is unpaid."""
    row = s.exec(select(Outbox).where(Outbox.order_id == order_id, Outbox.operation == WASH_CHARGE,
                                      Outbox.status == OutboxStatus.DONE)).first()
    if row is None or not row.result:
        return None
    return str(row.result.get("brand") or "card"), str(row.result.get("last4") or "")


WASH_OPERATIONS: dict[str, Operation] = {WASH_CHARGE: WashCharge()}
