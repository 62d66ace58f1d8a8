"""A past-due member at the lane: how overdue, why, and "Update card" in one key (F8 / u).

A mixin of SessionDetailScreen (issue 13 item 4), kept apart from the session's own layout. The card
is read on the reader as the record reads it (DeviceActionScreen.card_from_reader), then
MembershipPayments.update_card_at_lane saves it and pays the open invoice through the outbox
(MembershipActions.update_card). The attendant reads the amount paid, or the decline with what to
do, or that it is queued behind the network (the bubble then shows pending sync).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual import work
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Button, Static

from clarity_tui.error_text import error_text
from clarity_tui.services.membership_payments import LaneCardResult, MembershipPayments, PastDue
from clarity_tui.services.plan_pricing import money
from clarity_tui.wiring import services_of
from clarity_tui.widgets.text import show_text

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.payments.base import PaymentGateway

RECOVERY_CSS = """
    #recovery-info { display: none; color: $warning; }
    #recovery { display: none; height: 3; padding: 0 1; }
    #update-card { width: 1fr; height: 3; }
    &.-past-due #recovery, &.-past-due #recovery-info, &.-lane-result #recovery-info { display: block; }
"""


class SessionRecovery(Screen[None]):
    """Mixed into SessionDetailScreen (before Screen): the past-due line and "Update card"."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    session_id: int
    past_due: PastDue | None = None
    lane_result: LaneCardResult | None = None

    def load(self) -> Any:  # pragma: no cover - SessionDetailScreen's: re-read the session
        raise NotImplementedError

    @staticmethod
    def recovery_info() -> Static:
        """In the detail body: the days overdue, the amount, the failed reason, the lane's last try."""
        return Static("", id="recovery-info")

    @staticmethod
    def recovery_button() -> Vertical:
        """Above the session's buttons, on a past-due member's session only: the large "Update card"."""
        return Vertical(Button("Update card · F8   (read the new card; the past-due amount is paid on it)",
                               id="update-card", variant="warning", action="screen.update_card",
                               tooltip="Past due: read a new card on the reader and pay the open invoice with it"),
                        id="recovery")

    def _payments(self, gateway: PaymentGateway | None = None) -> MembershipPayments:
        services = services_of(self)
        return MembershipPayments(services.db, gateway, zone=services.settings.site.zone)

    def _gateway(self) -> PaymentGateway:
        """The terminal's gateway (built on first use: worker thread only)."""
        return services_of(self).gateway

    # --- reading ------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="session-recovery", exit_on_error=False)
    def load_recovery(self) -> None:
        past_due = self._payments().past_due_for_session(self.session_id, services_of(self).today())
        self.app.call_from_thread(self._show_recovery, past_due)

    def _show_recovery(self, past_due: PastDue | None) -> None:
        self.past_due = past_due
        self.set_class(past_due is not None, "-past-due")
        self.set_class(self.lane_result is not None, "-lane-result")
        lines = []
        if past_due is not None:
            lines.append(f"[b]{past_due.summary}[/b]" + ("   ⟳ pending sync" if past_due.pending_sync else ""))
            lines.append(f"Failed: {past_due.reason}" if past_due.reason else "Failed: the reason is not known yet.")
        if self.lane_result is not None:
            lines.append(f"Card update: {self.lane_result.message}")
        show_text(self.query_one("#recovery-info", Static), "\n".join(lines))
        self.refresh_bindings()

    def recovery_allows(self, action: str) -> bool | None:
        """For check_action: "Update card" only on a past-due member's session."""
        return self.past_due is not None if action == "update_card" else True

    # --- the action -----------------------------------------------------------------------------------
    def action_update_card(self) -> None:
        self._update_card()

    @work(exclusive=True, group="session-update-card", exit_on_error=False)
    async def _update_card(self) -> None:
        from clarity_tui.screens.device_action import DeviceActionScreen

        pd = self.past_due
        if pd is None:
            self.notify("This vehicle's membership is not past due.", severity="information")
            return
        refused = self._payments().refusal(self.app.actor)
        if refused is not None:
            self.notify(refused, title="Not allowed", severity="error", timeout=8)
            return
        gateway = await asyncio.to_thread(self._gateway)
        devices = self.app.devices
        assert devices is not None  # built with the services
        owed = f" ({money(pd.amount_cents)})" if pd.amount_cents else ""
        outcome = await self.app.push_screen_wait(DeviceActionScreen.card_from_reader(
            devices.card_reader, services_of(self).db, gateway, customer_id=pd.customer_id,
            membership_id=pd.membership_id, note=f" The past-due amount{owed} is paid on it."))
        if not outcome.ok:
            self._lane_result(LaneCardResult("not_read", f"{outcome.error or 'Cancelled.'} Nothing was charged. "
                                             "Try the reader again (F8), or key the card in on the customer "
                                             "record (F4)."))
            return
        try:
            result = await asyncio.to_thread(self._payments(gateway).update_card_at_lane, self.app.actor,
                                             pd.membership_id, outcome.result)
        except Exception as exc:  # noqa: BLE001 - refused (stale, permissions, no gateway): say why
            result = LaneCardResult("declined", error_text(exc, "The card could not be updated: try again, "
                                                                "or tell a manager."))
        self._lane_result(result)
        self.load()

    def _lane_result(self, result: LaneCardResult) -> None:
        self.lane_result = result
        severities: dict[str, SeverityLevel] = {"paid": "information", "declined": "error"}
        severity = severities.get(result.status, "warning")
        self.notify(result.message, title="Card update", severity=severity, timeout=12)
        self._show_recovery(self.past_due)
        self.load_recovery()
