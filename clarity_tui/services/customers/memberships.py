"""The Membership tab's actions: expiry, pause/resume, cancel/keep, plan change, refund, a new card.

Glue only: every action that reaches the payment gateway goes through the outbox
(services/membership_actions.py); memberships no gateway bills change locally the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from clarity_tui.payments.cards import CardToken, ManualCard
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import CustomerError, NotFound, ValidationFailed, parse_date
from clarity_tui.services.customers.base import CustomerServiceBase
from clarity_tui.services.membership_rules import CURRENT_STATUSES
from clarity_tui.services.permissions import Permission, require
from db.models import Membership, MembershipStatus, PaymentMethod, SalesOrder, utcnow

if TYPE_CHECKING:
    from clarity_tui.services.membership_actions import MembershipActions


class CustomerMemberships(CustomerServiceBase):
    """An upgrade's charge today is taxed with the site's sales tax (`tax`, services/sales_tax.py)."""

    def _membership(self, s: Session, membership_id: int, expected_version: int | None, *, lock: bool = True) -> Membership:
        m = s.get(Membership, membership_id, with_for_update=lock or None)
        if m is None:
            raise NotFound(f"Membership {membership_id} no longer exists: reload the record.")
        if expected_version is not None and m.version != expected_version:
            raise self._stale(s, "membership", membership_id, "This membership")
        return m

    def set_expiration(self, actor: Actor, membership_id: int, expected_version: int, expires_on: str | dt.date | None) -> None:
        require(actor, Permission.EXPIRATION)
        errors: dict[str, str] = {}
        date = parse_date(expires_on, "Expiration date", errors, "expires_on")
        if errors:
            raise ValidationFailed(errors)
        with self.db.write() as s:
            m = self._membership(s, membership_id, expected_version)
            if date is not None and date < m.started_on:
                raise ValidationFailed({"expires_on": f"The expiration date cannot be before the start date ({m.started_on})."})
            before = audit.snapshot(m, ["expires_on"])
            m.expires_on = date
            m.version += 1
            m.updated_at = utcnow()
            audit.record(s, actor, "membership.expiration_set", "membership", m.id, before=before, after=audit.snapshot(m, ["expires_on"]))

    def _actions(self) -> MembershipActions:
        """Membership changes go through the payments outbox (services/membership_actions.py)."""
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.membership_actions import MembershipActions

        if self.gateway is None:
            raise CustomerError("This membership is billed through the payment gateway, and no gateway is configured "
                                "on this terminal: check the payments settings.")
        return MembershipActions(BillingService(self.db, self.gateway, commissions=self.commissions))

    def _membership_action(self, actor: Actor, membership_id: int, version: int, operation: str,
                           allowed_from: set[str], what: str, **payload: Any) -> Any:
        from clarity_tui.services.membership_actions import ActionRefused, StaleMembership

        require(actor, Permission.MEMBERSHIP)
        with self.db.read() as s:
            m = self._membership(s, membership_id, version, lock=False)
            if m.status not in allowed_from:
                raise CustomerError(f"A {m.status.replace('_', ' ')} membership cannot be {what}.")
            billed = bool(m.gateway_subscription_id)
        if billed and self.gateway is None:
            self._actions()  # raises the "no gateway" message
        from clarity_tui.services.membership_actions import MembershipActions

        actions = self._actions() if self.gateway is not None else MembershipActions(None, db=self.db)
        try:
            return actions.change(actor, membership_id, version, operation, allowed_from, what, **payload)
        except StaleMembership:
            with self.db.read() as s:
                raise self._stale(s, "membership", membership_id, "This membership") from None
        except ActionRefused as exc:
            raise CustomerError(str(exc)) from exc

    def pause_membership(self, actor: Actor, membership_id: int, version: int) -> Any:
        return self._membership_action(actor, membership_id, version, "subscription.pause",
                                       {MembershipStatus.ACTIVE}, "paused")

    def resume_membership(self, actor: Actor, membership_id: int, version: int) -> Any:
        return self._membership_action(actor, membership_id, version, "subscription.resume",
                                       {MembershipStatus.PAUSED}, "resumed")

    def cancel_at_period_end(self, actor: Actor, membership_id: int, version: int) -> Any:
        return self._membership_action(actor, membership_id, version, "subscription.cancel",
                                       set(CURRENT_STATUSES), "cancelled")

    def keep_membership(self, actor: Actor, membership_id: int, version: int) -> Any:
        """Undo a scheduled cancel at period end."""
        return self._membership_action(actor, membership_id, version, "subscription.keep",
                                       set(CURRENT_STATUSES), "kept")

    def change_plan(self, actor: Actor, membership_id: int, version: int, plan_code: str) -> str:
        """Upgrade (the prorated difference charged today on the card on file, the plan changes now) or
        downgrade (from the next billing date); returns "upgrade" or "downgrade". services/plan_changes.py."""
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.plan_changes import PlanChangeRefused, PlanChanges, StaleVersion

        require(actor, Permission.MEMBERSHIP)
        with self.db.read() as s:
            billed = bool(self._membership(s, membership_id, version, lock=False).gateway_subscription_id)
        if billed and self.gateway is None:
            self._actions()  # raises the "no gateway" message
        from clarity_tui.payments.simulated import SimulatedGateway

        # A membership no gateway bills changes locally: the simulated gateway is never reached then.
        billing = BillingService(self.db, self.gateway or SimulatedGateway(self.db), actor, tax=self.tax,
                                 commissions=self.commissions)
        try:
            direction, outcome = PlanChanges(billing, self.today).from_record(actor, membership_id, version, plan_code)
        except StaleVersion:
            with self.db.read() as s:
                raise self._stale(s, "membership", membership_id, "This membership") from None
        except PlanChangeRefused as exc:
            raise ValidationFailed({"plan": str(exc)}) from exc
        if not (outcome.completed or outcome.pending_sync):
            raise CustomerError(f"The plan was not changed: {outcome.message}")
        return direction

    def plan_change_preview(self, membership_id: int, plan_code: str) -> str:
        """For the plan dialog: "upgrade, $12.34 today", "downgrade from 2026-12-14" or "not possible"."""
        from clarity_tui.services.plan_changes import preview

        with self.db.read() as s:
            return preview(s, membership_id, plan_code, self.today(), self.tax)

    def refund_membership(self, actor: Actor, membership_id: int, amount: str | None = None) -> Any:
        """A manager refunds the order that paid for this membership: all that is left, or `amount`
        in dollars as typed ("12.50")."""
        from clarity_tui.services.membership_actions import ActionRefused, dollars_to_cents

        require(actor, Permission.REFUND)
        cents = None
        if amount is not None and amount.strip():
            cents = dollars_to_cents(amount)
            if cents is None:
                raise ValidationFailed({"amount": "Type the amount like 12.50, or leave it empty to refund all."})
        with self.db.read() as s:
            order_id = s.exec(select(SalesOrder.id).where(SalesOrder.membership_id == membership_id,
                                                          col(SalesOrder.gateway_payment_id).is_not(None))
                              .order_by(col(SalesOrder.id).desc())).first()
        if order_id is None:
            raise CustomerError("Nothing was charged at the lane for this membership, so there is nothing to refund here.")
        try:
            return self._actions().refund(actor, order_id, cents)
        except ActionRefused as exc:
            raise CustomerError(str(exc)) from exc

    def update_card(self, actor: Actor, membership_id: int, version: int, card: CardToken | ManualCard) -> PaymentMethod:
        """Save a new card as the member's default; a past-due member's open invoice is paid with it."""
        from clarity_tui.services.membership_actions import ActionRefused, StaleMembership

        require(actor, Permission.MEMBERSHIP)
        if self.gateway is None:
            raise CustomerError("No payment gateway is configured on this terminal: check the payments settings.")
        try:
            outcome = self._actions().update_card(actor, membership_id, version, card)
        except StaleMembership:
            with self.db.read() as s:
                raise self._stale(s, "membership", membership_id, "This membership") from None
        except ActionRefused as exc:
            raise CustomerError(str(exc)) from exc
        with self.db.read() as s:
            card_row = s.get(PaymentMethod, outcome.payment_method_id)
        if card_row is None:
            raise CustomerError("The new card was removed on another terminal: reload the record.")
        return card_row
