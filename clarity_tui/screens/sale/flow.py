"""The sale flow: one step screen at a time, driven from a worker, resumable from any state.

plan -> customer (unknown vehicle) -> vehicles (family plan) -> payment -> summary -> terms
-> signature -> pay + activate -> confirmation. Each screen dismisses with the order (next step)
or BACK (previous step). The order lives in the database, so reopening the sale (or restarting
the app) continues where it stopped; a declined card returns to the payment step and then pays
straight away (the customer already signed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK
from clarity_tui.screens.checkout_shared.flow import CheckoutFlow
from clarity_tui.screens.sale.customer import CustomerQuickScreen
from clarity_tui.screens.sale.payment import PaymentScreen
from clarity_tui.screens.sale.plans import PlanSelectScreen
from clarity_tui.screens.sale.vehicles import FamilyVehiclesScreen
from clarity_tui.services.orders import OrderView, PayResult, SaleService
from clarity_tui.wiring import services_of
from db.models import OrderKind, OrderState

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp


class _Goto:
    def __init__(self, step: str) -> None:
        self.step = step


STEPS = ("plan", "customer", "vehicles", "payment", "summary", "terms", "signature", "pay")


def resume_step(view: OrderView) -> str:
    """Where an order picks up again."""
    if view.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING, OrderState.PENDING_SYNC,
                      OrderState.COMPLETED, OrderState.PAID):
        return "payment" if (view.state == OrderState.PAYMENT_PENDING and view.last_error) else "pay"
    if view.state == OrderState.TERMS:
        return "signature" if view.terms_accepted_how else "terms"
    if view.state == OrderState.CHECKOUT:
        return "summary"
    return "plan"


class SaleFlow(CheckoutFlow):
    TITLE = "Purchase membership"
    NOUN = "sale"

    def __init__(self, app: ClarityApp, session_id: int, service: SaleService | None = None) -> None:
        super().__init__(app, session_id, service or SaleService.from_services(services_of(app), app.actor))

    def _needed(self, step: str, view: OrderView) -> bool:
        if step == "customer":
            return view.customer_id is None
        if step == "vehicles":
            return bool(view.plan and view.plan.vehicle_limit > 1)  # room for more than one vehicle
        return True

    async def run(self) -> OrderView | None:
        """Run the sale to the end (or until the attendant leaves it). Returns the finished order."""
        from clarity_tui.widgets.lookalike_sale import lookalike_cleared

        if not await lookalike_cleared(self.app, self.session_id):  # a misread of a member's plate asks first
            return None
        try:
            view = await self._call(self.service.open_for_session, self.session_id)
        except UserFacingError as exc:
            self._fail(str(exc))
            return None
        if view.kind == OrderKind.MIGRATION:
            # This terminal is migrating this vehicle's legacy member: Purchase must not turn that into a sale.
            self._fail("A legacy migration is open for this vehicle: continue it with Migrate (F3), "
                       "or cancel it there before selling a new membership.")
            return None
        step = resume_step(view)
        if step == "payment" and view.last_error:
            self.notice = view.last_error
        if view.activated:
            return await self._finish(view)
        while True:
            self.view = view
            result = await self._step(step, view)
            if result is None:  # the step ended the flow (cancelled, declined, refused)
                return None
            if result == BACK:
                if step == "plan":
                    await self._abandon(view)
                    return None
                if step == "payment" and self.signed(view):
                    await self._leave_signed(view)  # a decline brought us here: leaving abandons the sale
                    return None
                step = self._previous(step, view)
                continue
            if isinstance(result, _Goto):
                view = await self._call(self.service.order, view.id)
                step = result.step
                continue
            if isinstance(result, PayResult):
                view = await self._call(self.service.order, view.id)
                if result.ok:
                    return await self._finish(view)
                self.notice = result.message or "The payment did not go through: choose another card."
                step = "payment"
                continue
            view = result
            step = self._next(step, view)

    def _next(self, step: str, view: OrderView) -> str:
        if step == "payment" and self.signed(view):
            return "pay"  # another card after a decline: the customer already signed
        i = STEPS.index(step) + 1
        while not self._needed(STEPS[i], view):
            i += 1
        return STEPS[i]

    def _previous(self, step: str, view: OrderView) -> str:
        i = STEPS.index(step) - 1
        while i > 0 and (STEPS[i] == "customer" or not self._needed(STEPS[i], view)):
            i -= 1  # a linked customer stays linked: going back skips the customer form
        return STEPS[max(i, 0)]

    async def _step(self, step: str, view: OrderView) -> Any:
        app, service = self.app, self.service
        try:
            if step == "plan":
                plans = await self._call(service.plans, view.customer_id)
                message = ""
                while True:
                    code = await app.push_screen_wait(PlanSelectScreen(view, plans, message))
                    if code == BACK:
                        return BACK
                    try:
                        return await self._call(service.choose_plan, view.id, code)
                    except UserFacingError as exc:
                        message = str(exc)
            if step == "customer":
                region = services_of(app).settings.site.phone_region
                return await app.push_screen_wait(CustomerQuickScreen(view, service, region))
            if step == "vehicles":
                return await app.push_screen_wait(FamilyVehiclesScreen(view, service))
            if step == "payment":
                notice, self.notice = self.notice, ""
                return await app.push_screen_wait(PaymentScreen(view, service, notice))
            if step == "pay":
                result = await self._shared_step(step, view)
                if isinstance(result, str):  # refused before any money moved: back to the card with why
                    self.notice = result
                    return _Goto("payment")
                return result
            return await self._shared_step(step, view)
        except UserFacingError as exc:
            self._fail(str(exc))
            return None
