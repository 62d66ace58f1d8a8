"""Selling a single wash at the lane (issue 18 item 2): a `SalesOrder` of kind "wash", its lines in
`OrderLine`, paid card-present on the reader through the outbox.

    draft            open_for_session -> choose (a package and extras; a member: what the plan lacks, at the
                     lane where their visit is recorded; a member over the limit pays like anyone)
                     -> set_receipt (a mobile number or an email; any time before the receipt is sent)
    payment_pending  pay: the charge is an outbox row (`card_present.wash`, services/wash_payment.py)
                     run at once with the customer at the reader; a decline leaves the order here with
                     its message (choose again, or pay again: a new attempt gets a new key)
    completed        the payment's own transaction completed the order and queued the car
                     (services/wash_ledger.on_wash_paid); the receipt is then sent once, off the
                     payment's path (services/receipts.py)
    cancelled        cancel, before any money moved (a charge in doubt is looked up and refunded)

The views and who counts as a member are in orders/wash_views.py. Like SaleService: `terminal` owns the orders it opens, every step that changes an order checks sale.sell
(@guarded), every step is audited, and the order carries operator, lane and terminal for the reports.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from clarity_tui.services import audit, sales_tax
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingService
from clarity_tui.services.entitlement import DEFAULT_GRACE_DAYS
from clarity_tui.services.orders.guards import (
    EDITABLE,
    STALE_AFTER,
    SaleError,
    busy_error,
    get_order,
    open_order,
    order_key,
    owned_order,
    same_operator,
)
from clarity_tui.services.orders.wash_views import WashOrderView, WashPayResult, member_plan, wash_order_view
from clarity_tui.services.permissions import Permission, guarded
from clarity_tui.services.plan_pricing import money
from clarity_tui.services.receipts import ReceiptSender, receipt_lines, set_contact
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.wash_menu import MenuError, check_choice, included_codes
from clarity_tui.sitetime import stored_utc
from db.engine import Database
from db.models import (
    OrderKind,
    OrderLine,
    OrderState,
    Outbox,
    OutboxStatus,
    Plan,
    SalesOrder,
    VehicleSession,
    WashItem,
    WashItemKind,
    utcnow,
)

if TYPE_CHECKING:
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.wiring import Services

CHOOSABLE = (OrderState.DRAFT, OrderState.PAYMENT_PENDING)


class WashSaleError(SaleError):
    """A refused step of a single-wash sale; str() says what happened and what to do."""


class WashSaleService:
    """Every step of a single wash at the lane, for the orders `terminal` owns."""

    def __init__(self, db: Database, gateway: PaymentGateway, actor: Actor, *, terminal: str | None = None,
                 phone_region: str = "US", today: Callable[[], dt.date] | None = None, currency: str = "usd",
                 zone: dt.tzinfo = dt.UTC, tax: TaxSettings | None = None, grace_days: int = DEFAULT_GRACE_DAYS,
                 receipts: ReceiptSender | None = None, permission: Permission = Permission.SELL,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = db
        self.gateway = gateway
        self.actor = actor
        self.permission = permission
        self.terminal: str = terminal or actor.terminal or "terminal"
        self.phone_region = phone_region
        self.today = today or dt.date.today
        self.clock = clock or utcnow_aware
        self.currency = currency
        self.zone = zone
        self.tax = tax
        self.grace_days = grace_days
        self.billing = BillingService(db, gateway, actor, currency=currency, tax=tax)
        self.receipts = receipts

    @classmethod
    def from_services(cls, services: Services, actor: Actor | None = None) -> WashSaleService:
        """Built from the running terminal's services, for `actor` (the terminal's system actor if None)."""
        settings = services.settings
        actor = actor or Actor.system("wash-sale", services.terminal)
        receipts = ReceiptSender(services.db, sms=services.messaging, mailer=services.mailer, actor=actor,
                                 zone=settings.site.zone, tax=settings.billing.tax)
        return cls(services.db, services.gateway, actor, terminal=services.terminal,
                   phone_region=settings.site.phone_region, today=services.today, zone=settings.site.zone,
                   currency=settings.payments.currency, tax=settings.billing.tax,
                   grace_days=settings.billing.grace_days, receipts=receipts, clock=services.now)

    # --- reading -----------------------------------------------------------------------------------

    def order(self, order_id: int) -> WashOrderView:
        with self.db.read() as s:
            return self._view(s, self._wash_order(s, order_id))

    def _wash_order(self, s: Session, order_id: int) -> SalesOrder:
        order = get_order(s, order_id)
        if order.kind != OrderKind.WASH:
            raise WashSaleError(f"Order {order_id} is not a single wash: open it from the session instead.")
        return order

    def _owned(self, s: Session, order_id: int) -> SalesOrder:
        self._wash_order(s, order_id)
        return owned_order(s, order_id, self.terminal)

    def _plan(self, s: Session, order: SalesOrder) -> Plan | None:
        return self._member(s, order)[0]

    def _member(self, s: Session, order: SalesOrder) -> tuple[Plan | None, str | None]:
        vs = s.get(VehicleSession, order.session_id) if order.session_id else None
        return member_plan(s, vs, now=self.clock(), zone=self.zone, grace_days=self.grace_days)

    def _view(self, s: Session, order: SalesOrder) -> WashOrderView:
        return wash_order_view(s, order, self._plan(s, order), self.tax)

    # --- opening -----------------------------------------------------------------------------------

    @guarded
    def open_for_session(self, session_id: int) -> WashOrderView:
        """This terminal's open wash order for the session (or the one already paid), or a new draft.
        Raises OrderBusy when another terminal holds the session's open order."""
        try:
            with self.db.write() as s:
                vs = s.get(VehicleSession, session_id)
                if vs is None:
                    raise WashSaleError(f"Session {session_id} no longer exists: go back to the board.")
                paid = s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id,
                                                       SalesOrder.kind == OrderKind.WASH,
                                                       SalesOrder.state == OrderState.COMPLETED)
                              .order_by(col(SalesOrder.id).desc())).first()
                if paid is not None:
                    return self._view(s, paid)  # one wash per session: it is paid, show it
                existing = open_order(s, session_id)
                if existing is not None:
                    mine = existing.terminal == self.terminal and same_operator(existing, self.actor)
                    if mine and existing.kind == OrderKind.WASH:
                        return self._view(s, existing)
                    if mine:
                        raise WashSaleError(f"A membership sale for {vs.plate} is open on this terminal: finish or "
                                            "cancel it first, then sell the single wash.")
                    if existing.state in EDITABLE and utcnow() - stored_utc(existing.updated_at) > STALE_AFTER:
                        _cancel_row(s, self.actor, existing, "order.taken_over", {"by": self.terminal})
                        s.flush()
                    else:
                        raise busy_error(s, existing, vs, self.terminal, self.zone)
                order = SalesOrder(idempotency_key=f"wash-{uuid.uuid4().hex}", kind=OrderKind.WASH,
                                   state=OrderState.DRAFT, session_id=session_id, lane_id=vs.lane_id,
                                   terminal=self.terminal, operator_id=self.actor.operator_id,
                                   customer_id=vs.customer_id, card_present=True)
                s.add(order)
                s.flush()
                audit.record(s, self.actor, "wash.opened", "sales_order", order.id,
                             after={"session_id": session_id, "plate": vs.plate, "customer_id": vs.customer_id})
                return self._view(s, order)
        except IntegrityError:
            # Another terminal opened an order for this session in the same moment.
            with self.db.read() as s:
                other = open_order(s, session_id)
                vs = s.get(VehicleSession, session_id)
                if other is None or vs is None:
                    raise WashSaleError("Another terminal changed this car at the same moment: try again.") from None
                raise busy_error(s, other, vs, self.terminal, self.zone) from None

    # --- the wash ------------------------------------------------------------------------------------

    @guarded
    def choose(self, order_id: int, package_code: str | None, extras: Sequence[str]) -> WashOrderView:
        """The package and extras (priced now, taxed as the site's sales tax says). Raises MenuError."""
        with self.db.write() as s:
            order = self._owned(s, order_id)
            self._check_choosable(s, order)
            plan, state = self._member(s, order)
            package, chosen = check_choice(s, package_code, extras, plan_id=plan.id if plan else None)
            if plan is not None and package is None and state == "pre_gate":
                # The visit (which the extras go with) is recorded when the car reaches a lane.
                raise WashSaleError(f"{plan.name} members' extras are sold at the lane, where their visit is "
                                    "recorded: sell them there, or choose a package.")
            s.exec(delete(OrderLine).where(col(OrderLine.order_id) == order.id))
            items = ([package] if package is not None else []) + chosen
            for item in items:
                assert item.id is not None
                s.add(OrderLine(order_id=order_key(order), item_id=item.id, kind=item.kind, code=item.code,
                                name=item.name, amount_cents=item.price_cents))
            before = audit.snapshot(order, ["subtotal_cents", "tax_cents", "due_today_cents"])
            taxed = sales_tax.compute(self.tax, sum(i.price_cents for i in items))
            order.subtotal_cents, order.discount_cents = sum(i.price_cents for i in items), 0
            order.tax_cents, order.due_today_cents = taxed.tax_cents, taxed.total_cents
            order.state, order.last_error = OrderState.DRAFT, None
            _touch(s, order)
            audit.record(s, self.actor, "wash.chosen", "sales_order", order.id, before=before,
                         after={"package": package.code if package else None, "extras": [c.code for c in chosen],
                                "member_plan": plan.code if plan else None,
                                **(audit.snapshot(order, ["subtotal_cents", "tax_cents", "due_today_cents"]) or {})})
            s.flush()
            return self._view(s, order)

    def _check_choosable(self, s: Session, order: SalesOrder) -> None:
        if order.state == OrderState.COMPLETED:
            raise WashSaleError("This wash is already paid: it can no longer be changed.")
        if order.state not in CHOOSABLE:
            raise WashSaleError("This wash can no longer be changed: start again from the session.")
        if s.exec(select(Outbox.id).where(Outbox.order_id == order.id,
                                          Outbox.status == OutboxStatus.PENDING)).first() is not None:
            raise WashSaleError("The card payment is not finished yet: take the payment again to finish it (nothing "
                                "is charged twice), or cancel the wash.")

    @guarded
    def set_receipt(self, order_id: int, contact: str) -> WashOrderView:
        """Where the receipt goes: a mobile number (text message) or an email address. Raises ReceiptError.
        Given after the payment, the receipt goes at once."""
        with self.db.write() as s:
            order = self._owned(s, order_id)
            set_contact(s, order, contact, self.actor, phone_region=self.phone_region)
            paid = order.state == OrderState.COMPLETED
            view = self._view(s, order)
        if paid:
            self._send_receipt(order_id)
        return view

    # --- paying --------------------------------------------------------------------------------------

    @guarded
    def pay(self, order_id: int) -> WashPayResult:
        """Take the payment on the reader (run inside `card_present.reader_attended`). Never charges twice:
        the charge is an outbox row; a decline comes back with the order kept (pay again, or choose again)."""
        from clarity_tui.services.wash_ledger import on_wash_paid
        from clarity_tui.services.wash_payment import enqueue_wash_charge

        with self.db.write() as s:
            order = self._owned(s, order_id)
            if order.state == OrderState.COMPLETED:
                return WashPayResult(order.state, None, True)
            if order.state not in (*CHOOSABLE, OrderState.PENDING_SYNC):  # pending sync: the same row again
                raise WashSaleError("This wash cannot be paid now: start again from the session.")
            lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(col(OrderLine.id))).all()
            if not lines:
                raise WashSaleError("Choose the package (and any extras) before taking the payment.")
            plan, visit_state = self._member(s, order)
            package = next((ln.code for ln in lines if ln.kind == WashItemKind.PACKAGE), None)
            try:  # still on sale, and not in the plan since it was chosen
                package_item, extras = check_choice(s, package, [ln.code for ln in lines
                                                                 if ln.kind == WashItemKind.EXTRA],
                                                    plan_id=plan.id if plan else None)
            except MenuError as exc:
                raise WashSaleError(f"{exc} Nothing was charged.") from exc
            _check_prices(s, order, lines, [*([package_item] if package_item else []), *extras])
            if plan is not None and visit_state == "visit":
                self._record_visit(s, order)
            before = audit.snapshot(order, ["state"])
            order.state, order.last_error = OrderState.PAYMENT_PENDING, None
            _touch(s, order)
            audit.record(s, self.actor, "wash.pay", "sales_order", order.id, before=before,
                         after={"state": order.state, "due_today_cents": order.due_today_cents,
                                "tax_cents": order.tax_cents})
            free = order.due_today_cents <= 0
            if free:  # everything chosen costs nothing: no card to take
                order.completed_at = utcnow()
                on_wash_paid(s, order)
            else:
                enqueue_wash_charge(s, order, currency=self.currency)
        if not free:
            self.billing.processor.run_order(order_id, wait=5.0)
            self.billing.run_settlements(order_id)
        with self.db.read() as s:
            order = get_order(s, order_id)
            state, message = order.state, order.last_error
        if state == OrderState.COMPLETED:
            self._send_receipt(order_id)
            return WashPayResult(state, None, True)
        return WashPayResult(state, message, False)

    def _record_visit(self, s: Session, order: SalesOrder) -> None:
        """A member's extras go with the visit: one not recorded at the read (the car became entitled at the
        lane: its card updated, its plan upgraded) is recorded now, so the wash is not taken for a retail one."""
        from clarity_tui.services.entitlement import EntitlementPolicy
        from clarity_tui.services.visits import record_lane_read

        vs = s.get(VehicleSession, order.session_id) if order.session_id else None
        if vs is not None:
            record_lane_read(s, vs, now=self.clock(), zone=self.zone,
                             policy=EntitlementPolicy(grace_days=self.grace_days, zone=self.zone))

    def _send_receipt(self, order_id: int) -> None:
        if self.receipts is not None:
            self.receipts.send_later(order_id)

    @guarded
    def cancel(self, order_id: int) -> WashOrderView:
        """The customer does not want the wash: cancelled before any money moved (a charge whose answer
        was lost is looked up and refunded)."""
        with self.db.write() as s:
            order = self._owned(s, order_id)
            if order.state == OrderState.COMPLETED:
                raise WashSaleError("This wash is paid: a manager refunds it from the order; it cannot be cancelled.")
            charged = s.exec(select(Outbox.id).where(Outbox.order_id == order.id)).first() is not None
            if not charged:
                _cancel_row(s, self.actor, order, "wash.cancelled", None)
                return self._view(s, order)
        from clarity_tui.payments.errors import GatewayRejected

        try:
            self.billing.cancel_order(order_id)
        except GatewayRejected as exc:
            raise WashSaleError(str(exc)) from exc
        with self.db.write() as s:
            order = get_order(s, order_id)
            audit.record(s, self.actor, "wash.cancelled", "sales_order", order.id, after={"note": order.last_error})
            return self._view(s, order)

    def receipt_text(self, order_id: int) -> str:
        """The receipt as sent (the card by brand and last 4 only)."""
        with self.db.read() as s:
            return "\n".join(receipt_lines(s, self._wash_order(s, order_id), zone=self.zone, tax=self.tax))


