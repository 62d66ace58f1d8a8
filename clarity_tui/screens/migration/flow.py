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

from typing import TYPE_CHECKING, Any

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK
from clarity_tui.screens.checkout_shared.flow import CheckoutFlow
from clarity_tui.screens.migration.card import CardOnFileScreen
from clarity_tui.screens.migration.contact import ContactScreen
from clarity_tui.screens.migration.match import LegacyMatchScreen
from clarity_tui.services.migration import AlreadyMigrated, InactiveLegacyMember, MigrationService
from clarity_tui.services.permissions import Permission, allowed, refusal
from clarity_tui.services.orders import OrderView, PayResult
from clarity_tui.wiring import services_of
from db.models import OrderState

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp

TITLE = "Migrate membership"
STEPS = ("contact", "card", "summary", "terms", "signature", "pay")


class MigrationFlow(CheckoutFlow):
    TITLE = TITLE
    NOUN = "migration"
    NOTHING_DONE = "nothing was charged or saved"
    FAIL_TIMEOUT = 10

    def __init__(self, app: ClarityApp, session_id: int, service: MigrationService | None = None) -> None:
        super().__init__(app, session_id, service or MigrationService.from_services(services_of(app), app.actor))

    async def run(self) -> OrderView | None:
        """Run the migration to the end (or until the attendant leaves it). Returns the finished order."""
        actor = self.service.actor
        if not allowed(actor, Permission.MIGRATE):  # told before the match screen, not after it
            self._fail(refusal(actor, Permission.MIGRATE))
            return None
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
        except UserFacingError as exc:
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
                if step == "card" and self.signed(view):
                    await self._leave_signed(view)
                    return None
                step = STEPS[max(STEPS.index(step) - 1, 0)]
                view = await self._call(self.service.order, view.id)
                continue
            if isinstance(result, PayResult):
                view = await self._call(self.service.order, view.id)
                if result.ok:
                    return await self._finish(view)
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
            if step == "card" and self.signed(view):
                step = "pay"  # another card after a decline: the customer already signed
            else:
                step = STEPS[STEPS.index(step) + 1]

    async def _match(self) -> OrderView | None:
        service = self.service
        detail = await self._call(service.session_plate, self.session_id)
        candidates = await self._call(service.candidates_for_session, self.session_id)
        notice = ""
        while True:
            chosen = await self.app.push_screen_wait(LegacyMatchScreen(detail, candidates, service, notice))
            if not isinstance(chosen, int):  # BACK
                return None
            try:
                return await self._call(service.begin, self.session_id, chosen)
            except InactiveLegacyMember as exc:  # cancelled or terminated: a manager approves, with the reason
                approved = await self._approve_inactive(chosen, str(exc))
                if isinstance(approved, OrderView):
                    return approved
                notice = approved or "Not migrated: a cancelled or terminated member needs a manager's approval."
            except AlreadyMigrated as exc:
                notice = str(exc)
            except UserFacingError as exc:
                notice = str(exc)
            candidates = await self._call(service.candidates_for_session, self.session_id)

    async def _approve_inactive(self, legacy_member_id: int, message: str) -> OrderView | str | None:
        """The reason, then a manager's PIN, then begin again with both (the service checks them).
        Returns the order, a refusal's message, or None (the attendant or the manager cancelled)."""
        from clarity_tui.screens.migration.prompts import InactiveReasonPrompt
        from clarity_tui.widgets.manager_pin import manager_approval

        reason = await self.app.push_screen_wait(InactiveReasonPrompt(message))
        if not reason:
            return None
        manager = await manager_approval(self.app, "migration.inactive_approved", why=message,
                                         entity="legacy_member", entity_id=legacy_member_id)
        if manager is None:
            return None
        try:
            return await self._call(self.service.begin, self.session_id, legacy_member_id, manager, reason)
        except UserFacingError as exc:
            return str(exc)

    async def _step(self, step: str, view: OrderView) -> Any:
        app, service = self.app, self.service
        try:
            if step == "contact":
                form = await self._call(service.contact_form, view.id)
                cfg = services_of(app).settings.messaging
                return await app.push_screen_wait(ContactScreen(view, service, form,
                                                                reply_timeout=cfg.reply_timeout_seconds,
                                                                poll_interval=cfg.poll_interval_seconds))
            if step == "card":
                notice, self.notice = self.notice, ""
                billing = await self._call(service.billing_date, view.id)
                return await app.push_screen_wait(CardOnFileScreen(view, service, billing, notice))
            return await self._shared_step(step, view)
        except UserFacingError as exc:
            self._fail(str(exc))
            return None
