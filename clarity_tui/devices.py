"""The lane's devices, built from Settings through the driver registry (no Textual here).

Building never raises and never does I/O: a device that cannot be built becomes
an "unavailable" stand-in that carries the reason, so the app still starts and
the hardware screen and `doctor` show what to fix. Opening is separate (async).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hardware.base import Device, DeviceError, DeviceStatus
from hardware.card_reader.base import CardReader
from hardware.plate_reader.base import PlateEvent, PlateReader
from hardware.registry import create_device
from hardware.signature_pad.base import FinishRule, SignaturePad
from hardware.tunnel.base import TunnelController
from hardware.unavailable import UNAVAILABLE

if TYPE_CHECKING:
    from clarity_tui.config import Settings
    from clarity_tui.simulator.scenario import Scenario
    from db.engine import Database

log = logging.getLogger(__name__)

DEVICE_LABELS = {"card_reader": "Card reader", "signature_pad": "Signature pad", "plate_reader": "Plate camera",
                 "tunnel": "Tunnel controller"}
SHORT_LABELS = {"card_reader": "card", "signature_pad": "pad", "plate_reader": "camera", "tunnel": "tunnel"}
# A device kind that cannot be built becomes its stand-in (the tunnel's lives with its ABC).



@dataclass
class DeviceSet:
    card_reader: CardReader
    signature_pad: SignaturePad
    plate_reader: PlateReader
    tunnel: TunnelController

    def items(self) -> Iterator[tuple[str, Device]]:
        yield "card_reader", self.card_reader
        yield "signature_pad", self.signature_pad
        yield "plate_reader", self.plate_reader
        yield "tunnel", self.tunnel

    def add_status_listener(self, listener: Callable[[Device, DeviceStatus], None]) -> None:
        for _, device in self.items():
            device.add_status_listener(listener)

    async def open_all(self) -> dict[str, str | None]:
        """Open every device; returns kind -> error message (None when fine). Never raises."""
        results = await asyncio.gather(*(self._open(device) for _, device in self.items()))
        return {kind: error for (kind, _), error in zip(self.items(), results, strict=True)}

    @staticmethod
    async def _open(device: Device) -> str | None:
        try:
            await device.open()
        except DeviceError as exc:
            return str(exc)
        except Exception as exc:
            log.exception("device %s failed to open", device.driver_name)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def close_all(self) -> None:
        for _, device in self.items():
            try:
                await device.close()
            except Exception:
                log.exception("device %s failed to close", device.driver_name)

    def summary(self) -> str:
        """One short line for the board's status bar: 'card ok · pad ERROR · camera ok'."""
        parts = []
        for kind, device in self.items():
            state = device.status.state.value
            word = {"connected": "ok", "busy": "busy", "error": "ERROR", "disconnected": "off"}.get(state, state)
            parts.append(f"{SHORT_LABELS[kind]} {word}")
        return " · ".join(parts)


def plate_recorder(db: Database, terminal: str | None) -> Callable[[PlateEvent], int]:
    """What the webhook receiver and the plate feed call: one transaction per read."""
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService

    sessions = SessionService(db)
    actor = Actor.system("plate-camera", terminal)
    return lambda event: sessions.record_plate_read(event, actor)


def _stripe_client(settings: Settings) -> Any:
    stripe_settings = settings.payments.stripe
    if not stripe_settings.api_key:
        return None
    from hardware.card_reader.stripe_terminal import make_stripe_client

    return make_stripe_client(stripe_settings.api_key, stripe_settings.api_base)


# Stripe test mode's ready-made PaymentMethods, one per brand the simulated reader presents: with
# the Stripe gateway in test mode, a technician runs whole sales without a physical reader.
STRIPE_TEST_PAYMENT_METHODS = {"visa": "pm_card_visa", "mastercard": "pm_card_mastercard", "amex": "pm_card_amex"}


def stripe_test_payment_method(card: Any) -> str:
    return STRIPE_TEST_PAYMENT_METHODS[card.brand]


def build_devices(
    settings: Settings,
    scenario: Scenario | None = None,
    *,
    db: Database | None = None,
    tokenize: Callable[..., str] | None = None,
    stripe_client: Any = None,
) -> DeviceSet:
    """Build the four devices the settings ask for (CLARITY_HARDWARE__<KIND>__DRIVER etc. already applied)."""
    hw = settings.hardware
    built: dict[str, Device] = {}
    for kind in ("card_reader", "signature_pad", "plate_reader", "tunnel"):
        config = getattr(hw, kind)
        context: dict[str, Any] = {}
        try:
            if kind == "card_reader":
                if tokenize is None and config.driver == "simulated" and settings.payments.gateway == "stripe":
                    tokenize = stripe_test_payment_method  # the simulator's pm_sim_ tokens mean nothing to Stripe
                context["tokenize"] = tokenize
                if scenario is not None:
                    context["outcome"] = scenario.card_reader_outcome
                if config.driver == "stripe_terminal":
                    context["stripe_client"] = stripe_client or _stripe_client(settings)
                    context["terminal_reader_id"] = settings.payments.stripe.terminal_reader_id
                    context["moto_enabled"] = settings.payments.stripe.moto_enabled
            if kind == "tunnel" and getattr(scenario, "tunnel_outcome", None):  # a scenario may set it
                context["outcome"] = getattr(scenario, "tunnel_outcome")  # noqa: B009
            if kind == "plate_reader" and db is not None:
                context["record_plate"] = plate_recorder(db, settings.terminal_id)
            device = create_device(kind, config, **context)
            if isinstance(device, SignaturePad):
                # When a signature is finished (Agree comes on): the settings, under the pad's own options.
                device.finish = FinishRule.from_options(
                    config.options, FinishRule(config.min_points, config.min_length, config.settle_ms))
            built[kind] = device
        except DeviceError as exc:
            built[kind] = UNAVAILABLE[kind](reason=str(exc), wanted_driver=config.driver)
    card_reader, signature_pad, plate_reader = built["card_reader"], built["signature_pad"], built["plate_reader"]
    tunnel = built["tunnel"]
    # The registry builds each kind's driver (or its "unavailable" stand-in, which has the kind's type).
    assert isinstance(card_reader, CardReader) and isinstance(signature_pad, SignaturePad)
    assert isinstance(plate_reader, PlateReader) and isinstance(tunnel, TunnelController)
    return DeviceSet(card_reader, signature_pad, plate_reader, tunnel)


async def feed_plates(reader: PlateReader, record: Callable[[PlateEvent], int]) -> None:
    """Record what a plate reader yields (for drivers that do not record themselves). Runs until cancelled."""
    if reader.records_itself:
        return
    async for event in reader.events():
        try:
            await asyncio.to_thread(record, event)
        except ValueError as exc:  # unreadable plate, unmapped lane: keep the lane running
            log.warning("plate read ignored: %s", exc)