def utcnow_aware() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_prices(s: Session, order: SalesOrder, lines: Sequence[OrderLine], items: Sequence[WashItem]) -> None:
    """A price changed on the menu since the wash was chosen: not charged at the old one. A charge already
    in flight (its answer lost) keeps the amount the customer agreed to: it is replayed, never changed."""
    if s.exec(select(Outbox.id).where(Outbox.order_id == order.id,
                                      Outbox.status == OutboxStatus.PENDING)).first() is not None:
        return
    prices = {item.code: item for item in items}
    for line in lines:
        item = prices.get(line.code)
        if item is not None and item.price_cents != line.amount_cents:
            raise WashSaleError(f"The price of {item.name} changed from {money(line.amount_cents)} to "
                                f"{money(item.price_cents)} since it was chosen: choose the wash again to show "
                                "the customer the new total. Nothing was charged.")


def _touch(s: Session, order: SalesOrder) -> None:
    order.version += 1
    order.updated_at = utcnow()
    s.add(order)


def _cancel_row(s: Session, actor: Actor, order: SalesOrder, action: str, extra: dict[str, object] | None) -> None:
    before = audit.snapshot(order, ["state"])
    order.state = OrderState.CANCELLED
    _touch(s, order)
    audit.record(s, actor, action, "sales_order", order.id, before=before,
                 after={"state": OrderState.CANCELLED, **(extra or {})})


__all__ = ["WashOrderView", "WashPayResult", "WashSaleError", "WashSaleService", "included_codes", "member_plan"]
