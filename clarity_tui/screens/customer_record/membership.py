"""The Membership tab: the membership table and its detail, the membership's payments newest first with
their failure reasons, and the actions: pause/resume, plan, cancel/keep, expiry, a new card, refund, and
extra benefits beside the plan's (Ctrl+N adds, F8 removes, a manager's PIN in place).

Every change goes through CustomerService (MemberBenefits for the extras); the payment list is read
through MembershipPayments.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Static

from clarity_tui.screens.customer_record.base import RecordScreenBase, date_text
from clarity_tui.screens.customer_record.benefits import benefit_type_choices
from clarity_tui.services.customer_input import ValidationFailed, parse_date
from clarity_tui.services.customers import CustomerRecord, MembershipInfo
from clarity_tui.services.member_benefits import ExtraBenefit, MemberBenefits, extras_line, of_membership
from clarity_tui.services.membership_payments import MembershipPayments, PaymentLine
from clarity_tui.services.permissions import Permission
from clarity_tui.errors import UserFacingError
from clarity_tui.widgets.customer_forms import FieldSpec, FormDialog, ManagerAsk
from clarity_tui.wiring import services_of
from db.models import MembershipStatus

MEMBERSHIP_COLUMNS = [("Plan", 20), ("Status", 10), ("Next bill", 11), ("Expires", 11), ("Cancel", 6)]


def _check_expiry(values: dict[str, Any]) -> None:
    """The expiration form's own validation, before a manager is asked (the service checks it again)."""
    errors: dict[str, str] = {}
    parse_date(values["expires_on"], "Expiration date", errors, "expires_on")
    if errors:
        raise ValidationFailed(errors)


def _check_amount(values: dict[str, Any]) -> None:
    """The refund form's own validation, before a manager is asked (the service checks it again)."""
    from clarity_tui.services.membership_actions import dollars_to_cents

    amount = (values.get("amount") or "").strip()
    if amount and dollars_to_cents(amount) is None:
        raise ValidationFailed({"amount": "Type the amount like 12.50, or leave it empty to refund all."})


# The payment list: date, kind in words, amount, and why a renewal failed.
PAYMENT_COLUMNS = [("Date", 10), ("Payment", 14), ("Amount", 10), ("Reason", 35)]


