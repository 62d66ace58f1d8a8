"""Changes to an existing membership, and refunds, through the payments outbox.

Pause, resume, cancel at period end, undoing that cancel, plan change, a new card (with a
past-due member's open invoice paid on it) and refunds each write their outbox rows in the same
transaction that checks the membership's version and bumps it, so a second terminal working from
the same screen gets StaleRecord before anything reaches the gateway. The local change itself is
the row's `apply` step, made in the transaction that marks the row done: the gateway and our
database cannot end up apart, and a row the network held back is replayed later (the app's timer,
`clarity-tui payments replay`) with the same key. Until then the membership shows "pending sync".

A membership that no gateway subscription bills (old demo or hand-made data) changes locally only.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.cards import CardToken, ManualCard
from clarity_tui.payments.errors import GatewayRejected, PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.outbox import RunResult, enqueue, make_key
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plan_pricing import money, plan_spec
from db.models import Customer, Membership, MembershipStatus, Outbox, PaymentMethod, Plan, SalesOrder, utcnow

log = logging.getLogger(__name__)

AUDITED = ["status", "plan_id", "scheduled_plan_id", "scheduled_plan_on", "cancel_at_period_end", "expires_on"]
# What the attendant sees when a change is queued behind a dropped network.
QUEUED = "The payment gateway cannot be reached: the change is saved and is sent when the network is back."


class ActionRefused(Exception):
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


# --- outbox operations -------------------------------------------------------------------------


def _membership_local_change(s: Session, operation: str, m: Membership, payload: dict[str, Any]) -> None:
    """What each subscription step means for our row once the gateway has done it."""
    if operation == "subscription.pause":
        m.status = MembershipStatus.PAUSED
    elif operation in ("subscription.resume", "invoice.pay"):
        m.status = MembershipStatus.ACTIVE
    elif operation == "subscription.cancel":
        m.cancel_at_period_end = True
        m.expires_on = m.next_billing_on or m.expires_on
    elif operation == "subscription.keep":
        if m.cancel_at_period_end and m.expires_on == m.next_billing_on:
            m.expires_on = None
        m.cancel_at_period_end = False
    elif operation == "subscription.change_plan":
        if payload.get("scheduled_on"):  # a downgrade: the plan changes at the next billing date
            m.scheduled_plan_id, m.scheduled_plan_on = payload["plan_id"], dt.date.fromisoformat(payload["scheduled_on"])
        else:
            m.plan_id, m.scheduled_plan_id, m.scheduled_plan_on = payload["plan_id"], None, None


def effective_plan_id(m: Membership, today: dt.date) -> int:
    """The plan the member is on today: a scheduled downgrade counts from its date (between that date
    and the next `apply_due_plan_changes`, readers use this)."""
    if m.scheduled_plan_id and m.scheduled_plan_on and today >= m.scheduled_plan_on:
        return m.scheduled_plan_id
    return m.plan_id


def apply_due_plan_changes(db: Any, today: dt.date) -> list[int]:
    """Downgrades whose date has come take effect here (the gateway already bills the new price from
    that date): plan_id moves to the scheduled plan, with an audit row. Returns the memberships changed.
    The running app calls it with each outbox pass."""
    with db.write() as s:
        due = s.exec(select(Membership).where(col(Membership.scheduled_plan_id).is_not(None),
                                              col(Membership.scheduled_plan_on) <= today)).all()
        for m in due:
            before = {"plan_id": m.plan_id}
            m.plan_id, m.scheduled_plan_id, m.scheduled_plan_on = m.scheduled_plan_id, None, None
            m.version += 1
            m.updated_at = utcnow()
            s.add(m)
            audit.record(s, Actor.system("billing"), "membership.plan_changed", "membership", m.id, before=before,
                         after={"plan_id": m.plan_id, "reason": "scheduled downgrade"})
        return [m.id for m in due]


class SubscriptionStep:
    """pause / resume / cancel / keep / change plan / pay the open invoice, on a membership."""

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p, key, op = entry.payload, entry.idempotency_key, entry.operation
        with db.read() as s:
            m = s.get(Membership, p["membership_id"])
            sub = m.gateway_subscription_id
            plan = s.get(Plan, p["plan_id"]) if p.get("plan_id") else None
            pm = s.get(PaymentMethod, p["payment_method_row_id"]) if p.get("payment_method_row_id") else None
        if not sub:
            raise GatewayRejected("This membership has no gateway subscription yet: sync it first.")
        if op == "invoice.pay":
            paid = gateway.pay_open_invoice(sub, pm.gateway_token, idempotency_key=key)
            return {"payment_id": paid.payment_id if paid else None, "amount_cents": paid.amount_cents if paid else 0,
                    **_paid_period(gateway, sub)}
        if op == "subscription.pause":
            r = gateway.pause(sub, idempotency_key=key,
                              resumes_at=dt.date.fromisoformat(p["resumes_at"]) if p.get("resumes_at") else None)
        elif op == "subscription.resume":
            r = gateway.resume(sub, idempotency_key=key)
        elif op == "subscription.cancel":
            r = gateway.cancel_at_period_end(sub, idempotency_key=key)
        elif op == "subscription.keep":
            r = gateway.keep_subscription(sub, idempotency_key=key)
        else:
            synced = gateway.sync_plan(plan_spec(plan, p.get("currency", "usd")))
            r = gateway.change_plan(sub, synced.price_id, extra_price_id=synced.extra_price_id,
                                    extra_vehicles=int(p.get("extra_vehicles") or 0), idempotency_key=key)
        return {"subscription_id": r.subscription_id, "status": r.status}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        m = s.get(Membership, entry.payload["membership_id"])
        before = audit.snapshot(m, AUDITED)
        _membership_local_change(s, entry.operation, m, entry.payload)
        paid: dict[str, Any] = {}
        if entry.operation == "invoice.pay":  # the gateway's answer: ACTIVE (above), paid through the new period
            paid = {"charged_cents": result.get("amount_cents", 0), "paid_through_before": _iso(m.paid_through)}
            if result.get("paid_through"):
                end = dt.date.fromisoformat(result["paid_through"])
                m.paid_through = max(end, m.paid_through) if m.paid_through else end
            m.gateway_status = result.get("gateway_status") or m.gateway_status
            paid["paid_through"] = _iso(m.paid_through)
        m.pending_sync = False
        m.updated_at = utcnow()
        s.add(m)
        audit.record(s, Actor.system("outbox"), f"{entry.operation}.done", "membership", m.id, before=before,
                     after={**(audit.snapshot(m, AUDITED) or {}), **paid})


def _paid_period(gateway: PaymentGateway, subscription_id: str) -> dict[str, Any]:
    """After paying the open invoice: the subscription's status and the end of the period now paid for
    (retrieved fresh, read-only). A gateway that cannot say leaves `paid_through` as it is: the money
    has moved, so nothing here may fail the step."""
    try:
        state = gateway.retrieve_subscription(subscription_id)
    except Exception as exc:  # noqa: BLE001 - see above; the billing sync corrects paid_through later
        log.warning("subscription %s: paid, but its period could not be read (%s)", subscription_id, exc)
        return {}
    end = state.current_period_end
    return {"gateway_status": state.status,
            **({"paid_through": end.astimezone(dt.UTC).date().isoformat()} if end is not None else {})}


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


class SetDefaultCard:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        with db.read() as s:
            pm = s.get(PaymentMethod, entry.payload["payment_method_row_id"])
            cus = s.get(Customer, pm.customer_id).gateway_customer_id
        gateway.set_default_card(cus, pm.gateway_token, idempotency_key=entry.idempotency_key)
        return {"payment_method_id": pm.gateway_token}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        make_default(s, entry.payload["payment_method_row_id"])


class Refund:
    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p = entry.payload
        r = gateway.refund(p["payment_id"], amount_cents=p.get("amount_cents"), idempotency_key=entry.idempotency_key)
        return {"refund_id": r.refund_id, "amount_cents": r.amount_cents}

    def recover(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any] | None:
        # Refunds carry their key in the metadata; a rotated key leaves the earlier ones to look for.
        for key in [*(entry.payload.get("prior_keys") or []), entry.idempotency_key]:
            found = gateway.find_refund(entry.payload["payment_id"], key)
            if found is not None:
                return {"refund_id": found.refund_id, "amount_cents": found.amount_cents}
        return None

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        order_id = entry.payload.get("order_id")
        if order_id:  # one UPDATE: two replayers recording two refunds at once must both count
            s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id).values(
                refunded_cents=col(SalesOrder.refunded_cents) + int(result["amount_cents"]), updated_at=utcnow()))
        audit.record(s, Actor.system("outbox"), "order.refunded", "sales_order", order_id,
                     after={"amount_cents": result["amount_cents"], "refund_id": result["refund_id"],
                            "reason": entry.payload.get("reason")})


def card_row(s: Session, customer_id: int, gateway_name: str, card: Any) -> PaymentMethod:
    """The customer's PaymentMethod row for this gateway token (brand, last 4, expiry only), made once."""
    pm = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id,
                                            PaymentMethod.gateway_token == card.payment_method_id)).first()
    if pm is None:
        pm = PaymentMethod(customer_id=customer_id, gateway=gateway_name, gateway_token=card.payment_method_id,
                           brand=card.brand or "unknown", last4=(card.last4 or "")[-4:],
                           exp_month=int(card.exp_month or 0), exp_year=int(card.exp_year or 0))
        s.add(pm)
        s.flush()
    return pm


