"""The first payment at the lane is card present (issue 12 item 9).

With a Stripe Terminal reader the sale's first period is not charged off-session on a card saved a
moment earlier: it is a `card_present` PaymentIntent with `setup_future_usage=off_session`, collected
on the reader (`process_payment_intent`) while the customer stands there. Stripe's docs:

    "A successful card_present payment returns a reusable card PaymentMethod in the generated_card
    attribute." ... "If the PaymentIntent has an associated Customer, the generated_card
    automatically attaches to that Customer." (docs.stripe.com/terminal/features/saving-cards/
    save-after-payment)

so the payment gets the card-present liability shift, and its `generated_card` pays the renewals.

One outbox operation does it (`card_present.charge`, registered by billing from
CARD_PRESENT_OPERATIONS), like every gateway side effect:
  execute  create the PaymentIntent with the row's idempotency key (metadata: order key), hand it to
           the reader, wait for the reader's action, read the PaymentIntent back; make the generated
           card the customer's invoice default; return payment id, reusable card id, brand, last 4.
  recover  (key may have expired) find the paid PaymentIntent by the order key.
  apply    order.gateway_payment_id, and the PaymentMethod row of the reusable card (the default).
A payment the reader did not complete is cancelled before the row fails, so it can never be paid
later, and a failed row therefore always means "nothing was charged": the next attempt uses a new
key (`enqueue_charge`). A network error leaves the row pending (transient): the PaymentIntent may
have been paid, and a replay reads it back by the same key. The reader's part of this
(`ReaderPaymentFlow`) is shared with the single wash's one-off payment (services/wash_payment.py).

The reader is the lane's: the caller that runs billing while the customer is at the reader says so
with `reader_attended(reader)` (or `await pay_at_reader(reader, fn, ...)` from the UI). A replay
with nobody at the reader (the timer, `payments replay`) never lights the reader up: it records a
payment that was paid, and otherwise cancels it and fails the row ("take the payment again").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import CardPresentPayment, PaymentGateway
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.outbox import NOT_RUN, Operation, enqueue, existing, make_key, payload_of
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.sales_tax import tax_metadata
from db.models import Customer, Outbox, OutboxStatus, PaymentMethod, SalesOrder, utcnow
from hardware.card_reader.base import CardReaderError

T = TypeVar("T")
log = logging.getLogger(__name__)

CARD_PRESENT_CHARGE = "card_present.charge"

# Decline codes that mean "verify the cardholder": on a reader, the PIN.
PIN_CODES = frozenset({"authentication_required", "offline_pin_required", "online_or_offline_pin_required"})
PIN_MESSAGE = ("The card needs the customer's PIN on the reader: ask them to insert the card and enter "
               "the PIN, then take the payment again. Nothing was charged.")
NOT_REUSABLE = ("This card cannot be kept for the renewals (a phone wallet?): the payment was refunded. "
                "Ask for the physical card and take the payment again.")
NOT_ATTENDED = ("The card was not taken on the reader (nobody was at the reader): nothing was charged. "
                "Take the payment again at the lane.")


# --- the reader at hand -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attended:
    reader: Any  # hardware.card_reader.base.CardReader
    loop: asyncio.AbstractEventLoop | None
    moto: bool | None = None  # None: as the attendant chose for the order (`mark_card_present(moto=...)`)

    def wants_moto(self, order_key: str) -> bool:
        if self.moto is not None:
            return self.moto
        with _MOTO_LOCK:
            return order_key in _MOTO_ORDERS

    def run(self, call: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run a reader coroutine from this worker thread: on the app's loop when it has one (so the
        UI's Cancel reaches the same reader action), else on a loop of its own."""
        if self.loop is not None and self.loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self.loop:
                raise RuntimeError("Card-present billing waits for the reader: run it in a worker thread.")
            return asyncio.run_coroutine_threadsafe(call(self.reader), self.loop).result()
        return asyncio.run(call(self.reader))


# Orders whose card the attendant keys on the reader (MOTO) instead of the customer presenting it: a
# choice made at this lane for the payment about to be taken here, so it lives in this process
# (by order key; forgotten once the payment is recorded).
_MOTO_ORDERS: set[str] = set()
_MOTO_LOCK = threading.Lock()

_ATTENDED: contextvars.ContextVar[_Attended | None] = contextvars.ContextVar("clarity_reader_attended",
                                                                              default=None)


