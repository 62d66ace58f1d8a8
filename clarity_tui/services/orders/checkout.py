"""The checkout backend both flows use: a sale (SaleService) and a migration (MigrationService).

`OrderSteps` is one terminal's hold on its orders, as one actor: the guards bound to the terminal
(`owned`, `editable`, `payable`), the small changes every step makes (`touch`, `cancel_row`,
`limit_vehicles`, `garage_vehicle`), the terms and the signature, and what follows the money:
activation (vehicles on the membership, the session turned member, the operator's commission), recovery
and cancelling.

The steps here check no permission: the services' @guarded methods that call them do (sale.sell,
or legacy.migrate for a migration). Activation and recovery are open on purpose: crash recovery
must not depend on who is signed in when the app restarts.

Crash safety: money moves through the billing outbox (idempotent keys). Activation is recorded in
`OrderProgress.activated_at`; `recover()` (start-up, or reopening the sale) replays pending gateway
steps and activates paid orders, so a sale killed after the charge completes without a second charge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlmodel import Session, col, select

from clarity_tui.payments.errors import PaymentError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingService
from clarity_tui.services.commissions import CommissionSettings, earn
from clarity_tui.services.identity import display_name
from clarity_tui.services.orders.guards import (
    EDITABLE,
    PAID,
    SaleError,
    editable_order,
    get_order,
    order_key,
    owned_order,
    payable_order,
)
from clarity_tui.services.orders.views import OrderView, order_view, vehicle_option
from clarity_tui.services.plan_pricing import vehicle_limit
from clarity_tui.services.plates import InvalidPlate, validate_plate
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.vehicle_claims import release_order
from db.engine import Database
from db.models import (
    Customer,
    Membership,
    MembershipStatus,
    MembershipVehicle,
    OrderProgress,
    OrderState,
    Plan,
    SalesOrder,
    TermsVersion,
    Vehicle,
    VehicleSession,
    utcnow,
)
from db.models import Signature as SignatureRow

TERMS_HOW = {"read_to_end": "The customer read the terms to the end",
             "presented": "The attendant confirmed the terms were presented"}


class OrderSteps:
    """The order steps a sale and a migration share, for the orders `terminal` owns."""

    def __init__(self, db: Database, billing: BillingService, actor: Actor, *, terminal: str,
                 today: Callable[[], dt.date], zone: dt.tzinfo, tax: TaxSettings | None,
                 commissions: CommissionSettings | None = None) -> None:
        self.db = db
        self.billing = billing
        self.actor = actor
        self.terminal = terminal
        self.today = today
        self.zone = zone
        self.tax = tax
        # The site's commission settings (settings.wash.commissions; None: the defaults): activation credits them.
        self.commissions = commissions if commissions is not None else billing.commissions

    # --- reading and guarding ---------------------------------------------------------------------

    def order(self, order_id: int) -> OrderView:
        with self.db.read() as s:
            return self.view(s, get_order(s, order_id))

    def view(self, s: Session, order: SalesOrder) -> OrderView:
        return order_view(s, order, self.today, self.tax)

    def owned(self, s: Session, order_id: int) -> SalesOrder:
        return owned_order(s, order_id, self.terminal)

    def editable(self, s: Session, order_id: int) -> SalesOrder:
        return editable_order(s, order_id, self.terminal)

    def payable(self, s: Session, order_id: int) -> SalesOrder:
        return payable_order(s, order_id, self.terminal)

    # --- changing the order -------------------------------------------------------------------------

    @staticmethod
    def touch(s: Session, order: SalesOrder, state: str | None = None) -> None:
        """A change to the order: its version moves on (and its state, when given)."""
        if state is not None:
            order.state = state
        order.version += 1
        order.updated_at = utcnow()
        s.add(order)

    def cancel_row(self, s: Session, order: SalesOrder, action: str, extra: dict[str, object] | None) -> None:
        before = audit.snapshot(order, ["state"])
        order.state = OrderState.CANCELLED
        order.updated_at = utcnow()
        order.version += 1
        s.add(order)
        audit.record(s, self.actor, action, "sales_order", order.id, before=before,
                     after={"state": OrderState.CANCELLED, **(extra or {})})

    @staticmethod
    def progress(s: Session, order_id: int) -> OrderProgress:
        progress = s.get(OrderProgress, order_id)
        if progress is None:
            progress = OrderProgress(order_id=order_id)
            s.add(progress)
            s.flush()
        return progress

    @staticmethod
    def limit_vehicles(order: SalesOrder, plan: Plan) -> None:
        """A new membership keeps the first vehicles the plan takes (the session's car comes first)."""
        if len(order.vehicle_ids or []) > vehicle_limit(plan):
            order.vehicle_ids = list(order.vehicle_ids or [])[: vehicle_limit(plan)]

    def garage_vehicle(self, s: Session, customer: Customer, plate: str, region: str, make: str | None,
                       model: str | None, colour: str | None) -> Vehicle:
        """The customer's vehicle with this plate: found, taken from nobody's garage, or added."""
        try:
            normalized = validate_plate(plate)
        except InvalidPlate as exc:
            raise SaleError(str(exc)) from exc
        vehicle = s.exec(select(Vehicle).where(Vehicle.plate_normalized == normalized)).first()
        if vehicle is None:
            vehicle = Vehicle(customer_id=customer.id, plate=plate.strip().upper(), plate_region=region or "",
                              plate_normalized=normalized, make=make or None, model=model or None, colour=colour or None)
            s.add(vehicle)
            s.flush()
            audit.record(s, self.actor, "vehicle.added", "vehicle", vehicle.id,
                         after={"customer_id": customer.id, "plate": vehicle.plate})
        elif vehicle.customer_id is None:
            vehicle.customer_id = customer.id
            s.add(vehicle)
            audit.record(s, self.actor, "vehicle.assigned", "vehicle", vehicle.id, after={"customer_id": customer.id})
        elif vehicle.customer_id != customer.id:
            owner = s.get(Customer, vehicle.customer_id)
            whose = f"{display_name(owner.first_name, owner.last_name)} (#{owner.customer_number})" if owner else "another customer"
            raise SaleError(f"{vehicle.plate} is in the garage of {whose}: link that customer instead, or fix the "
                            "vehicle on their record first.")
        return vehicle

    def check_vehicles_free(self, s: Session, order: SalesOrder) -> None:
        """Before the money: none of the order's cars went on a membership on another terminal meanwhile."""
        for vid in order.vehicle_ids or []:
            v = s.get(Vehicle, vid)
            if v is None:
                continue
            taken = vehicle_option(s, v, order).on_membership
            if taken:
                raise SaleError(f"{v.plate} was put on {taken} on another terminal meanwhile: nothing was "
                                "charged. Go back to the board and open the session again.")

    # --- checkout, terms, signature ---------------------------------------------------------------

    def to_terms(self, order_id: int) -> OrderView:
        """The attendant pressed Checkout: the terms come next."""
        with self.db.write() as s:
            order = self.owned(s, order_id)
            if order.state != OrderState.CHECKOUT:
                raise SaleError("Review the checkout summary first.")
            self.touch(s, order, OrderState.TERMS)
            audit.record(s, self.actor, "order.checkout", "sales_order", order.id,
                         after={"due_today_cents": order.due_today_cents, "tax_cents": order.tax_cents})
            return self.view(s, order)

    def current_terms(self) -> TermsVersion:
        with self.db.read() as s:
            terms = s.exec(select(TermsVersion).where(TermsVersion.effective_at <= utcnow())
                           .order_by(col(TermsVersion.effective_at).desc(), col(TermsVersion.id).desc())).first()
            if terms is None:
                raise SaleError("No membership terms are set up: ask a manager to load the terms before selling.")
            return terms

    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView:
        if how not in TERMS_HOW:
            raise ValueError(f"how must be one of {sorted(TERMS_HOW)}")  # a programming error, not advice
        with self.db.write() as s:
            order = self.owned(s, order_id)
            if order.state != OrderState.TERMS:
                raise SaleError("The terms can only be accepted after Checkout.")
            terms = s.get(TermsVersion, terms_version_id)
            if terms is None:
                raise SaleError("Those terms no longer exist: show the terms again.")
            progress = self.progress(s, order_key(order))
            progress.terms_version_id, progress.terms_accepted_how = terms.id, how
            progress.terms_accepted_at = progress.updated_at = utcnow()
            s.add(progress)
            self.touch(s, order)
            audit.record(s, self.actor, "order.terms_accepted", "sales_order", order.id,
                         after={"terms": terms.label, "sha256": terms.sha256, "how": how})
            return self.view(s, order)

    def decline_terms(self, order_id: int) -> OrderView:
        """The customer declined: the order is cancelled; nothing was or will be charged."""
        with self.db.write() as s:
            order = self.owned(s, order_id)
            if order.state not in (*EDITABLE, OrderState.SIGNED):
                raise SaleError("Payment has already started: it can no longer be declined here.")
            self.cancel_row(s, order, "order.terms_declined", None)
            return self.view(s, order)

    def record_signature(self, order_id: int, strokes: Sequence[Sequence[Sequence[float]]], svg: str, *,
                         device: str, signer_name: str | None = None) -> OrderView:
        """Store the signature with the accepted terms' version hash, the time, the lane and the device."""
        if not any(len(stroke) for stroke in strokes):
            raise SaleError("The signature is empty: ask the customer to sign on the pad.")
        with self.db.write() as s:
            order = self.owned(s, order_id)
            progress = self.progress(s, order_key(order))
            terms = s.get(TermsVersion, progress.terms_version_id) if progress.terms_version_id else None
            if order.state != OrderState.TERMS or terms is None or terms.id is None:
                raise SaleError("The terms must be accepted before signing.")
            customer = s.get(Customer, order.customer_id) if order.customer_id else None
            row = SignatureRow(order_id=order.id, customer_id=order.customer_id, terms_version_id=terms.id,
                               terms_sha256=terms.sha256, strokes=[[list(p) for p in st] for st in strokes],
                               svg=svg, lane_id=order.lane_id, device=device[:120],
                               signer_name=signer_name or (display_name(customer.first_name, customer.last_name)
                                                           if customer else None))
            s.add(row)
            s.flush()
            progress.signature_id, progress.updated_at = row.id, utcnow()
            s.add(progress)
            self.touch(s, order, OrderState.SIGNED)
            audit.record(s, self.actor, "order.signed", "sales_order", order.id,
                         after={"signature_id": row.id, "terms_sha256": terms.sha256, "device": row.device,
                                "lane_id": order.lane_id})
            return self.view(s, order)

    # --- after the money --------------------------------------------------------------------------

    def not_started(self, order_id: int, reason: str | None) -> None:
        """After a decline the new membership is not a member's (billing marks it past due): the
        board must not show the customer as a member or past due while another card is tried."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            m = s.get(Membership, order.membership_id) if order and order.membership_id else None
            if m is None or m.status == MembershipStatus.CANCELLED:
                return
            if s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == m.id)).first() is not None:
                return  # an activated membership is never touched here
            before = audit.snapshot(m, ["status"])
            m.status, m.updated_at = MembershipStatus.CANCELLED, utcnow()
            s.add(m)
            release_order(s, order_id)
            audit.record(s, self.actor, "membership.not_started", "membership", m.id, before=before,
                         after={"status": MembershipStatus.CANCELLED, "reason": reason})

    def activate(self, order_id: int) -> bool:
        """Attach the membership to the customer's vehicles and turn the session member. Idempotent.

        Returns True once the order is activated (False while it is not paid yet)."""
        with self.db.write() as s:
            # Locked: two processes activating at once (a restart's recovery, a retried Agree) take turns,
            # and the second finds it done instead of adding the same cars (and commission) again.
            order = s.get(SalesOrder, order_id, with_for_update=True)
            if order is None:
                raise SaleError(f"Order {order_id} no longer exists.")
            progress = self.progress(s, order_id)
            if progress.activated_at is not None:
                return True
            if order.state not in PAID or order.membership_id is None:
                return False
            m = s.get(Membership, order.membership_id)
            if m is None or m.id is None:
                raise SaleError(f"The membership of order {order_id} no longer exists: open the customer's record.")
            have = {mv.vehicle_id for mv in s.exec(select(MembershipVehicle)
                                                   .where(MembershipVehicle.membership_id == m.id))}
            for vid in order.vehicle_ids or []:
                if vid not in have:
                    s.add(MembershipVehicle(membership_id=m.id, vehicle_id=vid))
            if order.session_id:
                vs = s.get(VehicleSession, order.session_id)
                if vs is not None:
                    vs.customer_id = order.customer_id
                    if not vs.vehicle_id and order.vehicle_ids:
                        vs.vehicle_id = order.vehicle_ids[0]
                    vs.version += 1
                    s.add(vs)
            progress.activated_at = progress.updated_at = utcnow()
            s.add(progress)
            order.updated_at = utcnow()
            s.add(order)
            earn(s, order, self.commissions)  # the operator's commission, with the activation or not at all
            audit.record(s, self.actor, "order.activated", "sales_order", order.id,
                         after={"membership_id": m.id, "vehicle_ids": list(order.vehicle_ids or []),
                                "pending_sync": order.state == OrderState.PENDING_SYNC})
            return True

    def recover(self, *, replay: bool = True) -> list[int]:
        """Start-up: replay gateway steps left pending (unless the caller just did), then activate
        every paid, signed, unactivated order. Returns the ids of the orders activated now."""
        if replay:
            try:
                self.billing.processor.replay_pending()
            except PaymentError:
                pass  # still offline: those orders stay pending sync and are activated below
        with self.db.read() as s:
            ids = s.exec(
                select(OrderProgress.order_id).join(SalesOrder, col(SalesOrder.id) == OrderProgress.order_id)
                .where(col(OrderProgress.activated_at).is_(None), col(OrderProgress.signature_id).is_not(None),
                       col(SalesOrder.state).in_(PAID))
                .order_by(col(OrderProgress.order_id))).all()
        return [order_id for order_id in ids if self.activate(order_id)]

    def cancel(self, order_id: int) -> OrderView:
        """The attendant abandons the order before any money moved."""
        with self.db.read() as s:
            state = self.owned(s, order_id).state
        if state in (OrderState.CANCELLED, *PAID):
            return self.order(order_id)
        if state == OrderState.PAYMENT_PENDING:
            try:
                self.billing.cancel_order(order_id)
            except PaymentError as exc:
                raise SaleError(str(exc)) from exc
            return self.order(order_id)
        with self.db.write() as s:
            order = self.owned(s, order_id)
            self.cancel_row(s, order, "order.cancel", None)
            return self.view(s, order)
