"""One wiring: the `Services` container the app builds once, when its boot has loaded settings and database.

Every service is built from it (with the actor doing the work, where the service records one), and
screens reach it through `services_of(widget)`, a typed accessor that never blocks the UI thread:

    sales = SaleService.from_services(services_of(self), self.app.actor)
    customers = CustomerService.from_services(services_of(self))

The gateway, the SMS provider and the mailer are built on first use (once, under a lock), so the boot
does not import stripe or open sockets a lane may never need. Tests build a container directly
(`Services(settings, db, gateway=..., clock=...)`) or pass the same keywords to `ClarityApp`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from clarity_tui.errors import UserFacingError

if TYPE_CHECKING:
    from clarity_tui.config import Settings
    from clarity_tui.messaging.base import SmsProvider
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.services.entitlement import EntitlementPolicy
    from clarity_tui.services.mailer import MailSender
    from db.engine import Database


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StillStarting(UserFacingError):
    """The boot worker has not opened the database yet (only in the first second or so after start)."""

    def __init__(self) -> None:
        super().__init__("Clarity is still starting: try again in a moment.")


class Services:
    """Settings, database, gateway, messaging, mailer and clock of one running terminal."""

    def __init__(self, settings: Settings, db: Database, *, clock: Callable[[], dt.datetime] | None = None,
                 gateway: PaymentGateway | None = None, messaging: SmsProvider | None = None,
                 mailer: MailSender | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock: Callable[[], dt.datetime] = clock or utc_now
        self._gateway = gateway
        self._messaging = messaging
        self._mailer = mailer
        self._lock = threading.Lock()

    # --- the parts built on first use ------------------------------------------------------------------

    @property
    def gateway(self) -> PaymentGateway:
        with self._lock:
            if self._gateway is None:
                from clarity_tui.payments import make_gateway

                self._gateway = make_gateway(self.settings, self.db)
            return self._gateway

    @property
    def messaging(self) -> SmsProvider:
        with self._lock:
            if self._messaging is None:
                from clarity_tui.messaging import make_sms_provider

                self._messaging = make_sms_provider(self.settings)
            return self._messaging

    @property
    def mailer(self) -> MailSender:
        with self._lock:
            if self._mailer is None:
                from clarity_tui.services.mailer import make_mailer

                self._mailer = make_mailer(self.settings)
            return self._mailer

    def replace(self, *, settings: Settings | None = None, db: Database | None = None,
                clock: Callable[[], dt.datetime] | None = None, gateway: PaymentGateway | None = None,
                messaging: SmsProvider | None = None, mailer: MailSender | None = None) -> Services:
        """A copy with some parts swapped (a test's gateway, a fixed clock)."""
        return Services(settings or self.settings, db or self.db, clock=clock or self.clock,
                        gateway=gateway or self._gateway, messaging=messaging or self._messaging,
                        mailer=mailer or self._mailer)

    # --- the site's facts --------------------------------------------------------------------------------

    @property
    def terminal(self) -> str:
        return self.settings.terminal_id

    def now(self) -> dt.datetime:
        return self.clock()

    def today(self) -> dt.date:
        """The site's calendar day now (settings.site.timezone), not UTC's."""
        from clarity_tui.sitetime import site_date

        return site_date(self.clock(), self.settings.site.zone)

    @property
    def entitlement_policy(self) -> EntitlementPolicy:
        from clarity_tui.services.entitlement import EntitlementPolicy

        return EntitlementPolicy.from_settings(self.settings)


class ServiceHost(Protocol):
    """What `services_of` needs from the app (ClarityApp): its container, None until the boot is done."""

    services: Services | None


class InApp(Protocol):
    """A widget or screen (anything with `.app`); typed structurally so services need not import Textual."""

    @property
    def app(self) -> Any: ...


def services_of(node: InApp) -> Services:
    """The running app's services; raises StillStarting (shown as a calm message) before the boot is done.

    Never blocks: on the UI thread a wait would freeze the screen. Work that may start during the boot
    runs in a worker that waits for the app's `booted` signal (`ClarityApp.wait_for_services`)."""
    services = cast(ServiceHost, node.app).services
    if services is None:
        raise StillStarting()
    return services
