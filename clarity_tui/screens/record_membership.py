"""The Membership tab's actions of the customer record: a mixin of CustomerRecordScreen.

Split from customer_record.py (one job: pause/resume, plan, cancel/keep, expiry, a new card, refund).
The screen provides `service()`, `actor`, `record`, `_membership()`, `_need_record()`, `_dialog()`,
`_confirm_then()` and `load()`; everything here goes through CustomerService.
"""

from __future__ import annotations

from typing import Any

from textual import work

from clarity_tui.services.customers import MembershipInfo
from clarity_tui.widgets.customer_forms import USER_ERRORS, FieldSpec, FormDialog
from db.models import MembershipStatus


def _date(d: Any) -> str:
    return d.isoformat() if d else "-"


class MembershipTabActions:
    actor: Any
    record: Any
    app: Any
    service: Any
    notify: Any
    load: Any
    _membership: Any
    _need_record: Any
    _dialog: Any
    _confirm_then: Any

    # --- Membership -------------------------------------------------------------------------------

    def _need_membership(self) -> MembershipInfo | None:
        m = self._membership()
        if m is None:
            self.notify("This customer has no membership.", severity="warning")
        return m

    def _membership_pause(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        if m.status == MembershipStatus.PAUSED:
            self._confirm_then(f"Resume {m.plan_name}?", lambda svc: svc.resume_membership(self.actor, m.id, m.version),
                               "Membership resumed.", yes="Resume")
        else:
            self._confirm_then(f"Pause {m.plan_name}? Billing stops until it is resumed.",
                               lambda svc: svc.pause_membership(self.actor, m.id, m.version), "Membership paused.", yes="Pause")

    def _membership_plan(self) -> None:
        m = self._need_membership()
        if m is None or self.record is None:
            return
        svc = self.service()  # each choice says what it costs today, before it is confirmed
        choices = [(f"{name} · {svc.plan_change_preview(m.id, code)}", code) for code, name, _tier in self.record.plans]
        dialog = FormDialog(f"Change plan (now {m.plan_name})", [FieldSpec("plan", "New plan", "select", m.plan_code, choices)],
                            lambda v: self.service().change_plan(self.actor, m.id, m.version, v["plan"] or ""))
        self._dialog(dialog, lambda direction: self.notify(
            "Plan upgraded." if direction == "upgrade" else "Downgrade scheduled for the next billing date."))

    def _membership_cancel(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        if m.cancel_at_period_end:
            self._confirm_then(f"Keep {m.plan_name}? The scheduled cancel is undone and billing goes on.",
                               lambda svc: svc.keep_membership(self.actor, m.id, m.version),
                               "The membership is kept: the cancel is undone.", yes="Keep it")
            return
        self._confirm_then(f"Cancel {m.plan_name} at the end of the period ({_date(m.next_billing_on)})?",
                           lambda svc: svc.cancel_at_period_end(self.actor, m.id, m.version),
                           "Membership will cancel at period end.", yes="Cancel it")

    def action_refund(self) -> None:
        m = self._need_membership() if self._need_record() else None
        if m is None:
            return
        dialog = FormDialog(f"Refund {m.plan_name} (managers only)", [
            FieldSpec("amount", "Amount", placeholder="12.50, or empty for all that is left"),
        ], lambda v: self.service().refund_membership(self.actor, m.id, v["amount"]), save_label="Refund")
        self._dialog(dialog, lambda outcome: self.notify(
            outcome.message if outcome.queued else "Refund sent to the payment gateway."))

    def _membership_expiry(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        dialog = FormDialog("Expiration date (managers only)", [
            FieldSpec("expires_on", "Expires", value=m.expires_on.isoformat() if m.expires_on else "", placeholder="YYYY-MM-DD"),
        ], lambda v: self.service().set_expiration(self.actor, m.id, m.version, v["expires_on"]))
        self._dialog(dialog, "Expiration date saved.")

    def _membership_card(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        from clarity_tui.payments.cards import ManualCard

        def submit(v: dict[str, Any]) -> Any:
            card = ManualCard.parse(v["number"], v["expiry"], v["cvc"])
            return self.service().update_card(self.actor, m.id, m.version, card)

        note = " A past-due period is charged on it." if m.status == MembershipStatus.PAST_DUE else ""
        dialog = FormDialog(f"Update card (keyed).{note}", [
            FieldSpec("number", "Card number", "secret", placeholder="digits only"),
            FieldSpec("expiry", "Expiry", placeholder="MM/YY"),
            FieldSpec("cvc", "CVC", "secret"),
        ], submit, save_label="Save card")
        self._dialog(dialog, lambda pm: self.notify(f"Card saved: {pm.brand} •••• {pm.last4}."))

    @work(exclusive=True, group="record-reader", exit_on_error=False)
    async def _membership_reader(self) -> None:
        """The new card from the lane's reader (the usual way; keying in is the fallback)."""
        import asyncio

        from clarity_tui.screens.device_action import DeviceActionScreen

        m = self._need_membership()
        if m is None:
            return
        reader = self.app.devices.card_reader  # type: ignore[attr-defined]
        charge = " Its past-due period is charged on it." if m.status == MembershipStatus.PAST_DUE else ""
        gateway = (await asyncio.to_thread(self.service)).gateway
        outcome = await self.app.push_screen_wait(DeviceActionScreen.card_from_reader(
            reader, self.app.db, gateway, customer_id=self.customer_id, membership_id=m.id, note=charge))  # type: ignore[attr-defined]
        if not outcome.ok:
            self.notify(f"{outcome.error or 'Cancelled.'} Try the reader again, or key the card in.",
                        severity="warning", timeout=8)
            return
        try:
            pm = await asyncio.to_thread(
                lambda: self.service().update_card(self.actor, m.id, m.version, outcome.result))
        except USER_ERRORS as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.notify(f"Card saved: {pm.brand} •••• {pm.last4}.")
        self.load(refill=False)
