"""The site's commission settings (settings.wash.commissions) reach every place that earns or claws back:
a sale and a migration built for the running terminal, and a manager's refund from the customer record."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlmodel import col

from clarity_tui.config import CommissionConfig, WashConfig
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.customers import CustomerService
from clarity_tui.services.orders import SaleService
from clarity_tui.wiring import Services
from db.models import SalesOrder, utcnow
from tests.helpers.actors import MANAGER
from tests.helpers.commissions import operator, rows, sell
from tests.helpers.lanes import Lanes


def services_with(settings, lanes: Lanes, config: CommissionConfig) -> Services:  # noqa: ANN001
    site = settings.model_copy(update={"wash": WashConfig(commissions=config)})
    return Services(site, lanes.db, gateway=SimulatedGateway(lanes.db))


def test_a_sale_built_for_the_terminal_earns_the_sites_rate(settings, lanes: Lanes) -> None:  # noqa: ANN001
    services = services_with(settings, lanes, CommissionConfig(per_sale_cents=777))
    order_id = sell(SaleService.from_services(services, operator(lanes.db)), lanes.ivana)
    assert [(e, k, a) for e, k, a, _ in rows(lanes.db, order_id)] == [("earned", "sale", 777)]


def test_a_refund_from_the_record_uses_the_sites_clawback_window(settings, lanes: Lanes) -> None:  # noqa: ANN001
    # A site that claws back for 3 days: a refund on day 5 keeps the commission; the default (30) would not.
    services = services_with(settings, lanes, CommissionConfig(per_sale_cents=500, clawback_days=3))
    order_id = sell(SaleService.from_services(services, operator(lanes.db)), lanes.ivana)
    with lanes.db.write() as s:
        s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id)
               .values(completed_at=utcnow() - dt.timedelta(days=5)))
    customers = CustomerService.from_services(services)
    assert customers.commissions is not None and customers.commissions.clawback_days == 3
    outcome = customers._actions().refund(MANAGER, order_id, 500)
    assert outcome.status == "done"
    assert [e for e, *_ in rows(lanes.db, order_id)] == ["earned"]


def test_inside_the_sites_window_the_refund_claws_back(settings, lanes: Lanes) -> None:  # noqa: ANN001
    services = services_with(settings, lanes, CommissionConfig(per_sale_cents=500, clawback_days=10))
    order_id = sell(SaleService.from_services(services, operator(lanes.db)), lanes.ivana)
    with lanes.db.write() as s:
        s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id)
               .values(completed_at=utcnow() - dt.timedelta(days=5)))
    CustomerService.from_services(services)._actions().refund(MANAGER, order_id, 500)
    assert [(e, a) for e, _, a, _ in rows(lanes.db, order_id)] == [("earned", 500), ("clawback", -500)]