@contextlib.contextmanager
def reader_attended(reader: Any, *, moto: bool | None = None,
                    loop: asyncio.AbstractEventLoop | None = None) -> Iterator[None]:
    """The customer is at `reader`: card-present rows run in this context (this thread, and threads
    started with `asyncio.to_thread` from it) collect their payment on it. `moto`: the attendant keys
    the card on the reader instead (None: as chosen for the order with `mark_card_present`)."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    token = _ATTENDED.set(_Attended(reader, loop, moto))
    try:
        yield
    finally:
        _ATTENDED.reset(token)


async def pay_at_reader(reader: Any, fn: Callable[..., T], *args: Any, moto: bool | None = None, **kw: Any) -> T:
    """From the UI's event loop: run `fn` (e.g. `SaleService.pay`) in a worker thread with the
    customer at `reader`; the reader's coroutines run on this loop, so `reader.cancel()` works."""
    with reader_attended(reader, moto=moto):
        return await asyncio.to_thread(fn, *args, **kw)


# --- what the lane offers ----------------------------------------------------------------------------


def takes_first_payment_on_reader(settings: Any, gateway: PaymentGateway, reader: Any) -> bool:
    """Stripe with a Stripe Terminal reader: the first payment is card present (taken after Agree)."""
    return (gateway.name == "stripe" and bool(settings.payments.stripe.card_present_first_payment)
            and getattr(reader, "driver_name", "") == "stripe_terminal"
            and bool(getattr(reader, "supports_payment_intents", False)))


def keyed_entry_mode(settings: Any, gateway: PaymentGateway, reader: Any) -> str:
    """How a card is keyed when it cannot be read (README "PCI scope"):
    "local"       the simulated gateway checks it here (Luhn, expiry);
    "reader_moto" the attendant keys it on the Stripe reader (MOTO, when the account has it);
    "hosted_page" the customer gets a Stripe-hosted page by text message;
    "raw"         the number goes from this process to Stripe (raw card data access only)."""
    if gateway.name != "stripe":
        return "local"
    cfg = settings.payments.stripe
    if cfg.keyed_entry == "raw" and cfg.raw_card_data_access and gateway.keyed_entry_allowed:
        return "raw"
    moto = bool(cfg.moto_enabled) and bool(getattr(reader, "supports_moto", False))
    if cfg.keyed_entry in ("auto", "reader_moto", "raw") and moto:
        return "reader_moto"
    return "hosted_page"


def mark_card_present(db: Any, order_id: int, actor: Actor, *, on: bool = True, moto: bool = False) -> None:
    """The attendant chose "card on the reader at pay time": no card is saved first. `moto`: they will
    key it on the reader (the account's MOTO) rather than the customer presenting it. A sale step:
    the actor needs sale.sell."""
    require(actor, Permission.SELL)
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        if order is None:
            raise E.GatewayRejected(f"Order {order_id} does not exist.")
        with _MOTO_LOCK:
            if on and moto:
                _MOTO_ORDERS.add(order.idempotency_key)
            else:
                _MOTO_ORDERS.discard(order.idempotency_key)
        if order.customer_id is None:
            raise E.GatewayRejected("Choose the customer before taking the card.")
        before = audit.snapshot(order, ["card_present", "payment_method_id"])
        order.card_present = on
        if on:
            order.payment_method_id = None
        order.updated_at = utcnow()
        s.add(order)
        audit.record(s, actor, "order.card_present", "sales_order", order.id, before=before,
                     after={**(audit.snapshot(order, ["card_present", "payment_method_id"]) or {}),
                            "moto": bool(on and moto)})


def enqueue_charge(s: Session, order: SalesOrder, *, currency: str = "usd") -> Outbox:
    """The card-present row of `order` (in the caller's transaction), for BillingService._start.

    A row that is pending or done is returned as it is (the same key: never a second payment). After
    a failed attempt (declined, cancelled: nothing was charged) the next one gets a new key."""
    if order.due_today_cents <= 0:
        raise E.GatewayRejected("Nothing is due today, so the card cannot be taken as a payment: read it on the "
                                "reader to save it instead.")
    rows = s.exec(select(Outbox).where(Outbox.order_id == order.id, Outbox.operation == CARD_PRESENT_CHARGE)
                  .order_by(col(Outbox.id))).all()
    failed = sum(1 for r in rows if r.status == OutboxStatus.FAILED and r.last_error != NOT_RUN)
    return enqueue(s, order_id=order.id, operation=CARD_PRESENT_CHARGE,
                   payload={"amount_cents": order.due_today_cents, "currency": currency, "attempt": failed + 1,
                            "tax_cents": order.tax_cents},
                   idempotency_key=make_key(order.idempotency_key, "card_present", f"attempt-{failed + 1}"))


