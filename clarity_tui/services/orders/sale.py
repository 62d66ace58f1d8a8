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

The guards and refusals are in orders/guards.py, the views in orders/views.py, putting the draft
together in orders/draft.py, and the steps a migration shares (terms, signature, activation,
recovery) in orders/checkout.py. This class keeps every public step (the permission matrix checks
each one on it), which is why it is about 400 lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from clarity_tui.payments.errors import PaymentError
from clarity_tui.services import audit, sales_tax
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingOutcome, BillingService
from clarity_tui.services.commissions import CommissionSettings
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.identity import display_name
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.services.orders.draft import (
    default_card,
    fix_amounts,
    link_session_vehicle,
    open_draft,
    promotion_plan,
    set_plan,
)
from clarity_tui.services.orders.guards import (
    SaleError,
    get_order,
)
from clarity_tui.services.orders.views import (
    OrderView,
    PayResult,
    PlanOption,
    VehicleOption,
    current_membership,
    plan_option,
    vehicle_option,
)
from clarity_tui.services.permissions import Permission, guarded
from clarity_tui.services.plan_changes import PlanChangeRefused, PlanChanges
from clarity_tui.services.plan_pricing import full_message, plan_relation, vehicle_limit
from clarity_tui.services.promotions import check as check_promotion
from clarity_tui.services.promotions import find_code, plan_subtotal, price_with
from clarity_tui.services.sales_tax import TaxSettings
from clarity_tui.services.upsell import released
from db.engine import Database
from db.models import (
    Customer,
    OrderKind,
    OrderState,
    PaymentMethod,
    Plan,
    Promotion,
    TermsVersion,
    Vehicle,
    VehicleSession,
)

if TYPE_CHECKING:
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.wiring import Services