def make_default(s: Session, payment_method_row_id: int) -> None:
    pm = s.get(PaymentMethod, payment_method_row_id)
    for other in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == pm.customer_id,
                                                    PaymentMethod.id != pm.id, PaymentMethod.is_default == True)):  # noqa: E712
        other.is_default = False
        s.add(other)
    pm.is_default = True
    s.add(pm)


ACTION_OPERATIONS: dict[str, Any] = {
    **{name: SubscriptionStep() for name in ("subscription.pause", "subscription.resume", "subscription.cancel",
                                             "subscription.keep", "subscription.change_plan", "invoice.pay")},
    "card.default": SetDefaultCard(),
    "payment.refund": Refund(),
}


def on_row_failed(s: Session, row: Outbox, error: PaymentError) -> None:
    """A final refusal of a membership step: the membership is as it was, and says so."""
    membership_id = (row.payload or {}).get("membership_id")
    m = s.get(Membership, membership_id) if membership_id else None
    if m is not None:
        m.pending_sync = False
        s.add(m)
    audit.record(s, Actor.system("outbox"), f"{row.operation}.refused", "membership" if m else "outbox",
                 m.id if m else row.id, after={"error": str(error)})


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
                         after={**payload, "gateway": bool(m.gateway_subscription_id)} or None)
            if not m.gateway_subscription_id:
                _membership_local_change(s, operation, m, payload)
                s.add(m)
                return ActionOutcome("done")
            m.pending_sync = True
            s.add(m)
            enqueue(s, order_id=None, operation=operation,
                    payload={"membership_id": m.id, "currency": self.billing.currency, **payload,
                             "chain": membership_chain(m.id)},
                    idempotency_key=make_key(f"membership-{m.id}", operation, f"v{version}"))
            row_ids = pending_in_chain(s, membership_chain(m.id))
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
            customer_number = s.get(Customer, m.customer_id).customer_number
        attempt = f"membership-{membership_id}-card-v{version}-{secrets.token_hex(4)}"
        if isinstance(card, ManualCard):
            # Tokenising creates nothing billable and the number must never be stored, so it cannot wait.
            try:
                card = self.gateway.tokenize_card(card, idempotency_key=make_key(attempt, "tokenize"))
            except PaymentError as exc:
                raise ActionRefused(f"The card was not saved: {exc}") from exc
        with self.db.write() as s:
            m = self._load(s, membership_id, version)
            c = s.get(Customer, m.customer_id)
            pm = card_row(s, c.id, self.gateway.name, card)
            chain = {"chain": membership_chain(m.id)}  # after the membership's earlier steps, in order
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
            row_ids, pm_id = pending_in_chain(s, membership_chain(m.id)), pm.id
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
            n = len(s.exec(select(Outbox.id).where(Outbox.operation == "payment.refund",
                                                   Outbox.idempotency_key.startswith(order.idempotency_key))).all())
            row = enqueue(s, order_id=None, operation="payment.refund",
                          payload={"payment_id": order.gateway_payment_id, "amount_cents": amount,
                                   "order_id": order_id, "reason": reason},
                          idempotency_key=make_key(order.idempotency_key, f"refund{n + 1}", str(amount)))
            audit.record(s, actor, "order.refund", "sales_order", order_id,
                         after={"amount_cents": amount, "reason": reason})
            row_id = row.id
        return self._run([row_id], "refund")


