"""Keyed entry without raw card data: a Stripe-hosted card page, sent to the customer by text message.

When the reader cannot read the card and the account has no MOTO (keyed entry on the reader), the
customer enters the card on their own phone, on a page Stripe hosts: a Checkout Session in setup mode
for the order's customer. Stripe's docs:

    "To collect customer payment details that you can reuse later, use Checkout's setup mode. Setup
    mode uses the Setup Intents API to create Payment Methods." ... "You can optionally specify the
    customer parameter to automatically attach the created payment method to an existing customer."
    (docs.stripe.com/payments/checkout/save-and-reuse)

The card number never passes through this process (PCI scope: README "PCI scope").

1. `send_link(order_id)`: the session is created through the outbox (operation `card.hosted_page`,
   exported in HOSTED_CARD_OPERATIONS; the customer is created first when needed), and its URL is
   texted to the customer through the messaging layer.
2. `check(order_id)`: the lane polls (as the SMS email step of a migration does) until the session's
   status is `complete`; its SetupIntent's card then becomes the order's card, like a reader's.
Both are sale steps: the actor needs sale.sell.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.messaging.base import MessagingError, SmsProvider
from clarity_tui.payments import errors as E
from clarity_tui.payments.base import PaymentGateway
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import InvalidPhone, normalize_phone
from clarity_tui.services.membership_steps import card_row
from clarity_tui.services.outbox import Operation, OutboxProcessor, enqueue, existing, make_key, payload_of
from clarity_tui.services.permissions import Permission, guarded
from db.models import Customer, Outbox, OutboxStatus, SalesOrder, utcnow

HOSTED_CARD_PAGE = "card.hosted_page"


class CreateHostedCardPage:
    """`card.hosted_page`: a Checkout Session in setup mode for the order's customer (no money moves)."""

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p = payload_of(entry)
        with db.read() as s:
            customer = s.get(Customer, p["customer_id"])
            cus = customer.gateway_customer_id if customer else None
            order = s.get(SalesOrder, entry.order_id) if entry.order_id else None
            order_key = order.idempotency_key if order else ""
        if not cus:
            raise E.GatewayRejected("The customer is not at the payment gateway yet: sync the customer first.")
        page = gateway.create_hosted_card_page(cus, currency=p.get("currency", "usd"), success_url=p["success_url"],
                                               metadata={"clarity_order": str(entry.order_id or ""),
                                                         "order_key": order_key},
                                               idempotency_key=entry.idempotency_key)
        return {"session_id": page.session_id, "url": page.url, "status": page.status}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        """Nothing to record yet: the row's result keeps the session; the card comes when it completes."""


HOSTED_CARD_OPERATIONS: dict[str, Operation] = {HOSTED_CARD_PAGE: CreateHostedCardPage()}


class HostedCardError(UserFacingError):
    """str() says what to do (type the phone again, use the reader, ask a technician)."""


@dataclass(frozen=True)
class HostedCardLink:
    order_id: int
    session_id: str
    url: str
    to_hint: str  # the last digits of the number it went to
    message_id: str
    sent_at: dt.datetime


@dataclass(frozen=True)
class HostedCardStatus:
    state: str  # "waiting" | "complete" | "expired"
    card_label: str | None = None
    payment_method_row_id: int | None = None
    message: str | None = None

    @property
    def complete(self) -> bool:
        return self.state == "complete"


def _hint(e164: str) -> str:
    return f"…{e164[-4:]}" if e164 else ""


