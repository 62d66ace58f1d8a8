"""Changes to an existing membership, and refunds, through the payments outbox.

Pause, resume, cancel at period end, undoing that cancel, plan change, a new card (with a
past-due member's open invoice paid on it) and refunds each write their outbox rows in the same
transaction that checks the membership's version and bumps it, so a second terminal working from
the same screen gets StaleRecord before anything reaches the gateway. The local change itself is
the row's `apply` step, made in the transaction that marks the row done: the gateway and our
database cannot end up apart, and a row the network held back is replayed later (the app's timer,
`clarity-tui payments replay`) with the same key. Until then the membership shows "pending sync".

A membership that no gateway subscription bills (old demo or hand-made data) changes locally only.
The steps themselves (what each sends, and records) are in membership_steps.py.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.cards import CardToken, ManualCard
from clarity_tui.payments.errors import PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.membership_steps import (
    apply_due_plan_changes,
    apply_local_change,
    card_row,
    effective_plan_id,
    refunds_in_flight,
)
from clarity_tui.services.outbox import RunResult, enqueue, existing, make_key
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plan_pricing import money
from clarity_tui.services.upsell import credit_holders, holder_label
from db.models import Customer, Membership, MembershipStatus, OrderKind, Outbox, SalesOrder, utcnow

# Kept importable from here (the app's timer, the customer record): they live in membership_steps.
__all__ = ["ActionOutcome", "ActionRefused", "MembershipActions", "StaleMembership", "apply_due_plan_changes",
           "cents_of_dollars", "dollars_to_cents", "effective_plan_id"]

# What the attendant sees when a change is queued behind a dropped network.
QUEUED = "The payment gateway cannot be reached: the change is saved and is sent when the network is back."


class ActionRefused(UserFacingError):
    """The change was refused; str() says why and what to do. Nothing was changed."""


@dataclass(frozen=True)
class ActionOutcome:
    status: str  # "done" | "queued"
    message: str | None = None
    payment_method_id: int | None = None
    charged_cents: int = 0

    @property
    def queued(self) -> bool:
        return self.status == "queued"


# --- the service ---------------------------------------------------------------------------------


class MembershipActions:
    """The membership actions of the customer record, and refunds. `billing` is a BillingService."""

    def __init__(self, billing: Any, *, db: Any = None) -> None:
        # No billing: memberships no gateway bills (demo or hand-made data) change locally only.
        self.billing = billing
        self.db = db if db is not None else billing.db
        self.gateway: PaymentGateway | None = billing.gateway if billing is not None else None

    def _load(self, s: Session, membership_id: int, version: int) -> Membership:
        m = s.get(Membership, membership_id, with_for_update=True)
        if m is None:
            raise ActionRefused(f"Membership {membership_id} no longer exists: reload the record.")
        if m.version != version:
            raise StaleMembership("This membership was changed on another terminal: reload the record and try again.")
        return m

    def _gateway(self) -> PaymentGateway:
        if self.gateway is None:
            raise ActionRefused("A card change needs the payment gateway, and none is set up on this terminal.")
        return self.gateway

    def _run(self, row_ids: list[int], what: str) -> ActionOutcome:
        if not row_ids:
            return ActionOutcome("done")
        result: RunResult = self.billing.processor.run_rows(row_ids, wait=5.0)
        if result.status == "failed":
            raise ActionRefused(f"The payment gateway refused to {what}: {result.message} Nothing was changed.")
        if result.status in ("pending_sync", "busy"):
            return ActionOutcome("queued", QUEUED)
        return ActionOutcome("done")

    def change(self, actor: Actor, membership_id: int, version: int, operation: str, allowed_from: set[str],
               what: str, **payload: Any) -> ActionOutcome:
        """Check and queue one subscription step; send it now. Local-only memberships change at once."""
        require(actor, Permission.MEMBERSHIP)
        with self.db.write() as s:
            m = self._load(s, membership_id, version)
            if m.status not in allowed_from:
                raise ActionRefused(f"A {m.status.replace('_', ' ')} membership cannot be {what}.")
            m.version += 1
            m.updated_at = utcnow()
            audit.record(s, actor, f"membership.{operation.split('.')[-1]}", "membership", m.id,
                         after={**payload, "gateway": bool(m.gateway_subscription_id)})
            if not m.gateway_subscription_id:
                apply_local_change(s, operation, m, payload)
                s.add(m)
                return ActionOutcome("done")
            m.pending_sync = True
            s.add(m)
            enqueue(s, order_id=None, operation=operation,
                    payload={"membership_id": m.id, "currency": self.billing.currency, **payload,
                             "chain": membership_chain(membership_id)},
                    idempotency_key=make_key(f"membership-{membership_id}", operation, f"v{version}"))
            row_ids = pending_in_chain(s, membership_chain(membership_id))
        # The membership's earlier steps still waiting (the network was down) go first: a "keep" must
        # never be overtaken by the "cancel" it undoes.
        return self._run(row_ids, _verb(operation))

    def update_card(self, actor: Actor, membership_id: int, version: int,
                    card: CardToken | ManualCard) -> ActionOutcome:
        """Save the new card; a past-due member's open invoice is paid with it (the gateway's own
        amount), and only then does it become the default card. No separate charge."""
        require(actor, Permission.MEMBERSHIP)
        with self.db.read() as s:
            m = s.get(Membership, membership_id)
            if m is None:
                raise ActionRefused(f"Membership {membership_id} no longer exists: reload the record.")
            customer_number = existing(s, Customer, m.customer_id).customer_number
        gateway = self._gateway()
        attempt = f"membership-{membership_id}-card-v{version}-{secrets.token_hex(4)}"
        if isinstance(card, ManualCard):
            # Tokenising creates nothing billable and the number must never be stored, so it cannot wait.
            try:
                card = gateway.tokenize_card(card, idempotency_key=make_key(attempt, "tokenize"))
            except PaymentError as exc:
                raise ActionRefused(f"The card was not saved: {exc}") from exc
        with self.db.write() as s:
            m = self._load(s, membership_id, version)
            c = existing(s, Customer, m.customer_id)
            pm = card_row(s, m.customer_id, gateway.name, card)
            chain = {"chain": membership_chain(membership_id)}  # after the membership's earlier steps, in order
            rows = []
            if not c.gateway_customer_id:
                rows.append(enqueue(s, order_id=None, operation="customer.ensure",
                                    payload={"customer_id": c.id, **chain},
                                    idempotency_key=make_key(f"customer-{customer_number}", "ensure")))
            pay = m.status == MembershipStatus.PAST_DUE and bool(m.gateway_subscription_id)
            rows.append(enqueue(s, order_id=None, operation="card.save",
                                payload={"payment_method_row_id": pm.id, "make_default": not pay, **chain},
                                idempotency_key=make_key(attempt, "save")))
            if pay:
                m.pending_sync = True
                rows.append(enqueue(s, order_id=None, operation="invoice.pay",
                                    payload={"membership_id": m.id, "payment_method_row_id": pm.id, **chain},
                                    idempotency_key=make_key(attempt, "invoice")))
                rows.append(enqueue(s, order_id=None, operation="card.default",
                                    payload={"payment_method_row_id": pm.id, **chain},
                                    idempotency_key=make_key(attempt, "default")))
            m.version += 1
            m.updated_at = utcnow()
            s.add(m)
            audit.record(s, actor, "membership.card_updated", "membership", m.id,
                         after={"card": f"{pm.brand} {pm.last4}", "payment_method_id": pm.id,
                                "pays_open_invoice": pay})
            row_ids, pm_id = pending_in_chain(s, membership_chain(membership_id)), pm.id
        result: RunResult = self.billing.processor.run_rows(row_ids, wait=5.0)
        if result.status == "failed":
            saved = "card.save" in result.done
            raise ActionRefused(("The card was saved but not charged: " if saved else "The card was not saved: ")
                                + str(result.message))
        if result.status in ("pending_sync", "busy"):
            return ActionOutcome("queued", QUEUED, pm_id)
        with self.db.read() as s:
            charged = next((r.result.get("amount_cents", 0) for r in s.exec(
                select(Outbox).where(Outbox.operation == "invoice.pay")) if r.id in row_ids and r.result), 0)
        return ActionOutcome("done", None, pm_id, charged)

    def refund(self, actor: Actor, order_id: int, amount_cents: int | None = None, *,
               reason: str = "manager refund") -> ActionOutcome:
        """Give money back on an order (all that is left, or `amount_cents`). Managers only."""
        require(actor, Permission.REFUND)
        if amount_cents is not None and (isinstance(amount_cents, bool) or not isinstance(amount_cents, int)
                                         or amount_cents <= 0):
            raise ActionRefused("A refund is a whole number of cents above zero (e.g. 1250 for $12.50), or "
                                "nothing to give back all that is left.")
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id, with_for_update=True)
            if order is None:
                raise ActionRefused(f"Order {order_id} does not exist: check the order number.")
            paid = _paid_cents(s, order)
            if not order.gateway_payment_id or paid <= 0:
                raise ActionRefused("Nothing was charged on this order, so there is nothing to refund.")
            left = paid - (order.refunded_cents or 0) - refunds_in_flight(s, order_id)
            amount = left if amount_cents is None else amount_cents
            if amount <= 0 or left <= 0:
                raise ActionRefused("This order has already been refunded in full.")
            if amount > left:
                raise ActionRefused(f"This refund is more than was paid: at most {money(left)} is left "
                                    "to refund on this order.")
            _check_wash_credit(s, order, amount, left)
            n = len(s.exec(select(Outbox.id).where(Outbox.operation == "payment.refund",
                                                   Outbox.idempotency_key.startswith(order.idempotency_key))).all())
            row = enqueue(s, order_id=None, operation="payment.refund",
                          payload={**self._clawback(), "payment_id": order.gateway_payment_id, "amount_cents": amount,
                                   "order_id": order_id, "reason": reason},
                          idempotency_key=make_key(order.idempotency_key, f"refund{n + 1}", str(amount)))
            audit.record(s, actor, "order.refund", "sales_order", order_id,
                         after={"amount_cents": amount, "reason": reason})
            row_id = row.id
        assert row_id is not None  # flushed by enqueue
        return self._run([row_id], "refund")


    def _clawback(self) -> dict[str, int]:
        """The site's commission clawback window, carried by the refund row to whoever records it."""
        commissions = self.billing.commissions
        return {} if commissions is None else {"clawback_days": commissions.clawback_days}