class MembershipTab(RecordScreenBase):
    def _membership_pane(self) -> ComposeResult:
        yield DataTable(id="membership-table", cursor_type="row")
        yield Static("", id="membership-detail")
        yield DataTable(id="payments-table", cursor_type="row")
        with Horizontal(classes="tab-buttons"):
            yield Button("Pause", id="membership-pause", action="screen.membership_pause")
            yield Button("Plan F4", id="membership-plan", action="screen.edit")
            yield Button("Cancel", id="membership-cancel", action="screen.membership_cancel")
            yield Button("Expiry", id="membership-expiry", action="screen.membership_expiry")
            yield Button("Reader", id="membership-reader", variant="primary", action="screen.membership_reader",
                         tooltip="The member's new card, from the card reader")
            yield Button("Key in", id="membership-card", action="screen.membership_card",
                         tooltip="The member's new card, keyed in by hand")
            yield Button("Refund ^G", id="membership-refund", action="screen.refund",
                         tooltip="Give money back on the membership's payment (managers)")
            yield Button("+Extra ^N", id="membership-extra-add", action="screen.new",
                         tooltip="Add an extra benefit beside the plan's (managers)")
            yield Button("-Extra F8", id="membership-extra-remove", action="screen.delete",
                         tooltip="Remove an extra benefit (managers)")

    # --- the table, the detail and the payments ----------------------------------------------------

    def _membership(self) -> MembershipInfo | None:
        """The highlighted membership (the current one, first, when none is)."""
        if self.record is None or not self.record.memberships:
            return None
        mid = self._selected("membership-table")
        return next((m for m in self.record.memberships if m.id == mid), self.record.memberships[0])

    @on(DataTable.RowHighlighted, "#membership-table")
    def _membership_highlighted(self) -> None:
        self._show_membership_detail()

    def _fill_memberships(self, record: CustomerRecord) -> None:
        self._refill_table("membership-table", [
            (str(m.id), (m.plan_name, m.status.replace("_", " "), date_text(m.next_billing_on), date_text(m.expires_on),
                         "yes" if m.cancel_at_period_end else ""))
            for m in record.memberships
        ])
        self._show_membership_detail()

    def _show_membership_detail(self) -> None:
        m = self._membership()
        detail = self.query_one("#membership-detail", Static)
        pause = self.query_one("#membership-pause", Button)
        self._load_payments(m.id if m is not None else None)
        if m is None:
            detail.update("No membership. Sell one from a session (Purchase Membership).")
            pause.label = "Pause"
            return
        record = self.record
        card = next((c for c in record.cards if c.is_default), None) if record else None
        lines = [
            f"Vehicles ({len(m.vehicles)}/{m.vehicle_limit}): " + ("; ".join(m.vehicles) or "-"),
            "Benefits: " + (", ".join(m.benefits) or "-"),
            "Extra benefits: " + (extras_line(self._extras()) or "none (Ctrl+N adds one)"),
            f"Started {date_text(m.started_on)} · card {card.brand} •••• {card.last4}" if card else f"Started {date_text(m.started_on)} · no card on file",
        ]
        if m.scheduled_change:
            lines.append(f"Downgrade: {m.scheduled_change} (the next billing date).")
        if m.cancel_at_period_end:
            lines.append(f"Cancels at period end ({date_text(m.expires_on)}).")
        if m.pending_sync:
            lines.append("⟳ Pending sync with the payment gateway.")
        detail.update("\n".join(lines))
        pause.label = "Resume" if m.status == MembershipStatus.PAUSED else "Pause"
        self.query_one("#membership-cancel", Button).label = "Keep" if m.cancel_at_period_end else "Cancel"

    @work(thread=True, exclusive=True, group="record-payments", exit_on_error=False)
    def _load_payments(self, membership_id: int | None) -> None:
        services = services_of(self)
        lines = [] if membership_id is None else MembershipPayments(
            services.db, zone=services.settings.site.zone).history(membership_id)
        self.app.call_from_thread(self._fill_payments, lines)

    def _fill_payments(self, lines: list[PaymentLine]) -> None:
        self._refill_table("payments-table", [
            (str(p.id), (p.occurred_on.isoformat(), p.kind_words, p.amount, (p.reason or "").replace("\n", " ")))
            for p in lines
        ])

    # --- Extra benefits (seed 002), beside the plan's own ------------------------------------------

    def _extras(self) -> list[ExtraBenefit]:
        """The selected membership's live extras (and the account benefits), not another membership's."""
        record, m = self.record, self._membership()
        if record is None or m is None:
            return []
        return of_membership(record.benefits, m.id, m.status, services_of(self).today())

    def _extras_ask(self, what: str, m: MembershipInfo) -> ManagerAsk:
        return ManagerAsk(Permission.BENEFIT, "membership.benefit", entity="membership", entity_id=m.id,
                          why=f"{what} on {m.plan_name} for {self._customer_name()}.")

    def _member_benefits(self) -> MemberBenefits:
        services = services_of(self)
        return MemberBenefits(services.db, today=services.today)

    def _membership_benefit_add(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        dialog = FormDialog(f"Extra benefit on {m.plan_name} (managers)", [
            FieldSpec("kind", "Type", "select", None, benefit_type_choices(), placeholder="Choose a type"),
            FieldSpec("description", "Description", placeholder="why, e.g. a rewash after a complaint"),
            FieldSpec("quantity", "Quantity", value="1"),
            FieldSpec("expires_on", "Expires", placeholder="YYYY-MM-DD, or empty: never"),
        ], lambda v, who: self._member_benefits().add(who, m.id, v["kind"] or "", v["description"], v["quantity"],
                                                       v["expires_on"]),
            save_label="Add", approval=self._extras_ask("Add an extra benefit", m))
        self._dialog(dialog, "Extra benefit added.")

    def _membership_benefit_remove(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        extras = self._extras()
        if not extras:
            self.notify("No extra benefit to remove: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog(f"Remove an extra benefit from {m.plan_name} (managers)", [
            FieldSpec("benefit", "Benefit", "select", str(extras[0].id), [(e.label, str(e.id)) for e in extras]),
        ], lambda v, who: self._member_benefits().remove(who, m.id, int(v["benefit"] or 0)),
            save_label="Remove", approval=self._extras_ask("Remove an extra benefit", m))
        self._dialog(dialog, "Extra benefit removed.")

    # --- Membership -------------------------------------------------------------------------------

    def _customer_name(self) -> str:
        return self.record.name if self.record is not None else "this customer"

    def _need_membership(self) -> MembershipInfo | None:
        if self._need_record() is None:
            return None
        m = self._membership()
        if m is None:
            self.notify("This customer has no membership.", severity="warning")
        return m

    def action_membership_pause(self) -> None:
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

    def action_membership_cancel(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        if m.cancel_at_period_end:
            self._confirm_then(f"Keep {m.plan_name}? The scheduled cancel is undone and billing goes on.",
                               lambda svc: svc.keep_membership(self.actor, m.id, m.version),
                               "The membership is kept: the cancel is undone.", yes="Keep it")
            return
        self._confirm_then(f"Cancel {m.plan_name} at the end of the period ({date_text(m.next_billing_on)})?",
                           lambda svc: svc.cancel_at_period_end(self.actor, m.id, m.version),
                           "Membership will cancel at period end.", yes="Cancel it")

    def action_refund(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        dialog = FormDialog(f"Refund {m.plan_name} (managers only)", [
            FieldSpec("amount", "Amount", placeholder="e.g. 12.50; empty: all that is left"),
        ], lambda v, who: self.service().refund_membership(who, m.id, v["amount"]), save_label="Refund",
            approval=ManagerAsk(Permission.REFUND, "membership.refund", entity="membership", entity_id=m.id,
                                why=f"Refund {m.plan_name} for {self._customer_name()}.", check=_check_amount))
        self._dialog(dialog, lambda outcome: self.notify(
            outcome.message if outcome.queued else "Refund sent to the payment gateway."))

    def action_membership_expiry(self) -> None:
        m = self._need_membership()
        if m is None:
            return
        dialog = FormDialog("Expiration date (managers only)", [
            FieldSpec("expires_on", "Expires", value=m.expires_on.isoformat() if m.expires_on else "", placeholder="YYYY-MM-DD"),
        ], lambda v, who: self.service().set_expiration(who, m.id, m.version, v["expires_on"]),
            approval=ManagerAsk(Permission.EXPIRATION, "membership.expiration_set", entity="membership", entity_id=m.id,
                                why=f"Change the expiration date of {m.plan_name} for {self._customer_name()}.",
                                check=_check_expiry))
        self._dialog(dialog, "Expiration date saved.")

    def action_membership_card(self) -> None:
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

    def action_membership_reader(self) -> None:
        m = self._need_membership()
        if m is not None:
            self._membership_reader(m)

    @work(exclusive=True, group="record-reader", exit_on_error=False)
    async def _membership_reader(self, m: MembershipInfo) -> None:
        """The new card from the lane's reader (the usual way; keying in is the fallback)."""
        from clarity_tui.screens.device_action import DeviceActionScreen

        devices = self.clarity.devices
        assert devices is not None  # the boot built them before any record could open
        charge = " Its past-due period is charged on it." if m.status == MembershipStatus.PAST_DUE else ""
        services = services_of(self)
        gateway = await asyncio.to_thread(lambda: services.gateway)
        outcome = await self.app.push_screen_wait(DeviceActionScreen.card_from_reader(
            devices.card_reader, services.db, gateway, customer_id=self.customer_id, membership_id=m.id, note=charge))
        if not outcome.ok:
            self.notify(f"{outcome.error or 'Cancelled.'} Try the reader again, or key the card in.",
                        severity="warning", timeout=8)
            return
        card = outcome.result
        assert card is not None  # a reader that succeeded gave a card
        try:
            pm = await asyncio.to_thread(lambda: self.service().update_card(self.actor, m.id, m.version, card))
        except UserFacingError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.notify(f"Card saved: {pm.brand} •••• {pm.last4}.")
        self.load(refill=False)
