"""The tunnel loop, mixed into ClarityApp (issue 18): members' cars on lanes set to auto go to the tunnel,
and their gate opens, with no key press.

Every couple of seconds a thread worker sends the member visits waiting on auto lanes, through the same
TunnelDispatch as the attendant's key (the claim in it means two terminals never send a car twice). A
car the controller refused stays queued for the attendant's retry key: the loop does not hammer a
faulted controller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from textual import work

from clarity_tui.db_stack import import_worker_stack
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual.app import App

    from clarity_tui.devices import DeviceSet
    from clarity_tui.services.actor import Actor

    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)

AUTO_DISPATCH_EVERY_SECONDS = 2.0


class TunnelMixin(_AppBase):
    devices: DeviceSet | None
    # Passes finished (a test waits for passes, not for time).
    auto_dispatch_passes = 0

    @property
    def actor(self) -> Actor:  # pragma: no cover - ClarityApp's
        raise NotImplementedError

    def _start_tunnel(self) -> None:
        self.set_interval(AUTO_DISPATCH_EVERY_SECONDS, self._auto_dispatch_due, name="tunnel-auto")

    def _auto_dispatch_due(self) -> None:
        if self.devices is not None:
            self.auto_dispatch(asyncio.get_running_loop())

    @work(thread=True, exclusive=True, group="tunnel-auto", exit_on_error=False)
    def auto_dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        import_worker_stack()
        from clarity_tui.services.actor import Actor
        from clarity_tui.services.tunnel_dispatch import TunnelDispatch

        devices = self.devices
        if devices is None:
            return
        services = services_of(self)
        dispatch = TunnelDispatch.from_services(services, devices.tunnel,
                                                Actor.system("tunnel-auto", services.terminal), loop=loop)
        try:
            for wash_id in dispatch.waiting_on_auto_lanes():
                dispatch.auto_dispatch(wash_id)
        except Exception as exc:  # noqa: BLE001 - the controller or the database may be away: next tick
            log.warning("auto dispatch failed: %s", exc)
        finally:
            self.auto_dispatch_passes += 1
