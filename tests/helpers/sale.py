"""The sale service as a lane terminal builds it, devices fast enough for tests, and a signed order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from clarity_tui.config import Settings, TaxConfig
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.orders import SaleService
from db.engine import Database
from tests.helpers.clock import TODAY

STROKES = [[[0.1, 0.5, 0], [0.3, 0.4, 20], [0.5, 0.6, 40]], [[0.6, 0.5, 90], [0.9, 0.5, 120]]]
EXCLUSIVE = TaxConfig(behavior="exclusive", rate_percent=Decimal("8.25"))
INCLUSIVE = TaxConfig(behavior="inclusive", rate_percent=Decimal("8.25"))


def fast_devices(settings: Settings) -> Settings:
    settings.hardware.card_reader.options = {"delay": 0.05, "timeout_after": 0.2}
    settings.hardware.signature_pad.options = {"speed": 12, "start_delay": 0.05, "seed": 3, "garbage_rate": 0}
    return settings


def sale_service(db: Database, terminal: str = "lane-1-term") -> SaleService:
    return SaleService(db, SimulatedGateway(db), Actor(name="attendant", terminal=terminal), terminal=terminal,
                       today=lambda: TODAY)


def sign(service: Any, order_id: int, how: str = "presented") -> None:
    """Review, checkout, accept the terms and sign: the order as the signature screen leaves it."""
    service.review(order_id)
    service.checkout(order_id)
    terms = service.current_terms()
    service.accept_terms(order_id, terms.id, how)
    service.record_signature(order_id, STROKES, "<svg/>", device="simulated Topaz T-LBK462")


def with_tax(settings: Settings, config: TaxConfig) -> Settings:
    return settings.model_copy(update={"billing": settings.billing.model_copy(update={"tax": config})})
