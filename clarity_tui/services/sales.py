"""Selling a membership at the lane: the sale order as a state machine (headless).

The screens, the CLI and tests drive the same calls:

    draft     open_for_session -> choose_plan -> set_new_customer | link_customer
              -> (family) add_vehicle / remove_vehicle -> choose_card | attach_reader_card | key_card
              -> apply_promotion | clear_promotion
    checkout  review            (amounts and next billing date fixed on the order)
    terms     checkout          (the terms are shown; decline_terms cancels: nothing charged)
              accept_terms      (the customer read to the end, or the attendant confirms they were presented)
    signed    record_signature  (strokes + SVG + terms sha256, time, lane, device)
    payment_pending -> pay      (BillingService: charge today, then the subscription; a decline leaves
              the order here with its message: choose another card and pay again)
    completed | pending_sync -> activate (vehicles on the membership, the session turned member)

A current member choosing another plan gets a PLAN_CHANGE order: same screens, and paying
changes the plan of the existing membership (the gateway prorates) instead of charging today.

Concurrency: one open order per vehicle session (a partial unique index, migration 0004). Two
terminals opening the sale at the same moment: one insert wins, the other gets `OrderBusy`
naming who is selling. Each order belongs to the terminal that opened it; a stale draft left
by a dead terminal is taken over after `STALE_AFTER`.

Crash safety: money moves through the billing outbox (idempotent keys). Activation is recorded
in `OrderProgress.activated_at`; `recover()` (start-up, or reopening the sale) replays pending
gateway steps and activates paid orders, so a sale killed after the charge completes without a
second charge.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.errors import PaymentError, PromotionInvalid
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingOutcome, BillingService, next_period
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.memberships import CURRENT_STATUSES
from clarity_tui.services.permissions import Permission, guarded
from clarity_tui.services.plan_changes import PlanChangeRefused, PlanChanges, check as check_plan_change, order_quote
from clarity_tui.services.plan_pricing import full_message, itemised, money, vehicle_limit
from clarity_tui.services.sale_views import (  # the sale's read side, re-exported from here
    CardOption,
    OrderView,
    PayResult,
    PlanOption,
    VehicleOption,
    _plan_option,
    _vehicle_desc,
)
from clarity_tui.services.vehicle_claims import release_order
from clarity_tui.services.plates import InvalidPlate, validate_plate
from clarity_tui.services.promotions import check as check_promotion
from clarity_tui.services.promotions import find_code, plan_subtotal, price_with
from clarity_tui.services import sales_tax
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.sitetime import local_time, stored_utc
from db.models import (
    OPEN_ORDER_STATES,
    Customer,
    Membership,
    MembershipStatus,
    MembershipVehicle,
    Operator,
    OrderKind,
    OrderProgress,
    OrderState,
    PaymentMethod,
    Plan,
    Promotion,
    SalesOrder,
    TermsVersion,
    Vehicle,
    VehicleSession,
    utcnow,
)
from db.models import Signature as SignatureRow

# A draft nobody touched for this long may be taken over by another terminal.
STALE_AFTER = dt.timedelta(minutes=15)
EDITABLE = (OrderState.DRAFT, OrderState.CHECKOUT, OrderState.TERMS)
TERMS_HOW = {"read_to_end": "The customer read the terms to the end",
             "presented": "The attendant confirmed the terms were presented"}


class SaleError(Exception):
    """A refused step; str() says what happened and what to do. The order is unchanged."""


class OrderBusy(SaleError):
    """Another terminal is selling to this vehicle."""


class OrderTaken(SaleError):
    """This order is no longer ours (cancelled, taken over, or finished elsewhere)."""


class SaleService:
    """Every step of a sale at the lane. `terminal` owns the orders it opens. Each @guarded step checks
    `permission` (sale.sell) for the actor before anything else; reads and crash recovery are open."""

    def __init__(self, db: Any, gateway: PaymentGateway, actor: Actor, *, terminal: str | None = None,
                 phone_region: str = "US", today: Callable[[], dt.date] | None = None,
                 currency: str = "usd", zone: dt.tzinfo = dt.UTC, tax: TaxSettings | None = None,
                 permission: Permission = Permission.SELL) -> None:
        self.db = db
        self.gateway = gateway
        self.actor = actor
        self.permission = permission  # every @guarded step; a migration's steps check legacy.migrate
        self.terminal = terminal or actor.terminal or "terminal"
        self.phone_region = phone_region
        self.today = today or dt.date.today
        self.zone = zone  # the site's clock, for times shown to the attendant
        self.tax = tax  # the site's sales tax (settings.billing.tax); None: no tax
        self.billing = BillingService(db, gateway, actor, currency=currency, tax=tax)
        self.customers = CustomerService(db, phone_region=phone_region, gateway=gateway, today=self.today)

    @classmethod
    def for_app(cls, app: Any) -> SaleService:
        """Built from a running app's settings, database and actor (the gateway is the app's, if it has one)."""
        from clarity_tui.payments import make_gateway

        gateway = getattr(app, "gateway", None) or make_gateway(app.settings, app.db)
        return cls(app.db, gateway, app.actor, terminal=app.settings.terminal_id,
                   phone_region=app.settings.site.phone_region, today=app.today, zone=app.settings.site.zone,
                   currency=app.settings.payments.currency, tax=app.settings.billing.tax)

    # --- opening ------------------------------------------------------------------------------

    @guarded
    def open_for_session(self, session_id: int) -> OrderView:
        """Resume this terminal's open order for the session, or start a draft. Raises OrderBusy."""
        try:
            with self.db.write() as s:
                vs = s.get(VehicleSession, session_id)
                if vs is None:
                    raise SaleError(f"Session {session_id} no longer exists: go back to the board.")
                existing = self._open_order(s, session_id)
                if existing is not None:
                    if existing.terminal == self.terminal and self._same_operator(existing):
                        return self._view(s, existing)
                    if existing.state in EDITABLE and utcnow() - stored_utc(existing.updated_at) > STALE_AFTER:
                        self._cancel_row(s, existing, "order.taken_over", {"by": self.terminal})
                        s.flush()
                    else:
                        raise self._busy(s, existing, vs)
                paid = self._paid_not_activated(s, session_id)
                if paid is not None and paid.terminal == self.terminal:
                    return self._view(s, paid)  # paid before a crash: the flow finishes it
                order = SalesOrder(idempotency_key=f"sale-{uuid.uuid4().hex}", kind=OrderKind.SALE,
                                   state=OrderState.DRAFT, session_id=session_id, lane_id=vs.lane_id,
                                   terminal=self.terminal, operator_id=self.actor.operator_id,
                                   customer_id=vs.customer_id, legacy_member_id=vs.legacy_member_id,
                                   vehicle_ids=[vs.vehicle_id] if vs.vehicle_id else [])
                s.add(order)
                s.flush()
                if order.customer_id:
                    self._default_card(s, order)
                s.add(OrderProgress(order_id=order.id))  # type: ignore[arg-type]
                audit.record(s, self.actor, "order.opened", "sales_order", order.id,
                             after={"session_id": session_id, "plate": vs.plate, "customer_id": vs.customer_id})
                s.flush()
                return self._view(s, order)
        except IntegrityError:
            # Another terminal inserted its open order for this session in the same moment.
            with self.db.read() as s:
                existing = self._open_order(s, session_id)
                vs = s.get(VehicleSession, session_id)
                if existing is None or vs is None:
                    raise SaleError("Another terminal changed this vehicle at the same moment: try again.") from None
                raise self._busy(s, existing, vs) from None

    def _same_operator(self, order: SalesOrder) -> bool:
        """An order resumes for the operator who opened it (after an idle sign-out too), not for
        whoever signs in next at the same terminal. Orders opened without sign-in belong to the terminal."""
        return order.operator_id is None or self.actor.operator_id is None or order.operator_id == self.actor.operator_id

    @staticmethod
    def _open_order(s: Session, session_id: int) -> SalesOrder | None:
        return s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id,
                                               col(SalesOrder.state).in_(OPEN_ORDER_STATES))).first()

    @staticmethod
    def _paid_not_activated(s: Session, session_id: int) -> SalesOrder | None:
        return s.exec(select(SalesOrder).join(OrderProgress, col(OrderProgress.order_id) == SalesOrder.id)
                      .where(SalesOrder.session_id == session_id,
                             col(SalesOrder.state).in_([OrderState.COMPLETED, OrderState.PENDING_SYNC]),
                             col(OrderProgress.signature_id).is_not(None), col(OrderProgress.activated_at).is_(None))
                      .order_by(col(SalesOrder.id).desc())).first()

    def _busy(self, s: Session, other: SalesOrder, vs: VehicleSession) -> OrderBusy:
        since = local_time(other.created_at, self.zone, "%H:%M")
        money_moving = other.state in (OrderState.PAYMENT_PENDING, OrderState.PAID)
        what = "is taking the payment for" if money_moving else "is already selling a membership to"
        if other.terminal == self.terminal:
            operator = s.get(Operator, other.operator_id) if other.operator_id else None
            who = operator.name if operator else "Another operator"
            return OrderBusy(f"{who} {what} {vs.plate} on this terminal (started {since}). "
                             f"Only one sale per vehicle: {who} signs back in to finish or cancel it.")
        return OrderBusy(f"Terminal {other.terminal or '?'} {what} {vs.plate} (started {since}). "
                         "Only one sale per vehicle: let them finish, or ask them to cancel theirs.")

    def order(self, order_id: int) -> OrderView:
        with self.db.read() as s:
            return self._view(s, self._get(s, order_id))

    # --- plans ---------------------------------------------------------------------------------

    def plans(self, customer_id: int | None = None) -> list[PlanOption]:
        """Plans on sale, cheapest tier first, each marked against the customer's current plan."""
        with self.db.read() as s:
            current = self._current_membership(s, customer_id) if customer_id else None
            cur_plan = s.get(Plan, current.plan_id) if current else None
            out = []
            for p in s.exec(select(Plan).where(Plan.active == True).order_by(col(Plan.tier), col(Plan.price_cents))):  # noqa: E712
                relation = ""
                if cur_plan is not None:
                    if p.id == cur_plan.id:
                        relation = "current"
                    else:
                        up = (p.tier, p.price_cents) > (cur_plan.tier, cur_plan.price_cents)
                        relation = "upgrade" if up else "downgrade"
                out.append(_plan_option(p, relation, sales_tax.price_note(self.tax)))
            return out

    @guarded
    def choose_plan(self, order_id: int, plan_code: str) -> OrderView:
        with self.db.write() as s:
            order = self._editable(s, order_id)
            plan = s.exec(select(Plan).where(Plan.code == plan_code.upper(), Plan.active == True)).first()  # noqa: E712
            if plan is None:
                raise SaleError(f"Plan {plan_code} is not on sale: choose one of the plans shown.")
            current = self._current_membership(s, order.customer_id) if order.customer_id else None
            if current is not None and current.plan_id == plan.id:
                raise SaleError(f"The customer is already on {plan.name}: choose another plan to upgrade or "
                                "downgrade, or go back.")
            self._set_plan(s, order, plan, current)
            return self._view(s, order)

    def _set_plan(self, s: Session, order: SalesOrder, plan: Plan, current: Membership | None) -> None:
        before = audit.snapshot(order, ["plan_id", "kind"])
        order.plan_id = plan.id
        order.kind = OrderKind.PLAN_CHANGE if current is not None else OrderKind.SALE
        order.membership_id = current.id if current is not None else None
        order.from_plan_id = current.plan_id if current is not None else None
        if current is not None:
            order.promotion_id = None  # promotions are for new memberships
            # The plan change keeps the member's vehicles: a plan without room for them is refused.
            ids = [mv.vehicle_id for mv in s.exec(select(MembershipVehicle)
                                                  .where(MembershipVehicle.membership_id == current.id))]
            order.vehicle_ids = sorted(set(ids) | set(order.vehicle_ids or []))
            try:
                check_plan_change(current, s.get(Plan, current.plan_id), plan, max(1, len(ids)))  # type: ignore[arg-type]
            except PlanChangeRefused as exc:
                raise SaleError(str(exc)) from exc
        self._limit_vehicles(order, plan)
        self._touch(s, order, OrderState.DRAFT)
        audit.record(s, self.actor, "order.plan", "sales_order", order.id, before=before,
                     after={"plan": plan.code, "kind": order.kind})

    @staticmethod
    def _limit_vehicles(order: SalesOrder, plan: Plan) -> None:
        """A new membership keeps the first vehicles the plan takes (the session's car comes first)."""
        if len(order.vehicle_ids or []) > vehicle_limit(plan):
            order.vehicle_ids = list(order.vehicle_ids or [])[: vehicle_limit(plan)]

    # --- the customer ------------------------------------------------------------------------

    @guarded
    def set_new_customer(self, order_id: int, form: ContactForm) -> OrderView:
        """Create the customer from the quick form (validated by the customers service) and link them.

        Raises customers.ValidationFailed with a message per field; nothing is created then."""
        with self.db.read() as s:
            order = self._editable(s, order_id)
            if order.customer_id is not None:
                raise SaleError("This sale already has a customer.")
        from clarity_tui.services.customer_duplicates import create_or_reuse

        # A retry (after a failed step or a cancelled sale) reuses the customer the first attempt created;
        # a phone or email of somebody else raises DuplicateCustomer (the screen offers that customer).
        customer = create_or_reuse(self.customers, self.actor, form, order_id=order_id)
        return self.link_customer(order_id, customer.id)  # type: ignore[arg-type]

    @guarded
    def link_customer(self, order_id: int, customer_id: int) -> OrderView:
        """Attach a customer (new or found by search); the session's vehicle joins their garage."""
        with self.db.write() as s:
            order = self._editable(s, order_id)
            customer = s.get(Customer, customer_id)
            if customer is None:
                raise SaleError("That customer no longer exists: search again.")
            vs = s.get(VehicleSession, order.session_id) if order.session_id else None
            vehicle_ids = []
            if vs is not None:
                from clarity_tui.services.plate_lookalikes import PlateCorrectionRefused, apply_correction, garage_lookalike

                # A misread of one of their cars (RMK-323I for RMK-3231) is that car, not a second one (issue 14).
                vehicle = garage_lookalike(s, customer.id, vs.plate)  # type: ignore[arg-type]
                if vehicle is not None:
                    try:
                        apply_correction(s, vs, vehicle, self.actor, "session.plate_corrected")
                    except PlateCorrectionRefused as exc:
                        raise SaleError(str(exc)) from exc
                else:
                    vehicle = self._garage_vehicle(s, customer, vs.plate, vs.plate_region, vs.make, vs.model, vs.colour)
                vehicle_ids.append(vehicle.id)
                before = audit.snapshot(vs, ["customer_id", "vehicle_id"])
                vs.customer_id, vs.vehicle_id = customer.id, vehicle.id
                vs.version += 1
                s.add(vs)
                audit.record(s, self.actor, "session.customer_linked", "vehicle_session", vs.id, before=before,
                             after=audit.snapshot(vs, ["customer_id", "vehicle_id"]))
            order.customer_id = customer.id
            order.vehicle_ids = vehicle_ids
            order.payment_method_id = None
            self._default_card(s, order)
            current = self._current_membership(s, customer.id)
            plan = s.get(Plan, order.plan_id) if order.plan_id else None
            if plan is not None:
                if current is not None and current.plan_id == plan.id:
                    raise SaleError(f"{customer.first_name} {customer.last_name} is already on {plan.name}: "
                                    "go back and choose another plan.")
                self._set_plan(s, order, plan, current)
            else:
                self._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.customer", "sales_order", order.id,
                         after={"customer_id": customer.id, "vehicle_ids": vehicle_ids})
            return self._view(s, order)

    def _garage_vehicle(self, s: Session, customer: Customer, plate: str, region: str, make: str | None,
                        model: str | None, colour: str | None) -> Vehicle:
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
            raise SaleError(f"{vehicle.plate} is in the garage of {owner.first_name} {owner.last_name} "  # type: ignore[union-attr]
                            f"(#{owner.customer_number}): link that customer instead, or fix the vehicle on "  # type: ignore[union-attr]
                            "their record first.")
        return vehicle

    def garage(self, order_id: int) -> list[VehicleOption]:
        """The customer's vehicles, for a family plan."""
        with self.db.read() as s:
            order = self._get(s, order_id)
            if order.customer_id is None:
                return []
            rows = s.exec(select(Vehicle).where(Vehicle.customer_id == order.customer_id).order_by(col(Vehicle.id)))
            return [self._vehicle_option(s, v, order) for v in rows]

    @guarded
    def add_vehicle(self, order_id: int, plate: str, *, make: str = "", model: str = "", colour: str = "") -> OrderView:
        """Add a vehicle (already in the garage, or new) to a family membership."""
        with self.db.write() as s:
            order = self._editable(s, order_id)
            if order.customer_id is None or order.plan_id is None:
                raise SaleError("Choose the plan and the customer before adding vehicles.")
            plan = s.get(Plan, order.plan_id)
            ids = list(order.vehicle_ids or [])
            if len(ids) >= vehicle_limit(plan):  # type: ignore[arg-type]
                raise SaleError(full_message(plan))  # type: ignore[arg-type]
            customer = s.get(Customer, order.customer_id)
            region = ""
            if order.session_id:
                region = s.get(VehicleSession, order.session_id).plate_region  # type: ignore[union-attr]
            vehicle = self._garage_vehicle(s, customer, plate, region, make, model, colour)  # type: ignore[arg-type]
            if vehicle.id in ids:
                raise SaleError(f"{vehicle.plate} is already on this membership.")
            taken = self._vehicle_option(s, vehicle, order).on_membership
            if taken:
                raise SaleError(f"{vehicle.plate} is already on {taken}.")
            order.vehicle_ids = ids + [vehicle.id]  # type: ignore[list-item]
            self._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.vehicle_added", "sales_order", order.id, after={"vehicle_id": vehicle.id})
            return self._view(s, order)

    @guarded
    def remove_vehicle(self, order_id: int, vehicle_id: int) -> OrderView:
        with self.db.write() as s:
            order = self._editable(s, order_id)
            ids = [v for v in (order.vehicle_ids or []) if v != vehicle_id]
            if not ids:
                raise SaleError("A membership needs at least one vehicle.")
            order.vehicle_ids = ids
            self._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.vehicle_removed", "sales_order", order.id, after={"vehicle_id": vehicle_id})
            return self._view(s, order)

    # --- payment method ---------------------------------------------------------------------------

    @guarded
    def choose_card(self, order_id: int, payment_method_id: int) -> OrderView:
        with self.db.write() as s:
            order = self._payable(s, order_id)
            pm = s.get(PaymentMethod, payment_method_id)
            if pm is None or pm.customer_id != order.customer_id or pm.detached_at is not None:
                raise SaleError("That card is not saved on this customer: choose another.")
            order.payment_method_id = pm.id
            self._touch(s, order)
            audit.record(s, self.actor, "order.card", "sales_order", order.id,
                         after={"payment_method_id": pm.id, "brand": pm.brand, "last4": pm.last4})
            return self._view(s, order)

    @guarded
    def attach_reader_card(self, order_id: int, token: Any) -> OrderView:
        """A card read by the card reader (a gateway token: id, brand, last 4, expiry)."""
        with self.db.read() as s:
            self._payable(s, order_id)
        self.billing.attach_card_token(order_id, token)
        return self.order(order_id)

    @guarded
    def key_card(self, order_id: int, number: str, expiry: str, cvc: str) -> OrderView:
        """Manual keyed entry: validated, sent straight to the gateway; only the token is kept.

        Raises InvalidCard (what to fix) or another PaymentError (gateway down: use the reader)."""
        with self.db.read() as s:
            self._payable(s, order_id)
        self.billing.add_manual_card(order_id, number, expiry, cvc)
        return self.order(order_id)

    # --- promotion -------------------------------------------------------------------------------------

    def preview_promotion(self, order_id: int, code: str) -> tuple[Promotion, int, int]:
        """Check a code as it is typed, without saving: (promotion, discount, total charged, tax and all).
        Raises PromotionInvalid."""
        with self.db.read() as s:
            order = self._get(s, order_id)
            plan = self._promo_plan(s, order)
            promo = check_promotion(find_code(s, code), code, plan.code)
            price = price_with(promo, plan_subtotal(plan, max(1, len(order.vehicle_ids or []))))
            return promo, price.discount_cents, sales_tax.compute(self.tax, price.total_cents).total_cents

    @guarded
    def apply_promotion(self, order_id: int, code: str) -> OrderView:
        with self.db.write() as s:
            order = self._editable(s, order_id)
            plan = self._promo_plan(s, order)
            promo = check_promotion(find_code(s, code), code, plan.code)
            order.promotion_id = promo.id
            self._touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.promotion", "sales_order", order.id, after={"code": promo.code})
            return self._view(s, order)

    def _promo_plan(self, s: Session, order: SalesOrder) -> Plan:
        if order.plan_id is None:
            raise PromotionInvalid("Choose a plan first: promotion codes depend on the plan.", code="no_plan")
        if order.kind == OrderKind.PLAN_CHANGE:
            raise PromotionInvalid("Promotion codes apply to new memberships, not to a plan change.",
                                   code="plan_change")
        return s.get(Plan, order.plan_id)  # type: ignore[return-value]

    @guarded
    def clear_promotion(self, order_id: int) -> OrderView:
        with self.db.write() as s:
            order = self._editable(s, order_id)
            if order.promotion_id is not None:
                order.promotion_id = None
                self._touch(s, order, OrderState.DRAFT)
                audit.record(s, self.actor, "order.promotion_cleared", "sales_order", order.id)
            return self._view(s, order)

    # --- checkout, terms, signature --------------------------------------------------------------------

    @guarded
    def review(self, order_id: int) -> OrderView:
        """Fix the amounts and next billing date for the checkout summary."""
        with self.db.write() as s:
            order = self._editable(s, order_id)
            missing = [what for what, v in (("a plan", order.plan_id), ("a customer", order.customer_id)) if v is None]
            if missing:
                raise SaleError(f"The sale needs {' and '.join(missing)} before checkout.")
            if not order.vehicle_ids:
                raise SaleError("The membership needs at least one vehicle.")
            plan = s.get(Plan, order.plan_id)
            vehicles = len(order.vehicle_ids)
            if order.kind == OrderKind.PLAN_CHANGE:
                # An upgrade's prorated difference, fixed here: the amount shown before Agree is charged.
                q = order_quote(s, order, self.today())
                order.subtotal_cents, order.discount_cents = q.new_subtotal_cents, 0
                taxed = sales_tax.compute(self.tax, q.due_today_cents)
                order.due_today_cents, order.tax_cents = taxed.total_cents, taxed.tax_cents
                order.next_billing_on = q.next_billing_on
            else:
                promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
                if promo is not None:
                    try:
                        check_promotion(promo, promo.code, plan.code)  # type: ignore[union-attr]
                    except PromotionInvalid as exc:
                        order.promotion_id = None
                        s.add(order)
                        raise SaleError(f"{exc} The code was removed: check the price again.") from exc
                price = price_with(promo, plan_subtotal(plan, vehicles))  # type: ignore[arg-type]
                order.subtotal_cents, order.discount_cents = price.subtotal_cents, price.discount_cents
                taxed = sales_tax.compute(self.tax, price.total_cents)  # tax on the price after the discount
                order.due_today_cents, order.tax_cents = taxed.total_cents, taxed.tax_cents
                order.next_billing_on = next_period(self.today(), plan.interval)  # type: ignore[union-attr]
            if order.payment_method_id is None and not order.card_present and (
                    order.kind != OrderKind.PLAN_CHANGE or order.due_today_cents):
                raise SaleError("The sale needs a card before checkout.")
            self._touch(s, order, OrderState.CHECKOUT)
            audit.record(s, self.actor, "order.reviewed", "sales_order", order.id,
                         after=audit.snapshot(order, ["subtotal_cents", "discount_cents", "tax_cents",
                                                      "due_today_cents", "next_billing_on", "kind"]))
            return self._view(s, order)

    @guarded
    def checkout(self, order_id: int) -> OrderView:
        """The attendant pressed Checkout: the terms come next."""
        with self.db.write() as s:
            order = self._mine(s, order_id)
            if order.state != OrderState.CHECKOUT:
                raise SaleError("Review the checkout summary first.")
            self._touch(s, order, OrderState.TERMS)
            audit.record(s, self.actor, "order.checkout", "sales_order", order.id,
                         after={"due_today_cents": order.due_today_cents, "tax_cents": order.tax_cents})
            return self._view(s, order)

    def current_terms(self) -> TermsVersion:
        with self.db.read() as s:
            terms = s.exec(select(TermsVersion).where(TermsVersion.effective_at <= utcnow())
                           .order_by(col(TermsVersion.effective_at).desc(), col(TermsVersion.id).desc())).first()
            if terms is None:
                raise SaleError("No membership terms are set up: ask a manager to load the terms before selling.")
            return terms

    @guarded
    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView:
        if how not in TERMS_HOW:
            raise ValueError(f"how must be one of {sorted(TERMS_HOW)}")
        with self.db.write() as s:
            order = self._mine(s, order_id)
            if order.state != OrderState.TERMS:
                raise SaleError("The terms can only be accepted after Checkout.")
            terms = s.get(TermsVersion, terms_version_id)
            if terms is None:
                raise SaleError("Those terms no longer exist: show the terms again.")
            progress = self._progress(s, order.id)  # type: ignore[arg-type]
            progress.terms_version_id, progress.terms_accepted_how = terms.id, how
            progress.terms_accepted_at = progress.updated_at = utcnow()
            s.add(progress)
            self._touch(s, order)
            audit.record(s, self.actor, "order.terms_accepted", "sales_order", order.id,
                         after={"terms": terms.label, "sha256": terms.sha256, "how": how})
            return self._view(s, order)

    @guarded
    def decline_terms(self, order_id: int) -> OrderView:
        """The customer declined: the order is cancelled; nothing was or will be charged."""
        with self.db.write() as s:
            order = self._mine(s, order_id)
            if order.state not in (*EDITABLE, OrderState.SIGNED):
                raise SaleError("Payment has already started: it can no longer be declined here.")
            self._cancel_row(s, order, "order.terms_declined", None)
            return self._view(s, order)

    @guarded
    def record_signature(self, order_id: int, strokes: Sequence[Sequence[Sequence[float]]], svg: str, *,
                         device: str, signer_name: str | None = None) -> OrderView:
        """Store the signature with the accepted terms' version hash, the time, the lane and the device."""
        if not any(len(stroke) for stroke in strokes):
            raise SaleError("The signature is empty: ask the customer to sign on the pad.")
        with self.db.write() as s:
            order = self._mine(s, order_id)
            progress = self._progress(s, order.id)  # type: ignore[arg-type]
            if order.state != OrderState.TERMS or progress.terms_version_id is None:
                raise SaleError("The terms must be accepted before signing.")
            terms = s.get(TermsVersion, progress.terms_version_id)
            customer = s.get(Customer, order.customer_id)
            row = SignatureRow(order_id=order.id, customer_id=order.customer_id, terms_version_id=terms.id,  # type: ignore[union-attr]
                               terms_sha256=terms.sha256, strokes=[[list(p) for p in st] for st in strokes],  # type: ignore[union-attr]
                               svg=svg, lane_id=order.lane_id, device=device[:120],
                               signer_name=signer_name or (f"{customer.first_name} {customer.last_name}".strip()
                                                           if customer else None))
            s.add(row)
            s.flush()
            progress.signature_id, progress.updated_at = row.id, utcnow()
            s.add(progress)
            self._touch(s, order, OrderState.SIGNED)
            audit.record(s, self.actor, "order.signed", "sales_order", order.id,
                         after={"signature_id": row.id, "terms_sha256": terms.sha256, "device": row.device,  # type: ignore[union-attr]
                                "lane_id": order.lane_id})
            return self._view(s, order)

    # --- paying and activating ----------------------------------------------------------------------------

    @guarded
    def pay(self, order_id: int) -> PayResult:
        """Agree was pressed: take the money (or change the plan), then activate. Never charges twice.

        A decline comes back as a PayResult with the gateway's message and the order kept
        (choose another card, then pay again). Raises SaleError when a step is missing."""
        with self.db.write() as s:
            order = self._mine(s, order_id)
            if order.state not in (OrderState.SIGNED, OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC,
                                   OrderState.COMPLETED):
                raise SaleError("The customer must sign before paying.")
            if order.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
                self._check_vehicles_free(s, order)
            kind, state = order.kind, order.state
        if kind == OrderKind.PLAN_CHANGE:
            if state != OrderState.COMPLETED:
                outcome = self._change_plan(order_id)
                if not (outcome.completed or outcome.pending_sync):
                    return PayResult(outcome.state, outcome.message, False)
        elif state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
            outcome: BillingOutcome = self.billing.start_sale(order_id, today=self.today())
            if not (outcome.completed or outcome.pending_sync):
                self._not_started(order_id, outcome.message)
                return PayResult(outcome.state, outcome.message, False)
        activated = self.activate(order_id)
        view = self.order(order_id)
        return PayResult(view.state, view.last_error, activated)

    def _not_started(self, order_id: int, reason: str | None) -> None:
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

    def _change_plan(self, order_id: int) -> BillingOutcome:
        """An upgrade's difference is charged, then the gateway changes the prices (plan_changes.py)."""
        try:
            return PlanChanges(self.billing, self.today).start(order_id)
        except (PlanChangeRefused, PaymentError) as exc:
            raise SaleError(str(exc)) from exc

    def _check_vehicles_free(self, s: Session, order: SalesOrder) -> None:
        for vid in order.vehicle_ids or []:
            v = s.get(Vehicle, vid)
            if v is None:
                continue
            taken = self._vehicle_option(s, v, order).on_membership
            if taken:
                raise SaleError(f"{v.plate} was put on {taken} on another terminal meanwhile: nothing was "
                                "charged. Go back to the board and open the session again.")

    def activate(self, order_id: int) -> bool:
        """Attach the membership to the customer's vehicles and turn the session member. Idempotent.

        Returns True once the order is activated (False while it is not paid yet)."""
        with self.db.write() as s:
            order = s.get(SalesOrder, order_id)
            if order is None:
                raise SaleError(f"Order {order_id} no longer exists.")
            progress = self._progress(s, order_id)
            if progress.activated_at is not None:
                return True
            if order.state not in (OrderState.COMPLETED, OrderState.PENDING_SYNC) or order.membership_id is None:
                return False
            m = s.get(Membership, order.membership_id)
            have = {mv.vehicle_id for mv in s.exec(select(MembershipVehicle)
                                                   .where(MembershipVehicle.membership_id == m.id))}  # type: ignore[union-attr]
            for vid in order.vehicle_ids or []:
                if vid not in have:
                    s.add(MembershipVehicle(membership_id=m.id, vehicle_id=vid))  # type: ignore[arg-type, union-attr]
            if order.session_id:
                vs = s.get(VehicleSession, order.session_id)
                if vs is not None:
                    vs.customer_id = order.customer_id
                    vs.vehicle_id = vs.vehicle_id or (order.vehicle_ids or [None])[0]
                    vs.version += 1
                    s.add(vs)
            progress.activated_at = progress.updated_at = utcnow()
            s.add(progress)
            order.updated_at = utcnow()
            s.add(order)
            audit.record(s, self.actor, "order.activated", "sales_order", order.id,
                         after={"membership_id": m.id, "vehicle_ids": list(order.vehicle_ids or []),  # type: ignore[union-attr]
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
            ids = list(s.exec(
                select(SalesOrder.id).join(OrderProgress, col(OrderProgress.order_id) == SalesOrder.id)
                .where(col(OrderProgress.activated_at).is_(None), col(OrderProgress.signature_id).is_not(None),
                       col(SalesOrder.state).in_([OrderState.COMPLETED, OrderState.PENDING_SYNC]))
                .order_by(col(SalesOrder.id))).all())
        return [order_id for order_id in ids if self.activate(order_id)]  # type: ignore[arg-type]

    @guarded
    def cancel(self, order_id: int) -> OrderView:
        """The attendant abandons the sale before any money moved."""
        with self.db.read() as s:
            order = self._mine(s, order_id)
            state = order.state
        if state in (OrderState.CANCELLED, OrderState.COMPLETED, OrderState.PENDING_SYNC):
            return self.order(order_id)
        if state == OrderState.PAYMENT_PENDING:
            try:
                self.billing.cancel_order(order_id)
            except PaymentError as exc:
                raise SaleError(str(exc)) from exc
            return self.order(order_id)
        with self.db.write() as s:
            order = self._mine(s, order_id)
            self._cancel_row(s, order, "order.cancel", None)
            return self._view(s, order)

    # --- helpers -------------------------------------------------------------------------------------

    def _cancel_row(self, s: Session, order: SalesOrder, action: str, extra: dict | None) -> None:
        before = audit.snapshot(order, ["state"])
        order.state = OrderState.CANCELLED
        order.updated_at = utcnow()
        order.version += 1
        s.add(order)
        audit.record(s, self.actor, action, "sales_order", order.id, before=before,
                     after={"state": OrderState.CANCELLED, **(extra or {})})

    @staticmethod
    def _get(s: Session, order_id: int) -> SalesOrder:
        order = s.get(SalesOrder, order_id)
        if order is None:
            raise OrderTaken(f"Sale {order_id} no longer exists: start again from the session.")
        return order

    def _mine(self, s: Session, order_id: int) -> SalesOrder:
        order = self._get(s, order_id)
        if order.terminal != self.terminal:
            raise OrderTaken(f"This sale now belongs to terminal {order.terminal}: nothing more can be done "
                             "with it here. Go back to the board.")
        if order.state == OrderState.CANCELLED:
            raise OrderTaken("This sale was cancelled (declined, or taken over after a long pause): start again "
                             "from the session if the customer still wants a membership.")
        return order

    def _editable(self, s: Session, order_id: int) -> SalesOrder:
        order = self._mine(s, order_id)
        if order.state not in EDITABLE:
            raise SaleError("The customer has already signed: this sale can no longer be changed.")
        return order

    def _payable(self, s: Session, order_id: int) -> SalesOrder:
        """The card can change before signing, and again after a decline."""
        order = self._mine(s, order_id)
        if order.state not in (*EDITABLE, OrderState.SIGNED, OrderState.PAYMENT_PENDING):
            raise SaleError("This sale is already paid.")
        if order.customer_id is None:
            raise SaleError("Choose the customer before the card.")
        return order

    def _touch(self, s: Session, order: SalesOrder, state: str | None = None) -> None:
        if state is not None:
            order.state = state
        order.version += 1
        order.updated_at = utcnow()
        s.add(order)

    @staticmethod
    def _progress(s: Session, order_id: int) -> OrderProgress:
        progress = s.get(OrderProgress, order_id)
        if progress is None:
            progress = OrderProgress(order_id=order_id)
            s.add(progress)
            s.flush()
        return progress

    @staticmethod
    def _current_membership(s: Session, customer_id: int | None) -> Membership | None:
        if customer_id is None:
            return None
        rows = s.exec(select(Membership).where(Membership.customer_id == customer_id,
                                               col(Membership.status).in_(CURRENT_STATUSES))
                      .order_by(col(Membership.id).desc())).all()
        order = {MembershipStatus.ACTIVE: 0, MembershipStatus.PAST_DUE: 1, MembershipStatus.PAUSED: 2}
        return min(rows, key=lambda m: order[MembershipStatus(m.status)]) if rows else None

    @staticmethod
    def _default_card(s: Session, order: SalesOrder) -> None:
        cards = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == order.customer_id,
                                                   col(PaymentMethod.detached_at).is_(None))
                       .order_by(col(PaymentMethod.is_default).desc(), col(PaymentMethod.id).desc())).all()
        order.payment_method_id = cards[0].id if cards else None

    def _vehicle_option(self, s: Session, v: Vehicle, order: SalesOrder) -> VehicleOption:
        rows = s.exec(select(Membership, Plan, Customer)
                      .join(MembershipVehicle, col(MembershipVehicle.membership_id) == Membership.id)
                      .join(Plan, col(Plan.id) == Membership.plan_id)
                      .join(Customer, col(Customer.id) == Membership.customer_id)
                      .where(MembershipVehicle.vehicle_id == v.id, col(Membership.status).in_(CURRENT_STATUSES))).all()
        taken = None
        for m, plan, c in rows:
            if m.id == order.membership_id and order.kind == OrderKind.PLAN_CHANGE:
                continue
            taken = f"{c.first_name} {c.last_name}'s {plan.name} membership".strip()
        return VehicleOption(v.id, v.plate, _vehicle_desc(v), taken)  # type: ignore[arg-type]

    def _view(self, s: Session, order: SalesOrder) -> OrderView:
        customer = s.get(Customer, order.customer_id) if order.customer_id else None
        plan = s.get(Plan, order.plan_id) if order.plan_id else None
        current = self._current_membership(s, order.customer_id)
        if order.kind == OrderKind.PLAN_CHANGE and order.membership_id:
            current = s.get(Membership, order.membership_id)
        elif current is not None and current.id == order.membership_id:
            current = None  # the membership this sale created is not "the current plan" to compare with
        # A plan change names the plan it changed from, also once the membership has moved on.
        cur_plan = s.get(Plan, order.from_plan_id or current.plan_id) if current else None  # type: ignore[union-attr]
        relation = ""
        if plan is not None and cur_plan is not None:
            relation = "current" if plan.id == cur_plan.id else (
                "upgrade" if (plan.tier, plan.price_cents) > (cur_plan.tier, cur_plan.price_cents) else "downgrade")
        vehicles = []
        for vid in order.vehicle_ids or []:
            v = s.get(Vehicle, vid)
            if v is not None:
                vehicles.append(VehicleOption(v.id, v.plate, _vehicle_desc(v)))  # type: ignore[arg-type]
        cards = []
        if customer is not None:
            for pm in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer.id,
                                                         col(PaymentMethod.detached_at).is_(None))
                             .order_by(col(PaymentMethod.is_default).desc(), col(PaymentMethod.id))):
                cards.append(CardOption(pm.id, pm.brand, pm.last4, pm.exp_month, pm.exp_year, pm.is_default))  # type: ignore[arg-type]
        promo = s.get(Promotion, order.promotion_id) if order.promotion_id else None
        vs = s.get(VehicleSession, order.session_id) if order.session_id else None
        progress = s.get(OrderProgress, order.id)
        membership = s.get(Membership, order.membership_id) if order.membership_id else None
        subtotal, discount, due = order.subtotal_cents, order.discount_cents, order.due_today_cents
        tax = order.tax_cents
        next_billing = order.next_billing_on
        effective = None
        if order.kind == OrderKind.PLAN_CHANGE and plan is not None and current is not None:
            q = order_quote(s, order, self.today())
            if order.state in EDITABLE:  # live while the order is put together; review fixes it
                taxed = sales_tax.compute(self.tax, q.due_today_cents)
                subtotal, discount, next_billing = q.new_subtotal_cents, 0, q.next_billing_on
                due, tax = taxed.total_cents, taxed.tax_cents
            effective = next_billing if relation == "downgrade" else self.today()
        elif order.state in EDITABLE and plan is not None:
            # Live price while the order is still being put together.
            subtotal = plan_subtotal(plan, max(1, len(vehicles)))
            price = price_with(promo, subtotal)
            taxed = sales_tax.compute(self.tax, price.total_cents)
            discount, due, tax = price.discount_cents, taxed.total_cents, taxed.tax_cents
        if next_billing is None and plan is not None:
            next_billing = next_period(self.today(), plan.interval)
        return OrderView(
            id=order.id, kind=order.kind, state=order.state, version=order.version,  # type: ignore[arg-type]
            session_id=order.session_id, terminal=order.terminal,
            plate=vs.plate if vs else None,
            session_vehicle=" ".join(x for x in ((vs.colour, vs.make, vs.model) if vs else ()) if x) or "Unknown vehicle",
            customer_id=customer.id if customer else None,
            customer_name=f"{customer.first_name} {customer.last_name}".strip() if customer else None,
            customer_number=customer.customer_number if customer else None,
            phone=customer.phone_e164 if customer else None, email=customer.email if customer else None,
            plan=_plan_option(plan, relation) if plan else None,
            current_plan=_plan_option(cur_plan, "current") if cur_plan else None,
            current_membership_id=current.id if current else None,
            vehicles=tuple(vehicles), cards=tuple(cards), payment_method_id=order.payment_method_id,
            promotion_code=promo.code if promo else None,
            promotion_description=promo.description if promo else None,
            subtotal_cents=subtotal, discount_cents=discount, due_today_cents=due, next_billing_on=next_billing,
            last_error=order.last_error, membership_id=order.membership_id,
            terms_accepted_how=progress.terms_accepted_how if progress else None,
            signature_id=progress.signature_id if progress else None,
            activated=bool(progress and progress.activated_at),
            pending_sync=bool(membership and membership.pending_sync and order.state == OrderState.PENDING_SYNC),
            legacy_member_id=order.legacy_member_id, card_present=bool(order.card_present),
            price_text=itemised(plan, max(1, len(vehicles))) + sales_tax.price_note(self.tax) if plan else "",
            change_effective_on=effective, vehicle_note=self._left_off(s, order, plan, vehicles) if plan else None,
            tax_cents=tax, tax_label=sales_tax.label(self.tax) or ("Tax" if tax else ""),
            tax_note=sales_tax.price_note(self.tax),
            billing_date_set_by_manager=self._billing_date_overridden(s, order),
        )

    @staticmethod
    def _billing_date_overridden(s: Session, order: SalesOrder) -> bool:
        """A migration billed from a date a manager chose, not the legacy system's next bill date."""
        if order.kind != OrderKind.MIGRATION or not order.legacy_member_id or order.next_billing_on is None:
            return False
        from db.models import LegacyMember

        lm = s.get(LegacyMember, order.legacy_member_id)
        return lm is not None and order.next_billing_on != lm.next_bill_on

    @staticmethod
    def _left_off(s: Session, order: SalesOrder, plan: Plan, vehicles: list[VehicleOption]) -> str | None:
        """A migrated member's legacy plates beyond what the plan takes (the order keeps the first ones)."""
        if order.kind != OrderKind.MIGRATION or not order.legacy_member_id:
            return None
        from db.models import LegacyMemberPlate
        from clarity_tui.services.plates import normalize_plate

        on = {normalize_plate(v.plate) for v in vehicles}
        left = [p.plate_raw for p in s.exec(select(LegacyMemberPlate).where(
            LegacyMemberPlate.legacy_member_id == order.legacy_member_id)) if p.plate_normalized not in on]
        if not left or len(vehicles) < vehicle_limit(plan):
            return None
        return (f"{plan.name} takes at most {vehicle_limit(plan)} vehicle(s): {', '.join(left)} from the old "
                "system is not covered.")


__all__ = [
    "CardOption", "OrderBusy", "OrderTaken", "OrderView", "PayResult", "PlanOption", "SaleError", "SaleService",
    "VehicleOption", "money",
]
