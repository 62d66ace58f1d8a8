"""The app's money loops, mixed into ClarityApp (kept out of app.py, which holds keys, navigation and palette):

- the outbox replay timer (issue 12): gateway calls a crash or a dropped network left pending;
- the billing pass timer (issue 13): the gateway's events in, dates that pass, past-due texts;
- the optional Stripe webhook receiver (billing.webhook.enabled), fed to the same event handler;
- in simulator mode, the simulated gateway's billing clock (the scenario's billing_days_per_minute,
  and palette commands), so a technician watches members renew, fail and recover in minutes;
- the board's banner when the sync has not succeeded for too long.

They start once the boot is done and take the gateway and messaging from the app's Services.
All blocking work runs in thread workers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import SystemCommand

from clarity_tui.db_stack import import_worker_stack
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    import datetime as dt

    from textual.app import App

    from clarity_tui.services.actor import Actor
    from clarity_tui.simulator.scenario import Scenario
    from clarity_tui.wiring import Services

    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)


class BillingMixin(_AppBase):
    _webhook: Any = None

    # Provided by ClarityApp.
    services: Services | None
    scenario: Scenario | None

    @property
    def actor(self) -> Actor:  # pragma: no cover - ClarityApp's
        raise NotImplementedError

    def today(self) -> dt.date:  # pragma: no cover - ClarityApp's
        raise NotImplementedError

    def _start_billing(self) -> None:
        settings = services_of(self).settings
        self.replay_outbox()
        self.set_interval(settings.payments.replay_every_seconds, self._replay_due, name="outbox-replay")
        self.billing_pass()
        self.set_interval(settings.billing.sync_every_seconds, self.billing_pass, name="billing-sync")
        if settings.billing.webhook.enabled:
            self._start_webhook()
        rate = self.scenario.billing_days_per_minute if self.scenario is not None else 0
        if rate and settings.payments.gateway == "simulated":
            # One simulated day at a time, so each day's renewals show up on the board as they happen.
            self.set_interval(60.0 / rate, lambda: self.advance_billing_clock(1.0), name="billing-clock")

    def _stop_billing(self) -> None:
        webhook, self._webhook = self._webhook, None
        if webhook is not None:
            webhook.stop()

    # --- the outbox ---------------------------------------------------------------------------

    def _replay_due(self) -> None:
        self.replay_outbox(due_only=True)

    @work(thread=True, exclusive=True, group="outbox", exit_on_error=False)
    def replay_outbox(self, due_only: bool = False) -> None:
        """Finish gateway calls a crash or a dropped network left pending (same idempotency keys).

        At start-up every pending row; then, on the timer, the rows whose backoff has passed."""
        import_worker_stack()
        from clarity_tui.services.billing import BillingService
        from clarity_tui.services.membership_actions import apply_due_plan_changes
        from clarity_tui.services.orders import SaleService

        services = services_of(self)
        try:
            billing = BillingService.from_services(services)
            billing.processor.replay_pending(due_only=due_only)
            apply_due_plan_changes(services.db, services.today())
            # Sales paid before a crash but not yet activated: vehicles on the membership, session member (issue 5).
            SaleService.from_services(services, self.actor).recover(replay=False)
        except Exception as exc:  # noqa: BLE001 - the network may still be down: try again later
            log.warning("outbox replay failed: %s", exc)

    # --- the billing lifecycle --------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="billing", exit_on_error=False)
    def billing_pass(self) -> None:
        """The gateway's events in, dates that pass, past-due texts (one leader per site database)."""
        self._billing_pass_now()

    def _billing_pass_now(self) -> None:
        import_worker_stack()
        from clarity_tui.services.billing_pass import run_billing_pass

        services = services_of(self)
        try:
            run_billing_pass(services.db, services.gateway, services.settings, today=services.today(),
                             terminal=services.terminal, messaging=services.messaging)
        except Exception as exc:  # noqa: BLE001 - the board's banner tells the attendant when this persists
            log.warning("billing pass failed: %s", exc)

    def billing_banner(self) -> str | None:
        """The board's warning when the billing sync has not succeeded for too long (call from a worker)."""
        services = self.services
        if services is None:
            return None
        from clarity_tui.services.sessions import SessionService

        billing = services.settings.billing
        hours = billing.sync_stale_after_hours
        health = SessionService.from_services(services).sync_health()
        if not health.stale(services.now(), hours):
            return None
        since = "never synced" if health.last_success_at is None else f"not synced for over {hours:g} h"
        return (f"Billing {since}: members past their paid-through date plus {billing.grace_days} "
                "grace days show PAST DUE. Sales and cards still work; tell a manager.")

    @work(thread=True, exclusive=True, group="webhook", exit_on_error=False)
    def _start_webhook(self) -> None:
        """In a thread: the gateway is built on first use (it imports stripe), never on the UI thread."""
        import_worker_stack()
        from clarity_tui.errors import UserFacingError
        from clarity_tui.services.billing_sync import BillingSync
        from clarity_tui.services.billing_webhook import start_webhook_server

        services = services_of(self)
        sync = BillingSync(services.db, services.gateway, services.settings, terminal=services.terminal)
        try:
            server = start_webhook_server(services.settings, sync.handle_event)
        except (OSError, UserFacingError) as exc:
            log.warning("billing webhook not started: %s", exc)
            self.call_from_thread(
                self.notify, f"The billing webhook did not start: {exc}. The sync still pulls events.",
                severity="warning", timeout=15)
            return
        self._webhook = server
        if self._exit:
            self._stop_billing()  # the app began closing while the server started

    # --- the simulator's billing clock -----------------------------------------------------------

    @work(thread=True, exclusive=True, group="billing-clock", exit_on_error=False)
    def advance_billing_clock(self, days: float) -> None:
        """Simulator only: move the simulated gateway's clock, then sync at once so the board follows."""
        services = services_of(self)
        from clarity_tui.payments.simulated import SimulatedGateway

        gateway = services.gateway
        if not isinstance(gateway, SimulatedGateway):
            return  # only the simulated gateway has a clock to move
        rate = self.scenario.billing_failure_rate if self.scenario is not None else None
        if rate is None:
            rate = services.settings.billing.simulated_failure_rate
        try:
            report = gateway.advance_clock(days, failure_rate=rate)
        except Exception as exc:  # noqa: BLE001 - a busy database: the next tick tries again
            log.warning("billing clock: %s", exc)
            return
        self._billing_pass_now()
        self.call_from_thread(
            self.notify, f"Billing clock {report.now:%b %d}: {report.renewals} renewal(s), {report.failures} failed, "
            f"{report.recovered} recovered, {report.cancelled} cancelled.", timeout=4)

    def billing_commands(self) -> list[SystemCommand]:
        settings = self.services.settings if self.services is not None else None
        if settings is None or not (settings.simulate and settings.payments.gateway == "simulated"):
            return []
        return [SystemCommand("Billing clock: advance 1 day", "Simulator: renewals, failures and retries of the "
                              "next day at the simulated gateway", lambda: self.advance_billing_clock(1.0)),
                SystemCommand("Billing clock: advance 7 days", "Simulator: a week of renewals, failures and retries",
                              lambda: self.advance_billing_clock(7.0))]