# --- the outbox operation ------------------------------------------------------------------------------


def reader_failure(exc: CardReaderError, decline_code: str | None, nothing_done: str = "nothing was charged",
                   pin_message: str = PIN_MESSAGE) -> E.PaymentError:
    """The attendant's words for a reader that did not finish (the card-present payment and card save)."""
    if exc.code == "authentication_required" or decline_code in PIN_CODES:
        return E.CardDeclined(pin_message, decline_code="authentication_required")
    if decline_code:
        return E.declined(decline_code)
    if exc.code in ("declined", "insufficient_funds", "expired_card"):
        return E.declined({"declined": "generic_decline"}.get(exc.code, exc.code))
    if exc.code == "cancelled":
        return E.PaymentError(f"Cancelled on the reader: {nothing_done}.", code="cancelled")
    return E.PaymentError(f"{exc} {nothing_done[0].upper()}{nothing_done[1:]}.", code=f"reader_{exc.code}")


class ReaderPaymentFlow:
    """The reader's part of a card-present payment, shared by the sale's first period (the card is kept
    for the renewals) and the single wash (`save_card = False`: a one-off payment, maybe for nobody)."""

    save_card = True

    def collect(self, gateway: PaymentGateway, entry: Outbox, *, customer_id: str | None, order_id: int,
                order_key: str) -> CardPresentPayment:
        """The row's payment, paid: created with the row's key, collected on the attended reader, read
        back. An unpaid one is cancelled and the row fails (`_give_up`); network errors propagate."""
        key, p = entry.idempotency_key, payload_of(entry)
        attended = _ATTENDED.get()
        moto = bool(attended and attended.wants_moto(order_key))
        if int(p.get("attempt") or 1) > 1:
            # An earlier attempt failed after its payment may have gone through (its card could not be
            # made the default, say): a paid payment for this order is recorded, never taken again.
            earlier = gateway.find_card_present_payment(customer_id, order_key, save_card=self.save_card)
            if earlier is not None:
                return earlier
        pi = gateway.create_card_present_payment(
            customer_id, int(p["amount_cents"]), currency=p.get("currency", "usd"), moto=moto,
            save_card=self.save_card, idempotency_key=key,
            metadata={"clarity_order": str(order_id), "order_key": order_key, **tax_metadata(p)})
        if entry.attempts > 1 and not pi.succeeded:
            # A replayed create answers with the stored (first) response: read the payment as it is now.
            pi = gateway.card_present_payment(pi.payment_id, idempotency_key=f"{key}:read")
        if pi.status == "canceled":
            raise E.PaymentError("The payment on the reader was cancelled: nothing was charged. Take it again.",
                                 code="cancelled")
        if pi.succeeded:
            return pi
        if attended is None:
            return self._give_up(gateway, pi, key, None)
        try:
            read = attended.run(lambda reader: reader.process_payment_intent(pi.payment_id, moto=moto,
                                                                             save_card=self.save_card))
        except CardReaderError as exc:
            return self._give_up(gateway, pi, key, exc)
        pi = gateway.card_present_payment(pi.payment_id, presented=read.card, idempotency_key=f"{key}:reader")
        return pi if pi.succeeded else self._give_up(gateway, pi, key, CardReaderError("declined"))

    def _give_up(self, gateway: PaymentGateway, pi: CardPresentPayment, key: str,
                 exc: CardReaderError | None) -> CardPresentPayment:
        """Cancel the unpaid payment so it can never be paid later, then fail with the reason. A payment
        that was paid meanwhile (the reader finished after all) is returned instead. Network errors
        propagate (transient: the row stays pending and a replay reads the payment back)."""
        decline = pi.decline_code
        if exc is not None and decline is None and exc.code in ("declined", "insufficient_funds", "expired_card",
                                                                "authentication_required"):
            now = gateway.card_present_payment(pi.payment_id, idempotency_key=f"{key}:read")
            if now.succeeded:
                return now
            decline = now.decline_code
        current = gateway.cancel_card_present_payment(pi.payment_id, idempotency_key=f"{key}:cancel")
        if current.succeeded:
            return current
        if exc is None:
            raise E.PaymentError(NOT_ATTENDED, code="reader_not_attended")
        raise reader_failure(exc, decline or current.decline_code)


