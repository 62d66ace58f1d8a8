"""The migration flow: one step screen at a time, driven from a worker, resumable from any state.

match ("That's Me") -> contact (email by SMS, Confirm creates the account) -> card on file (no
charge; billing date kept, or a manager's) -> the shared checkout screens: summary -> terms ->
signature -> processing (claim once, save card, anchored subscription, activate) -> confirmation.

Each screen dismisses with the order (next step) or BACK (previous step). The order lives in the
database, so reopening the migration (or restarting the app after a crash) continues where it
stopped, through the billing outbox: the card is never saved twice. A declined card returns to the
card step, and Continue then finishes straight away (the customer already signed).
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import App

from clarity_tui.screens.checkout_shared import (
    BACK,
    CheckoutSummaryScreen,
    ConfirmationScreen,
    ProcessingScreen,
    SignatureScreen,
    TermsScreen,
)
from clarity_tui.screens.checkout_shared.common import USER_ERRORS
from clarity_tui.screens.checkout_shared.terms import DECLINED
from clarity_tui.screens.migration.card import CardOnFileScreen
from clarity_tui.screens.migration.contact import ContactScreen
from clarity_tui.screens.migration.match import LegacyMatchScreen
from clarity_tui.services.migration import AlreadyMigrated, MigrationService
from clarity_tui.services.sales import OrderView, PayResult
from db.models import OrderState

TITLE = "Migrate membership"
STEPS = ("contact", "card", "summary", "terms", "signature", "pay")


class MigrationFlow:
    def __init__(self, app: App[Any], session_id: int, service: MigrationService | None = None) -> None:
        self.app = app
        self.session_id = session_id
        self.service = service or MigrationService.for_app(app)
        self.view: OrderView | None = None
        self.notice = ""

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def _fail(self, message: str) -> None:
        self.app.notify(message, title=TITLE, severity="error", timeout=10)

    async def run(self) -> OrderView | None:
        """Run the migration to the end (or until the attendant leaves it). Returns the finished order."""
        try:
            view = await self._call(self.service.open_migration_for_session, self.session_id)
            if view is None:
                view = await self._match()
                if view is None:
                    return None
                step = "contact"
            else:
                step = self.service.resume_step(view)
                if step == "pay" and view.state == OrderState.PAYMENT_PENDING and view.last_error:
                    step, self.notice = "card", view.last_error
        except USER_ERRORS as exc:
            self._fail(str(exc))
            return None
        while True:
            self.view = view
            result = await self._step(step, view)
            if result is None:
                return None
            if result == BACK:
                if step == "contact":
                    await self._abandon(view)
                    return await self.run()  # back to the match: "Not me" and search again
                if step == "card" and view.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
                    await self._abandon(view)
                    self.app.notify("The migration is cancelled: nothing was charged or saved.", title=TITLE,
                                    severity="warning", timeout=8)
                    return None
                step = STEPS[max(STEPS.index(step) - 1, 0)]
                view = await self._call(self.service.order, view.id)
                continue
            if isinstance(result, PayResult):
                view = await self._call(self.service.order, view.id)
                if result.ok:
                    await self.app.push_screen_wait(ConfirmationScreen(view))
                    return view
                self.notice = result.message or "The card could not be saved: take another card."
                step = "card"
                continue
            if isinstance(result, str):  # a refused step's message: back to the card with it
                self.notice = result
                view = await self._call(self.service.order, view.id)
                if view.state == OrderState.CANCELLED:
                    self._fail(result)
                    return None
                step = "card"
                continue
            view = result
            if step == "card" and view.state in (OrderState.SIGNED, OrderState.PAYMENT_PENDING):
                step = "pay"  # another card after a decline: the customer already signed
            else:
                step = STEPS[STEPS.index(step) + 1]

    async def _match(self) -> OrderView | None:
        service = self.service
        detail = await self._call(self._plate)
        candidates = await self._call(service.candidates_for_session, self.session_id)
        notice = ""
        while True:
            chosen = await self.app.push_screen_wait(LegacyMatchScreen(detail, candidates, service, notice))
            if chosen == BACK:
                return None
            try:
                return await self._call(service.begin, self.session_id, chosen)
            except AlreadyMigrated as exc:
                notice = str(exc)
            except USER_ERRORS as exc:
                notice = str(exc)
            candidates = await self._call(service.candidates_for_session, self.session_id)

    def _plate(self) -> str:
        from db.models import VehicleSession

        with self.service.db.read() as s:
            vs = s.get(VehicleSession, self.session_id)
            return vs.plate if vs else "?"

    async def _step(self, step: str, view: OrderView) -> Any:
        app, service = self.app, self.service
        try:
            if step == "contact":
                form = await self._call(service.contact_form, view.id)
                cfg = app.settings.messaging  # type: ignore[attr-defined]
                return await app.push_screen_wait(ContactScreen(view, service, form,
                                                                reply_timeout=cfg.reply_timeout_seconds,
                                                                poll_interval=cfg.poll_interval_seconds))
            if step == "card":
                notice, self.notice = self.notice, ""
                billing = await self._call(service.billing_date, view.id)
                return await app.push_screen_wait(CardOnFileScreen(view, service, billing, notice))
            if step == "summary":
                try:
                    view = await self._call(service.review, view.id)
                except USER_ERRORS as exc:
                    self.notice = str(exc)
                    return BACK
                return await app.push_screen_wait(CheckoutSummaryScreen(view, service))
            if step == "terms":
                terms = await self._call(service.current_terms)
                result = await app.push_screen_wait(TermsScreen(view, terms, service))
                if result == DECLINED:
                    app.notify("The customer declined the terms: the migration is cancelled; nothing was charged.",
                               title=TITLE, severity="warning", timeout=8)
                    return None
                return result
            if step == "signature":
                return await app.push_screen_wait(SignatureScreen(view, service))
            if step == "pay":
                return await app.push_screen_wait(ProcessingScreen(view, service))
        except USER_ERRORS as exc:
            self._fail(str(exc))
            return None
        raise AssertionError(f"unknown step {step}")

    async def _abandon(self, view: OrderView) -> None:
        try:
            await self._call(self.service.cancel, view.id)
        except USER_ERRORS:
            pass  # already finished or taken over elsewhere: nothing of ours to cancel