class HostedCardService:
    permission = Permission.SELL

    def __init__(self, db: Any, gateway: PaymentGateway, sms: SmsProvider | None, actor: Actor, *,
                 currency: str = "usd", success_url: str = "", phone_region: str = "US",
                 site_name: str = "the car wash") -> None:
        from clarity_tui.services.billing import OPERATIONS

        self.db = db
        self.gateway = gateway
        self.sms = sms
        self.actor = actor
        self.currency = currency
        self.success_url = success_url
        self.phone_region = phone_region
        self.site_name = site_name
        self.processor = OutboxProcessor(db, gateway, {**OPERATIONS, **HOSTED_CARD_OPERATIONS})

    @classmethod
    def from_settings(cls, db: Any, settings: Any, gateway: PaymentGateway, sms: SmsProvider | None,
                      actor: Actor) -> HostedCardService:
        return cls(db, gateway, sms, actor, currency=settings.payments.currency,
                   success_url=settings.payments.stripe.hosted_page_success_url,
                   phone_region=settings.site.phone_region, site_name=settings.site.name)

    # --- 1. the link --------------------------------------------------------------------------------
    @guarded
    def send_link(self, order_id: int, phone: str | None = None) -> HostedCardLink:
        """Create the hosted page (through the outbox) and text its link to `phone` (default: the
        customer's). Sending again makes a new page (the customer may have lost the first)."""
        if self.sms is None:
            raise HostedCardError("Text messages are not set up on this terminal: take the card on the reader.")
        if not self.success_url:
            raise HostedCardError("The hosted card page is not set up: a technician must set "
                                  "payments.stripe.hosted_page_success_url.")
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order is None or order.customer_id is None:
                raise HostedCardError("Choose the customer before sending the card link.")
            customer = s.get(Customer, order.customer_id)
            try:
                e164 = normalize_phone(phone, self.phone_region) if phone else customer.phone_e164
            except InvalidPhone as exc:
                raise HostedCardError(str(exc)) from None
            if not e164:
                raise HostedCardError("The customer has no mobile number: type it in.")
            key = order.idempotency_key
            if not customer.gateway_customer_id:
                enqueue(s, order_id=order.id, operation="customer.ensure", payload={"customer_id": customer.id},
                        idempotency_key=make_key(key, "customer"))
            sent_before = len(s.exec(select(Outbox.id).where(Outbox.order_id == order.id,
                                                             Outbox.operation == HOSTED_CARD_PAGE)).all())
            row = enqueue(s, order_id=order.id, operation=HOSTED_CARD_PAGE,
                          payload={"customer_id": customer.id, "currency": self.currency,
                                   "success_url": self.success_url},
                          idempotency_key=make_key(key, "hosted_page", f"{sent_before + 1}"))
            row_id = row.id
        run = self.processor.run_order(order_id)
        with self.db.read() as s:
            row = s.get(Outbox, row_id)
            status, result = row.status, dict(row.result or {})
        if status != OutboxStatus.DONE:
            why = str(run.error) if run.error else "the payment gateway did not answer"
            raise HostedCardError(f"The card page could not be made ({why}). Try again, or use the reader.")
        body = (f"{self.site_name}: add your card for your wash membership on this secure Stripe page "
                f"(nothing is charged until you agree at the lane): {result['url']}")
        try:
            sent = self.sms.send(e164, body)
        except MessagingError as exc:
            raise HostedCardError(f"{exc} Take the card on the reader instead.") from None
        with self.db.write() as s:
            audit.record(s, self.actor, "order.hosted_card_sent", "sales_order", order_id,
                         after={"to": _hint(e164), "provider": self.sms.name, "message_id": sent.id,
                                "session_id": result["session_id"]})
        return HostedCardLink(order_id, result["session_id"], result["url"], _hint(e164), sent.id, sent.sent_at)

    # --- 2. the poll --------------------------------------------------------------------------------
    @guarded
    def check(self, order_id: int) -> HostedCardStatus:
        """Has the customer finished the page? On `complete` the card is the order's (and saved)."""
        with self.db.read() as s:
            row = s.exec(select(Outbox).where(Outbox.order_id == order_id, Outbox.operation == HOSTED_CARD_PAGE,
                                              Outbox.status == OutboxStatus.DONE)
                         .order_by(col(Outbox.id).desc())).first()
            session_id = (row.result or {}).get("session_id") if row else None
        if not session_id:
            raise HostedCardError("No card link was sent for this sale.")
        try:
            page = self.gateway.hosted_card_page(session_id)
        except E.PaymentError as exc:
            return HostedCardStatus("waiting", message=str(exc))
        if page.status == "expired":
            return HostedCardStatus("expired", message="The card page expired: send the link again.")
        if page.status != "complete" or not page.payment_method_id:
            return HostedCardStatus("waiting")
        pm_row = self._attach(order_id, page)
        return HostedCardStatus("complete", f"{page.brand.title()} •••• {page.last4}", pm_row)

    def _attach(self, order_id: int, page: Any) -> int:
        """The page's card becomes the order's card (saved on the customer, made the default at billing)."""
        with self.db.write() as s:
            order = existing(s, SalesOrder, order_id)
            assert order.customer_id is not None  # the page was made for the order's customer
            pm = card_row(s, order.customer_id, self.gateway.name, page)
            assert pm.id is not None  # flushed by card_row
            if order.payment_method_id != pm.id:
                order.payment_method_id = pm.id
                order.card_present = False
                order.updated_at = utcnow()
                s.add(order)
                audit.record(s, self.actor, "order.card", "sales_order", order.id,
                             after={"payment_method_id": pm.id, "brand": pm.brand, "last4": pm.last4,
                                    "via": "hosted_page"})
            return pm.id