def forget_moto(order_key: str) -> None:
    """The payment is recorded: the attendant's MOTO choice for the order is done with."""
    with _MOTO_LOCK:
        _MOTO_ORDERS.discard(order_key)


class CardPresentCharge(ReaderPaymentFlow):
    """`card_present.charge`: the sale's first period, paid on the reader; its card pays the renewals."""

    def _context(self, db: Any, entry: Outbox) -> tuple[int, str, str]:
        """(order id, order key, gateway customer id)."""
        with db.read() as s:
            order = s.get(SalesOrder, entry.order_id)
            if order is None:
                raise E.GatewayRejected(f"Order {entry.order_id} does not exist.")
            cus = s.get(Customer, order.customer_id).gateway_customer_id if order.customer_id else None
            order_id, order_key = order.id, order.idempotency_key
        if not cus:
            raise E.GatewayRejected("The customer is not at the payment gateway yet: sync the customer first.")
        return order_id, order_key, cus

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        order_id, order_key, cus = self._context(db, entry)
        pi = self.collect(gateway, entry, customer_id=cus, order_id=order_id, order_key=order_key)
        return self._settle(gateway, cus, pi, entry.idempotency_key)

    def _settle(self, gateway: PaymentGateway, cus: str, pi: CardPresentPayment, key: str) -> dict[str, Any]:
        if not pi.payment_method_id:
            # "In some cases, such as when using certain cards stored in digital wallets, a successful
            # payment doesn't create a generated_card. ... Refund the in-person payment, indicate that
            # the transaction failed, and instruct the cardholder to use a different card." (save-after-payment)
            if pi.refunded_cents < pi.amount_cents:
                gateway.refund(pi.payment_id, idempotency_key=f"{key}:refund")
            raise E.CardDeclined(NOT_REUSABLE, decline_code="card_not_reusable")
        # Renewals are invoices: they charge the customer's invoice default.
        try:
            gateway.set_default_card(cus, pi.payment_method_id, idempotency_key=f"{key}:default")
        except E.PaymentError as exc:
            if exc.transient:
                raise  # the row stays pending; a replay reads the payment back and tries again
            # The money moved: record the payment whatever happens (a technician sets the default).
            log.error("card-present payment %s recorded, but its card is not the customer's default: %s",
                      pi.payment_id, exc)
        return {"payment_id": pi.payment_id, "charge_id": pi.charge_id, "amount_cents": pi.amount_cents,
                "payment_method_id": pi.payment_method_id, "brand": pi.brand, "last4": (pi.last4 or "")[-4:],
                "exp_month": pi.exp_month, "exp_year": pi.exp_year, "gateway": gateway.name}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        _, order_key, cus = self._context(db, entry)
        found = gateway.find_card_present_payment(cus, order_key)
        return None if found is None else self._settle(gateway, cus, found, entry.idempotency_key)

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order = existing(s, SalesOrder, entry.order_id)
        assert order.customer_id is not None  # _context refused an order with no customer
        order.gateway_payment_id = result["payment_id"]
        forget_moto(order.idempotency_key)
        pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                                PaymentMethod.gateway_token == result["payment_method_id"])).first()
        if pm is None:
            pm = PaymentMethod(customer_id=order.customer_id, gateway=result.get("gateway") or "stripe",
                               gateway_token=result["payment_method_id"], brand=result.get("brand") or "unknown",
                               last4=result.get("last4") or "", exp_month=int(result.get("exp_month") or 0),
                               exp_year=int(result.get("exp_year") or 0))
        for other in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                                        PaymentMethod.is_default)).all():
            if other is not pm:
                other.is_default = False
                s.add(other)
        pm.is_default, pm.detached_at = True, None
        s.add(pm)
        s.flush()
        order.payment_method_id = pm.id
        order.updated_at = utcnow()
        s.add(order)


CARD_PRESENT_OPERATIONS: dict[str, Operation] = {CARD_PRESENT_CHARGE: CardPresentCharge()}