class SaleService:
    """Every step of a sale at the lane. `terminal` owns the orders it opens. Each @guarded step checks
    `permission` (sale.sell) for the actor before anything else; reads and crash recovery are open."""

    def __init__(self, db: Database, gateway: PaymentGateway, actor: Actor, *, terminal: str | None = None,
                 phone_region: str = "US", today: Callable[[], dt.date] | None = None,
                 currency: str = "usd", zone: dt.tzinfo = dt.UTC, tax: TaxSettings | None = None,
                 permission: Permission = Permission.SELL, commissions: CommissionSettings | None = None) -> None:
        self.db = db
        self.gateway = gateway
        self.actor = actor
        self.permission = permission  # every @guarded step; a migration's steps check legacy.migrate
        self.terminal: str = terminal or actor.terminal or "terminal"
        self.phone_region = phone_region
        today = today or dt.date.today
        self.billing = BillingService(db, gateway, actor, currency=currency, tax=tax, commissions=commissions)
        self.customers = CustomerService(db, phone_region=phone_region, gateway=gateway, today=today)
        self.steps = OrderSteps(db, self.billing, actor, terminal=self.terminal, today=today, zone=zone, tax=tax)

    # The day, the site's clock and its sales tax live on the shared steps (a test may change them).

    @property
    def today(self) -> Callable[[], dt.date]:
        return self.steps.today

    @today.setter
    def today(self, today: Callable[[], dt.date]) -> None:
        self.steps.today = today

    @property
    def zone(self) -> dt.tzinfo:
        """The site's clock, for times shown to the attendant."""
        return self.steps.zone

    @property
    def tax(self) -> TaxSettings | None:
        """The site's sales tax (settings.billing.tax); None: no tax."""
        return self.steps.tax

    @tax.setter
    def tax(self, tax: TaxSettings | None) -> None:
        self.steps.tax = tax

    @classmethod
    def from_services(cls, services: Services, actor: Actor | None = None, *,
                      permission: Permission = Permission.SELL) -> SaleService:
        """Built from the running terminal's services, for `actor` (the terminal's system actor if None)."""
        settings = services.settings
        return cls(services.db, services.gateway, actor or Actor.system("sale", services.terminal),
                   terminal=services.terminal, phone_region=settings.site.phone_region, today=services.today,
                   zone=settings.site.zone, currency=settings.payments.currency, tax=settings.billing.tax,
                   permission=permission, commissions=settings.wash.commissions)

    # --- opening ------------------------------------------------------------------------------

    @guarded
    def open_for_session(self, session_id: int) -> OrderView:
        """Resume this terminal's open order for the session, or start a draft. Raises OrderBusy."""
        return open_draft(self.steps, session_id)

    def order(self, order_id: int) -> OrderView:
        return self.steps.order(order_id)

    # --- plans ---------------------------------------------------------------------------------

    def plans(self, customer_id: int | None = None) -> list[PlanOption]:
        """Plans on sale, cheapest tier first, each marked against the customer's current plan."""
        with self.db.read() as s:
            current = current_membership(s, customer_id) if customer_id else None
            cur_plan = s.get(Plan, current.plan_id) if current else None
            on_sale = s.exec(select(Plan).where(col(Plan.active).is_(True))
                             .order_by(col(Plan.tier), col(Plan.price_cents)))
            return [plan_option(p, plan_relation(cur_plan, p), sales_tax.price_note(self.tax)) for p in on_sale]

    @guarded
    def choose_plan(self, order_id: int, plan_code: str) -> OrderView:
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            plan = s.exec(select(Plan).where(Plan.code == plan_code.upper(), col(Plan.active).is_(True))).first()
            if plan is None:
                raise SaleError(f"Plan {plan_code} is not on sale: choose one of the plans shown.")
            current = current_membership(s, order.customer_id) if order.customer_id else None
            if current is not None and current.plan_id == plan.id:
                raise SaleError(f"The customer is already on {plan.name}: choose another plan to upgrade or "
                                "downgrade, or go back.")
            set_plan(s, self.steps, order, plan, current)
            return self.steps.view(s, order)

    # --- the customer ------------------------------------------------------------------------

    @guarded
    def set_new_customer(self, order_id: int, form: ContactForm) -> OrderView:
        """Create the customer from the quick form (validated by the customers service) and link them.

        Raises customers.ValidationFailed with a message per field; nothing is created then."""
        with self.db.read() as s:
            order = self.steps.editable(s, order_id)
            if order.customer_id is not None:
                raise SaleError("This sale already has a customer.")
        from clarity_tui.services.customer_duplicates import create_or_reuse

        # A retry (after a failed step or a cancelled sale) reuses the customer the first attempt created;
        # a phone or email of somebody else raises DuplicateCustomer (the screen offers that customer).
        customer = create_or_reuse(self.customers, self.actor, form, order_id=order_id)
        if customer.id is None:
            raise SaleError("The customer was not saved: try again.")
        return self.link_customer(order_id, customer.id)

    @guarded
    def link_customer(self, order_id: int, customer_id: int) -> OrderView:
        """Attach a customer (new or found by search); the session's vehicle joins their garage."""
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            customer = s.get(Customer, customer_id)
            if customer is None:
                raise SaleError("That customer no longer exists: search again.")
            vs = s.get(VehicleSession, order.session_id) if order.session_id else None
            vehicle_ids = [link_session_vehicle(s, self.steps, vs, customer)] if vs is not None else []
            order.customer_id = customer.id
            order.vehicle_ids = vehicle_ids
            order.payment_method_id = None
            default_card(s, order)
            current = current_membership(s, customer_id)
            plan = s.get(Plan, order.plan_id) if order.plan_id else None
            if plan is not None:
                if current is not None and current.plan_id == plan.id:
                    raise SaleError(f"{display_name(customer.first_name, customer.last_name)} is already on {plan.name}: "
                                    "go back and choose another plan.")
                set_plan(s, self.steps, order, plan, current)
            else:
                self.steps.touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.customer", "sales_order", order.id,
                         after={"customer_id": customer.id, "vehicle_ids": vehicle_ids})
            return self.steps.view(s, order)

    def garage(self, order_id: int) -> list[VehicleOption]:
        """The customer's vehicles, for a family plan."""
        with self.db.read() as s:
            order = get_order(s, order_id)
            if order.customer_id is None:
                return []
            rows = s.exec(select(Vehicle).where(Vehicle.customer_id == order.customer_id).order_by(col(Vehicle.id)))
            return [vehicle_option(s, v, order) for v in rows]

    @guarded
    def add_vehicle(self, order_id: int, plate: str, *, make: str = "", model: str = "", colour: str = "") -> OrderView:
        """Add a vehicle (already in the garage, or new) to a family membership."""
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            plan = s.get(Plan, order.plan_id) if order.plan_id else None
            customer = s.get(Customer, order.customer_id) if order.customer_id else None
            if customer is None or plan is None:
                raise SaleError("Choose the plan and the customer before adding vehicles.")
            ids = list(order.vehicle_ids or [])
            if len(ids) >= vehicle_limit(plan):
                raise SaleError(full_message(plan))
            vs = s.get(VehicleSession, order.session_id) if order.session_id else None
            vehicle = self.steps.garage_vehicle(s, customer, plate, vs.plate_region if vs else "", make, model, colour)
            assert vehicle.id is not None, "a vehicle flushed to the database"
            if vehicle.id in ids:
                raise SaleError(f"{vehicle.plate} is already on this membership.")
            taken = vehicle_option(s, vehicle, order).on_membership
            if taken:
                raise SaleError(f"{vehicle.plate} is already on {taken}.")
            order.vehicle_ids = [*ids, vehicle.id]
            self.steps.touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.vehicle_added", "sales_order", order.id, after={"vehicle_id": vehicle.id})
            return self.steps.view(s, order)

    @guarded
    def remove_vehicle(self, order_id: int, vehicle_id: int) -> OrderView:
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            ids = [v for v in (order.vehicle_ids or []) if v != vehicle_id]
            if not ids:
                raise SaleError("A membership needs at least one vehicle.")
            order.vehicle_ids = ids
            self.steps.touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.vehicle_removed", "sales_order", order.id, after={"vehicle_id": vehicle_id})
            return self.steps.view(s, order)

    # --- payment method ---------------------------------------------------------------------------

    @guarded
    def choose_card(self, order_id: int, payment_method_id: int) -> OrderView:
        with self.db.write() as s:
            order = self.steps.payable(s, order_id)
            pm = s.get(PaymentMethod, payment_method_id)
            if pm is None or pm.customer_id != order.customer_id or pm.detached_at is not None:
                raise SaleError("That card is not saved on this customer: choose another.")
            order.payment_method_id = pm.id
            self.steps.touch(s, order)
            audit.record(s, self.actor, "order.card", "sales_order", order.id,
                         after={"payment_method_id": pm.id, "brand": pm.brand, "last4": pm.last4})
            return self.steps.view(s, order)

    @guarded
    def attach_reader_card(self, order_id: int, token: Any) -> OrderView:
        """A card read by the card reader (a gateway token: id, brand, last 4, expiry)."""
        with self.db.read() as s:
            self.steps.payable(s, order_id)
        self.billing.attach_card_token(order_id, token)
        return self.order(order_id)

    @guarded
    def key_card(self, order_id: int, number: str, expiry: str, cvc: str) -> OrderView:
        """Manual keyed entry: validated, sent straight to the gateway; only the token is kept.

        Raises InvalidCard (what to fix) or another PaymentError (gateway down: use the reader)."""
        with self.db.read() as s:
            self.steps.payable(s, order_id)
        self.billing.add_manual_card(order_id, number, expiry, cvc)
        return self.order(order_id)

    # --- promotion -------------------------------------------------------------------------------------

    def preview_promotion(self, order_id: int, code: str) -> tuple[Promotion, int, int]:
        """Check a code as it is typed, without saving: (promotion, discount, total charged, tax and all).
        Raises PromotionInvalid."""
        with self.db.read() as s:
            order = get_order(s, order_id)
            plan = promotion_plan(s, order)
            promo = check_promotion(find_code(s, code), code, plan.code)
            price = price_with(promo, plan_subtotal(plan, max(1, len(order.vehicle_ids or []))))
            return promo, price.discount_cents, sales_tax.compute(self.tax, price.total_cents).total_cents

    @guarded
    def apply_promotion(self, order_id: int, code: str) -> OrderView:
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            plan = promotion_plan(s, order)
            promo = check_promotion(find_code(s, code), code, plan.code)
            order.promotion_id = promo.id
            self.steps.touch(s, order, OrderState.DRAFT)
            audit.record(s, self.actor, "order.promotion", "sales_order", order.id, after={"code": promo.code})
            return self.steps.view(s, order)

    @guarded
    def clear_promotion(self, order_id: int) -> OrderView:
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            if order.promotion_id is not None:
                order.promotion_id = None
                self.steps.touch(s, order, OrderState.DRAFT)
                audit.record(s, self.actor, "order.promotion_cleared", "sales_order", order.id)
            return self.steps.view(s, order)

    # --- checkout, terms, signature --------------------------------------------------------------------

    @guarded
    def review(self, order_id: int) -> OrderView:
        """Fix the amounts and next billing date for the checkout summary."""
        with self.db.write() as s:
            order = self.steps.editable(s, order_id)
            missing = [what for what, v in (("a plan", order.plan_id), ("a customer", order.customer_id)) if v is None]
            plan = s.get(Plan, order.plan_id) if order.plan_id is not None else None
            if missing or plan is None:
                raise SaleError(f"The sale needs {' and '.join(missing) or 'a plan'} before checkout.")
            if not order.vehicle_ids:
                raise SaleError("The membership needs at least one vehicle.")
            fix_amounts(s, order, plan, self.today(), self.tax)
            if order.card_present and order.credit_order_id and not order.due_today_cents:
                raise SaleError("Today's wash credit covers the first charge, so there is no payment to take on "
                                "the reader: read the card to save it for the renewals, or choose a saved card.")
            if order.payment_method_id is None and not order.card_present and (
                    order.kind != OrderKind.PLAN_CHANGE or order.due_today_cents):
                raise SaleError("The sale needs a card before checkout.")
            self.steps.touch(s, order, OrderState.CHECKOUT)
            audit.record(s, self.actor, "order.reviewed", "sales_order", order.id,
                         after=audit.snapshot(order, ["subtotal_cents", "discount_cents", "tax_cents",
                                                      "due_today_cents", "next_billing_on", "kind"]))
            return self.steps.view(s, order)

    @guarded
    def checkout(self, order_id: int) -> OrderView:
        """The attendant pressed Checkout: the terms come next."""
        return self.steps.to_terms(order_id)

    def current_terms(self) -> TermsVersion:
        return self.steps.current_terms()

    @guarded
    def accept_terms(self, order_id: int, terms_version_id: int, how: str) -> OrderView:
        return self.steps.accept_terms(order_id, terms_version_id, how)

    @guarded
    def decline_terms(self, order_id: int) -> OrderView:
        """The customer declined: the order is cancelled; nothing was or will be charged."""
        return released(self.steps, self.steps.decline_terms(order_id))

    @guarded
    def record_signature(self, order_id: int, strokes: Sequence[Sequence[Sequence[float]]], svg: str, *,
                         device: str, signer_name: str | None = None) -> OrderView:
        """Store the signature with the accepted terms' version hash, the time, the lane and the device."""
        return self.steps.record_signature(order_id, strokes, svg, device=device, signer_name=signer_name)

    # --- paying and activating ----------------------------------------------------------------------------

    @guarded
    def pay(self, order_id: int) -> PayResult:
        """Agree was pressed: take the money (or change the plan), then activate. Never charges twice.

        A decline comes back as a PayResult with the gateway's message and the order kept
        (choose another card, then pay again). Raises SaleError when a step is missing."""
        with self.db.write() as s:
            order = self.steps.owned(s, order_id)
            if order.state not in (OrderState.SIGNED, OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC,
                                   OrderState.COMPLETED):
                raise SaleError("The customer must sign before paying.")
            if order.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
                self.steps.check_vehicles_free(s, order)
            kind, state = order.kind, order.state
        if kind == OrderKind.PLAN_CHANGE:
            if state != OrderState.COMPLETED:
                outcome = self._change_plan(order_id)
                if not (outcome.completed or outcome.pending_sync):
                    return PayResult(outcome.state, outcome.message, False)
        elif state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
            outcome = self.billing.start_sale(order_id, today=self.today())
            if not (outcome.completed or outcome.pending_sync):
                self.steps.not_started(order_id, outcome.message)
                return PayResult(outcome.state, outcome.message, False)
        activated = self.activate(order_id)
        view = self.order(order_id)
        return PayResult(view.state, view.last_error, activated)

    def _change_plan(self, order_id: int) -> BillingOutcome:
        """An upgrade's difference is charged, then the gateway changes the prices (plan_changes.py)."""
        try:
            return PlanChanges(self.billing, self.today).start(order_id)
        except (PlanChangeRefused, PaymentError) as exc:
            raise SaleError(str(exc)) from exc

    def activate(self, order_id: int) -> bool:
        """Attach the membership to the customer's vehicles and turn the session member. Idempotent."""
        return self.steps.activate(order_id)

    def recover(self, *, replay: bool = True) -> list[int]:
        """Start-up: replay pending gateway steps (unless the caller just did), then activate paid orders."""
        return self.steps.recover(replay=replay)

    @guarded
    def cancel(self, order_id: int) -> OrderView:
        """The attendant abandons the sale before any money moved (a wash credit is released)."""
        return released(self.steps, self.steps.cancel(order_id))
