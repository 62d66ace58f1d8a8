"""What every part of CustomerService shares: its parts (database, site settings, gateway, mailer, day),
how it is built from the app's Services, and the checks each write starts with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Self

from sqlmodel import Session, col, select

from clarity_tui.services.customer_input import NotFound, StaleRecord
from db.engine import Database
from db.models import AuditLog, Customer, utcnow

if TYPE_CHECKING:
    from clarity_tui.payments.base import PaymentGateway
    from clarity_tui.services.mailer import Mailer, MailSender
    from clarity_tui.wiring import Services


class HasId(Protocol):
    @property
    def id(self) -> int | None: ...


def saved_id(row: HasId) -> int:
    """The id of a row read from the database or flushed to it (only a new, unflushed row has none)."""
    assert row.id is not None, f"{type(row).__name__} has no id: flush it first"
    return row.id


def customer_gone(customer_id: int) -> NotFound:
    return NotFound(f"Customer {customer_id} no longer exists: it may have been deleted on another terminal.")


class CustomerServiceBase:
    def __init__(self, db: Database, *, phone_region: str = "US", gateway: PaymentGateway | None = None,
                 mailer: Mailer | MailSender | None = None, reset_url: str = "https://example.invalid/reset-password",
                 today: Callable[[], dt.date] | None = None, tax: Any = None, commissions: Any = None) -> None:
        self.db = db
        self.today = today or dt.date.today  # the site's day: plan changes and scheduled downgrades
        self.tax = tax  # the site's sales tax (settings.billing.tax): on an upgrade's charge today
        self.commissions = commissions  # settings.wash.commissions: upgrades earn, refunds claw back
        self.phone_region = phone_region
        self._gateway = gateway
        self._services: Services | None = None
        self.mailer = mailer
        self.reset_url = reset_url

    @classmethod
    def from_services(cls, services: Services) -> Self:
        """The service of the running terminal; its gateway is the terminal's, built on first use."""
        settings = services.settings
        service = cls(services.db, phone_region=settings.site.phone_region, mailer=services.mailer,
                      reset_url=settings.smtp.reset_url, today=services.today, tax=settings.billing.tax,
                      commissions=settings.wash.commissions)
        service._services = services
        return service

    @property
    def gateway(self) -> PaymentGateway | None:
        """The injected gateway, else the terminal's (only the membership actions need one), else none."""
        if self._gateway is None and self._services is not None:
            self._gateway = self._services.gateway
        return self._gateway

    def _customer(self, s: Session, customer_id: int, *, lock: bool = False) -> Customer:
        c = s.get(Customer, customer_id, with_for_update=lock or None)
        if c is None:
            raise customer_gone(customer_id)
        return c

    def _stale(self, s: Session, entity: str, entity_id: int, what: str) -> StaleRecord:
        # Only the actions that bump the version say who made ours stale.
        versioned = col(AuditLog.action).like("membership.%") if entity == "membership" else col(AuditLog.action) == "customer.updated"
        last = s.exec(select(AuditLog).where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id), versioned)
                      .order_by(col(AuditLog.id).desc())).first()
        if last is None:
            return StaleRecord(f"{what} was changed on another terminal: reload it (your changes are still on screen).")
        when = last.at.astimezone().strftime("%Y-%m-%d %H:%M")
        where = f" ({last.terminal})" if last.terminal else ""
        return StaleRecord(f"{what} was changed on another terminal by {last.actor}{where} at {when}: "
                           "reload to see their change, then make yours again (your typing is still on screen).")

    def _touch(self, c: Customer) -> None:
        c.version += 1
        c.updated_at = utcnow()