class StaleMembership(ActionRefused):
    """Another terminal changed the membership since this screen read it."""


_DOLLARS = re.compile(r"\$?(\d{1,7})(?:\.(\d{1,2}))?", re.ASCII)


def dollars_to_cents(text: str) -> int | None:
    """"12.50" or "$12.5" as 1250; None for anything else (no exponents, no third decimal, no zero)."""
    match = _DOLLARS.fullmatch(text.strip())
    if match is None:
        return None
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    return cents or None


def membership_chain(membership_id: int) -> str:
    """The outbox chain of one membership: its steps reach the gateway in the order they were made."""
    return f"membership-{membership_id}"


def pending_in_chain(s: Session, chain: str) -> list[int]:
    rows = s.exec(select(Outbox).where(Outbox.status == "pending", col(Outbox.order_id).is_(None))
                  .order_by(Outbox.id)).all()
    return [r.id for r in rows if (r.payload or {}).get("chain") == chain]


def _verb(operation: str) -> str:
    return {"subscription.pause": "pause", "subscription.resume": "resume", "subscription.cancel": "cancel",
            "subscription.keep": "keep the membership", "subscription.change_plan": "change the plan"}.get(
        operation, operation)


def _paid_cents(s: Session, order: SalesOrder) -> int:
    """What the gateway really took on the order: its charge row's result, not the order's plan."""
    for row in s.exec(select(Outbox).where(Outbox.order_id == order.id, Outbox.status == "done")):
        if row.operation in ("payment.charge", "payment.charge_present") and row.result:
            return int(row.result.get("amount_cents") or 0)
    return order.due_today_cents if order.gateway_payment_id else 0


def refunds_in_flight(s: Session, order_id: int) -> int:
    rows = s.exec(select(Outbox).where(Outbox.operation == "payment.refund", Outbox.status == "pending")).all()
    return sum(int(r.payload.get("amount_cents") or 0) for r in rows if r.payload.get("order_id") == order_id)