class StaleMembership(ActionRefused):
    """Another terminal changed the membership since this screen read it."""


_DOLLARS = re.compile(r"\$?(\d{1,7})(?:\.(\d{1,2}))?", re.ASCII)


def cents_of_dollars(text: str) -> int | None:
    """"12.50", "$12.5" or "0" as cents; None for anything else (no exponents, no third decimal)."""
    match = _DOLLARS.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def dollars_to_cents(text: str) -> int | None:
    """An amount of money to move: as cents_of_dollars, and never zero."""
    return cents_of_dollars(text) or None


def membership_chain(membership_id: int) -> str:
    """The outbox chain of one membership: its steps reach the gateway in the order they were made."""
    return f"membership-{membership_id}"


def pending_in_chain(s: Session, chain: str) -> list[int]:
    rows = s.exec(select(Outbox).where(Outbox.status == "pending", col(Outbox.order_id).is_(None))
                  .order_by(col(Outbox.id))).all()
    return [r.id for r in rows if r.id is not None and (r.payload or {}).get("chain") == chain]


def _verb(operation: str) -> str:
    return {"subscription.pause": "pause", "subscription.resume": "resume", "subscription.cancel": "cancel",
            "subscription.keep": "keep the membership", "subscription.change_plan": "change the plan"}.get(
        operation, operation)


def _check_wash_credit(s: Session, order: SalesOrder, amount: int, left: int) -> None:
    """A wash whose payment a live membership order spends ("Join today") gives back only the rest."""
    if order.kind != OrderKind.WASH:
        return
    holders = credit_holders(s, order)
    held = sum(h.credit_cents for h in holders)
    if holders and amount > left - held:
        names = ", ".join(holder_label(s, h) for h in holders)
        raise ActionRefused(f"{money(held)} of this wash is credited to {names}: at most {money(max(0, left - held))} "
                            "of the wash can be refunded. Refund that membership order in full (or cancel it) "
                            "first to release the credit.")


def _paid_cents(s: Session, order: SalesOrder) -> int:
    """What the gateway really took on the order: its charge row's result, not the order's plan."""
    for row in s.exec(select(Outbox).where(Outbox.order_id == order.id, Outbox.status == "done")):
        if row.operation in ("payment.charge", "payment.charge_present") and row.result:
            return int(row.result.get("amount_cents") or 0)
    return order.due_today_cents if order.gateway_payment_id else 0
