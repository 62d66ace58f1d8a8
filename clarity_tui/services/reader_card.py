"""A card saved on the lane's reader goes through the payments outbox (issue 12 item 1).

With Stripe and a Stripe Terminal reader, a card read to keep on file (the sale's payment step, the
migration's card step, the customer record's "Reader") is a `card_present` SetupIntent the outbox
creates for the customer, which the reader processes. Stripe's docs:

    "When you include a customer in your SetupIntent before confirming, Stripe automatically attaches
    the generated card payment method to the Customer object you provide." (docs.stripe.com/terminal/
    features/saving-cards/save-cards-directly)

so, like the card-present payment (services.card_present), one outbox operation does it
(`card_present.save`, registered by billing from READER_CARD_OPERATIONS):
  execute  create the SetupIntent with the row's idempotency key (metadata: the save key, and the
           order or membership it is for), have the attended reader process it, read it back with
           its generated card; return the card (id, brand, last 4, expiry).
  recover  (key may have expired) find the succeeded SetupIntent by the save key.
  apply    the PaymentMethod row of the generated card (not the default: the caller's flow decides).
           Not for a membership's card: MembershipActions.update_card makes that row itself (it does
           not look for one by token yet, so recording it here would list the card twice).
A SetupIntent the reader did not complete is cancelled before the row fails, so a failed row always
means "no card was saved": the next reading is a new row with a new key. A network error leaves the
row pending (transient): a replay reads the SetupIntent back by the same key and records the card.
Nobody at the reader (the timer, `payments replay`) never lights the reader up: a first attempt
creates nothing, a replay records a card that was saved and cancels one that was not.

The caller is `save_card_on_reader` (the UI: `DeviceActionScreen.card_from_reader`); it returns the
saved card's CardToken, which the sale, migration and customer record then use as they use any card.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from sqlmodel import Session, select

from clarity_tui.payments import errors as E
from clarity_tui.payments.base import CardPresentSetup, PaymentGateway
from clarity_tui.services.card_present import _ATTENDED, reader_attended, reader_failure
from clarity_tui.services.outbox import Operation, enqueue, make_key, payload_of
from db.models import Customer, Outbox, OutboxStatus, PaymentMethod, SalesOrder
from hardware.card_reader.base import CardReaderError, CardToken

CARD_PRESENT_SAVE = "card_present.save"

NOT_ATTENDED = ("The card was not read (nobody was at the reader): no card was saved. "
                "Read it again at the lane.")
NOT_REUSABLE = ("This card cannot be kept on file (a phone wallet?): no card was saved. "
                "Ask for the physical card and read it again.")
PIN_MESSAGE = ("The card needs the customer's PIN on the reader: ask them to insert the card and enter the PIN, "
               "then read it again. No card was saved.")


def saves_card_on_reader(gateway: PaymentGateway, reader: Any) -> bool:
    """Stripe with a Stripe Terminal reader: a card read to keep is saved through the outbox."""
    return (gateway is not None and gateway.name == "stripe"
            and getattr(reader, "driver_name", "") == "stripe_terminal"
            and bool(getattr(reader, "supports_setup_intents", False)))


def enqueue_save(s: Session, customer: Customer, *, order: SalesOrder | None = None,
                 membership_id: int | None = None) -> list[Outbox]:
    """The rows (in the caller's transaction) that save a card read on the reader on `customer`: the
    customer at the gateway first when needed, then `card_present.save`. A chain of rows of no order
    (so a refused reading never holds up the order's own billing).

    A pending save for the same order/membership/customer is returned as it is (the same key: a reading
    the reader already approved is recorded, never taken again); otherwise a new save gets a new key."""
    base = (order.idempotency_key if order is not None else
            f"membership-{membership_id}" if membership_id else f"customer-{customer.customer_number}")
    pending = [r for r in s.exec(select(Outbox).where(Outbox.operation == CARD_PRESENT_SAVE,
                                                      Outbox.status == OutboxStatus.PENDING)).all()
               if (r.payload or {}).get("base") == base and (r.payload or {}).get("customer_id") == customer.id]
    rows: list[Outbox] = []
    if not customer.gateway_customer_id:
        # The same key as the customer record's card update: one gateway customer, whichever comes first.
        rows.append(enqueue(s, order_id=None, operation="customer.ensure",
                            payload={"customer_id": customer.id, "chain": f"{base}:reader_card"},
                            idempotency_key=make_key(f"customer-{customer.customer_number}", "ensure")))
    if pending:
        return [*rows, pending[-1]]
    save_key = make_key(base, "reader_card", secrets.token_hex(6))
    metadata = {"save_key": save_key, "clarity_customer": customer.customer_number}
    if order is not None:
        metadata.update(clarity_order=str(order.id), order_key=order.idempotency_key)
    if membership_id:
        metadata["clarity_membership"] = str(membership_id)
    # "for_membership", not "membership_id": a refused reading leaves the membership as it is.
    rows.append(enqueue(s, order_id=None, operation=CARD_PRESENT_SAVE,
                        payload={"customer_id": customer.id, "order": order.id if order is not None else None,
                                 "for_membership": membership_id, "record": not membership_id,
                                 "base": base, "save_key": save_key,
                                 "metadata": metadata, "chain": f"{base}:reader_card"},
                        idempotency_key=save_key))
    return rows


def save_card_on_reader(db: Any, gateway: PaymentGateway, reader: Any, *, customer_id: int | None,
                        order_id: int | None = None, membership_id: int | None = None,
                        wait: float = 5.0) -> CardToken:
    """The customer presents a card on `reader` and it is saved on them (no charge), through the outbox.
    Blocking: run it in a worker thread (the UI: `pay_at_reader(reader, save_card_on_reader, ...)`, so
    the reader's action runs on the app's loop and its Cancel works). Returns the saved card; raises the
    PaymentError that refused it (nothing was saved), or a transient one (the reading is recorded later)."""
    from clarity_tui.services.billing import BillingService

    if customer_id is None:
        raise E.GatewayRejected("Choose the customer before taking a card.")
    with db.write() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise E.GatewayRejected(f"Customer {customer_id} does not exist.")
        order = s.get(SalesOrder, order_id) if order_id else None
        rows = enqueue_save(s, customer, order=order, membership_id=membership_id)
        row_ids, save_id = [r.id for r in rows if r.id is not None], rows[-1].id
    attended = _ATTENDED.get()
    here = (contextlib.nullcontext() if attended is not None and attended.reader is reader
            else reader_attended(reader))
    with here:
        result = BillingService(db, gateway).processor.run_rows(row_ids, wait=wait)
    with db.read() as s:
        row = s.get(Outbox, save_id)
        status, saved = row.status, dict(row.result or {})
    if status == OutboxStatus.DONE:
        return CardToken(saved["payment_method_id"], saved.get("brand") or "unknown", saved.get("last4") or "",
                         int(saved.get("exp_month") or 0), int(saved.get("exp_year") or 0))
    if result.error is not None:
        raise result.error
    raise E.GatewayConflict("Another terminal is saving this card right now: wait a moment, then read it again.")


# --- the outbox operation ------------------------------------------------------------------------------


class CardPresentSave:
    """`card_present.save`: a card read on the reader, saved on the customer (a SetupIntent; no charge)."""

    @staticmethod
    def _customer(db: Any, entry: Outbox) -> str:
        with db.read() as s:
            customer = s.get(Customer, payload_of(entry)["customer_id"])
            cus = customer.gateway_customer_id if customer is not None else None
        if not cus:
            raise E.GatewayRejected("The customer is not at the payment gateway yet: sync the customer first.")
        return cus

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        cus = self._customer(db, entry)
        key, p = entry.idempotency_key, payload_of(entry)
        attended = _ATTENDED.get()
        if attended is None and entry.attempts <= 1:
            # Never sent, so nothing exists at the gateway: without the customer there is nothing to make.
            raise E.PaymentError(NOT_ATTENDED, code="reader_not_attended")
        seti = gateway.create_card_present_setup(cus, metadata=dict(p.get("metadata") or {}), idempotency_key=key)
        if entry.attempts > 1 and not seti.succeeded:
            # A replayed create answers with the stored (first) response: read the SetupIntent as it is now.
            seti = gateway.card_present_setup(seti.setup_id, idempotency_key=f"{key}:read")
        if seti.status == "canceled":
            raise E.PaymentError("The card reading was cancelled: no card was saved. Read it again.",
                                 code="cancelled")
        if not seti.succeeded:
            if attended is None:
                seti = self._give_up(gateway, seti, key, None)
            else:
                setup_id = seti.setup_id
                try:
                    read = attended.run(lambda reader: reader.process_setup_intent(setup_id))
                except CardReaderError as exc:
                    seti = self._give_up(gateway, seti, key, exc)
                else:
                    seti = gateway.card_present_setup(setup_id, presented=read.card, idempotency_key=f"{key}:reader")
                    if not seti.succeeded:
                        seti = self._give_up(gateway, seti, key, CardReaderError("declined"))
        return self._settle(gateway, seti)

    def _give_up(self, gateway: PaymentGateway, seti: CardPresentSetup, key: str,
                 exc: CardReaderError | None) -> CardPresentSetup:
        """Cancel the SetupIntent so it can never save a card later, then fail with the reason. One that
        succeeded meanwhile is returned instead. Network errors propagate (the row stays pending)."""
        decline = seti.decline_code
        if exc is not None and decline is None and exc.code in ("declined", "insufficient_funds", "expired_card",
                                                                "authentication_required"):
            now = gateway.card_present_setup(seti.setup_id, idempotency_key=f"{key}:read")
            if now.succeeded:
                return now
            decline = now.decline_code
        current = gateway.cancel_card_present_setup(seti.setup_id, idempotency_key=f"{key}:cancel")
        if current.succeeded:
            return current
        if exc is None:
            raise E.PaymentError(NOT_ATTENDED, code="reader_not_attended")
        raise reader_failure(exc, decline or current.decline_code, "no card was saved", PIN_MESSAGE)

    @staticmethod
    def _settle(gateway: PaymentGateway, seti: CardPresentSetup) -> dict[str, Any]:
        if not seti.payment_method_id:
            # "A SetupIntent can't save a card_present PaymentMethod directly, but in most cases you can
            # create a reusable generated_card" (save-cards-directly): without one there is nothing to keep.
            raise E.CardDeclined(NOT_REUSABLE, decline_code="card_not_reusable")
        return {"setup_id": seti.setup_id, "payment_method_id": seti.payment_method_id, "brand": seti.brand,
                "last4": (seti.last4 or "")[-4:], "exp_month": seti.exp_month, "exp_year": seti.exp_year,
                "gateway": gateway.name}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        cus = self._customer(db, entry)
        found = gateway.find_card_present_setup(cus, payload_of(entry)["save_key"])
        return None if found is None else self._settle(gateway, found)

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        if not payload_of(entry).get("record", True):
            return  # a membership's card: update_card records it (the row's result keeps the card)
        customer_id = payload_of(entry)["customer_id"]
        pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id,
                                                PaymentMethod.gateway_token == result["payment_method_id"])).first()
        if pm is None:
            pm = PaymentMethod(customer_id=customer_id, gateway=result.get("gateway") or "stripe",
                               gateway_token=result["payment_method_id"], brand=result.get("brand") or "unknown",
                               last4=result.get("last4") or "", exp_month=int(result.get("exp_month") or 0),
                               exp_year=int(result.get("exp_year") or 0))
        pm.detached_at = None
        s.add(pm)


READER_CARD_OPERATIONS: dict[str, Operation] = {CARD_PRESENT_SAVE: CardPresentSave()}
