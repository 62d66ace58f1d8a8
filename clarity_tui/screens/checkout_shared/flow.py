"""What every checkout flow shares: the sale (issue 5) and the legacy migration (issue 6).

A flow runs in a worker, one step screen at a time, and keeps its order in the database. Its own
first steps differ (plans and customer; match, contact and card on file); from the summary on,
both go through the same screens: summary -> terms -> signature -> processing -> confirmation.
A subclass names itself (TITLE, NOUN) and runs its own steps; `_shared_step` runs the common ones.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK, devices_of
from clarity_tui.screens.checkout_shared.confirmation import ConfirmationScreen
from clarity_tui.screens.checkout_shared.processing import ProcessingScreen
from clarity_tui.screens.checkout_shared.signature import SignatureScreen
from clarity_tui.screens.checkout_shared.summary import CheckoutSummaryScreen
from clarity_tui.screens.checkout_shared.terms import DECLINED, TermsScreen
from clarity_tui.services.orders import OrderView, PayResult, money
from db.models import OrderState

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp


class CheckoutFlow:
    TITLE = "Checkout"
    NOUN = "order"  # "the <noun> is cancelled"
    NOTHING_DONE = "nothing was charged"  # what the customer is told a cancel left behind
    FAIL_TIMEOUT = 8

    def __init__(self, app: ClarityApp, session_id: int, service: Any) -> None:
        self.app = app
        self.session_id = session_id
        self.service = service
        self.view: OrderView | None = None
        self.notice = ""  # shown by the next card step (a decline, a refused summary)

    async def _call(self, fn: Any, *args: Any) -> Any:
        """Blocking service calls (database, gateway) run in a thread, never on the UI's loop."""
        return await asyncio.to_thread(fn, *args)

    def _fail(self, message: str) -> None:
        self.app.notify(message, title=self.TITLE, severity="error", timeout=self.FAIL_TIMEOUT)

    async def _abandon(self, view: OrderView) -> str | None:
        """Cancel the order; returns what the cancel found at the gateway (a refund on its way), if anything."""
        try:
            cancelled = await self._call(self.service.cancel, view.id)
        except UserFacingError:
            return None  # already finished or taken over elsewhere: nothing of ours to cancel
        return getattr(cancelled, "last_error", None) if getattr(cancelled, "state", None) == OrderState.CANCELLED \
            else None

    @staticmethod
    def signed(view: OrderView) -> bool:
        """Signed already (a decline sent us back to the card): the next card pays straight away."""
        return view.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING)

    async def _leave_signed(self, view: OrderView) -> None:
        """Back out of the card step after signing: the order is abandoned, and the attendant told."""
        settled = await self._abandon(view)
        # Only the outbox knows whether money moved: a refund on its way is said as such.
        self.app.notify(f"The {self.NOUN} is cancelled: {settled or self.NOTHING_DONE + '.'}", title=self.TITLE,
                        severity="warning", timeout=8)

    async def _pay_on_reader(self, view: OrderView) -> PayResult | str:
        """Card present: the customer pays on the reader; Esc cancels there and nothing is charged.
        Ends like ProcessingScreen: the PayResult, or the message of a refused step."""
        from clarity_tui.screens.device_action import DeviceActionScreen

        reader = devices_of(self.app).card_reader
        outcome = await self.app.push_screen_wait(DeviceActionScreen.payment_on_reader(
            reader, self.service.pay, view.id, amount=money(view.due_today_cents)))
        if not outcome.ok:
            return f"{outcome.error or 'Cancelled on the reader'}: nothing was charged."
        result = outcome.result
        if isinstance(result, UserFacingError):
            return str(result)  # a refused step: back to the card with why
        if isinstance(result, Exception):
            raise result  # a bug: the crash guard logs it; the attendant is not shown its text
        assert isinstance(result, PayResult)
        return result

    async def _finish(self, view: OrderView) -> OrderView:
        await self.app.push_screen_wait(ConfirmationScreen(view))
        return view

    async def _shared_step(self, step: str, view: OrderView) -> Any:
        """summary, terms, signature or pay: the order, BACK, None (the flow ends) or the screen's result."""
        app, service = self.app, self.service
        if step == "summary":
            try:
                view = await self._call(service.review, view.id)
            except UserFacingError as exc:
                self.notice = str(exc)
                return BACK
            return await app.push_screen_wait(CheckoutSummaryScreen(view, service))
        if step == "terms":
            terms = await self._call(service.current_terms)
            result = await app.push_screen_wait(TermsScreen(view, terms, service))
            if result == DECLINED:
                app.notify(f"The customer declined the terms: the {self.NOUN} is cancelled and {self.NOTHING_DONE}.",
                           title=self.TITLE, severity="warning", timeout=8)
                return None
            return result
        if step == "signature":
            return await app.push_screen_wait(SignatureScreen(view, service))
        if step == "pay":
            if view.card_present:
                return await self._pay_on_reader(view)
            return await app.push_screen_wait(ProcessingScreen(view, service))
        raise AssertionError(f"unknown step {step}")
