"""The simulated tunnel: settable outcomes (ok, busy, fault, offline) that the status shows at once, and cars
that enter when their gate opens and leave after the travel time, observed through `in_tunnel` and `on_exit`."""

from __future__ import annotations

import asyncio

import pytest

from clarity_tui.config import DeviceConfig, Settings
from clarity_tui.devices import build_devices
from hardware.base import Device, DeviceError, DeviceState, DeviceStatus
from hardware.registry import create_device
from hardware.tunnel.base import TunnelError, TunnelState, TunnelWash
from hardware.tunnel.simulated import CarInTunnel, SimulatedTunnel, TunnelOutcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_default_settings_build_a_simulated_tunnel() -> None:
    devices = build_devices(Settings())
    assert isinstance(devices.tunnel, SimulatedTunnel)
    assert [kind for kind, _ in devices.items()][-1] == "tunnel"
    assert devices.summary().endswith("tunnel off")  # built, not opened


def test_options_set_the_travel_time_and_outcome_and_bad_ones_are_refused() -> None:
    tunnel = create_device("tunnel", DeviceConfig(driver="simulated", options={"travel_seconds": 30, "outcome": "busy"}))
    assert isinstance(tunnel, SimulatedTunnel)
    assert tunnel.travel_seconds == 30 and tunnel.outcome == "busy"
    with pytest.raises(DeviceError, match="unknown outcome 'jammed': use one of ok, busy, fault, offline"):
        create_device("tunnel", DeviceConfig(driver="simulated", options={"outcome": "jammed"}))
    with pytest.raises(DeviceError, match="travel_seconds must be a number of seconds"):
        create_device("tunnel", DeviceConfig(driver="simulated", options={"travel_seconds": "slow"}))


async def test_cars_enter_when_the_gate_opens_and_leave_after_the_travel_time() -> None:
    clock = Clock()
    tunnel = SimulatedTunnel(travel_seconds=60, clock=clock)
    exits: list[CarInTunnel] = []
    tunnel.on_exit(exits.append)
    await tunnel.open()
    first, second = TunnelWash("Lane 1", 2, (1,), "AAA111", wash_id=1), TunnelWash("Lane 2", 3, (), "BBB222", wash_id=2)
    await tunnel.send_wash(first)
    assert tunnel.in_tunnel == []  # sent, but the gate is still shut
    await tunnel.open_gate("Lane 1")
    clock.now += 20
    await tunnel.send_wash(second)
    await tunnel.open_gate("Lane 2")
    assert [car.wash for car in tunnel.in_tunnel] == [first, second]
    clock.now += 40
    assert [car.wash for car in tunnel.tick()] == [first]
    assert [car.wash for car in exits] == [first] and [car.wash for car in tunnel.in_tunnel] == [second]
    clock.now += 20
    tunnel.tick()
    assert [car.wash for car in exits] == [first, second] and tunnel.in_tunnel == []
    assert tunnel.sent == [first, second] and tunnel.gates_opened == ["Lane 1", "Lane 2"]


@pytest.mark.parametrize(("outcome", "state", "device_state"), [
    ("busy", TunnelState.BUSY, DeviceState.BUSY),
    ("fault", TunnelState.FAULT, DeviceState.ERROR),
    ("offline", TunnelState.OFFLINE, DeviceState.ERROR),
])
async def test_an_injected_fault_refuses_the_wash_and_shows_on_the_status(outcome: str, state: TunnelState,
                                                                          device_state: DeviceState) -> None:
    tunnel = SimulatedTunnel()
    await tunnel.open()
    tunnel.set_outcome(outcome)
    assert tunnel.status.state is device_state  # at once: the board shows it before any car is sent
    assert await tunnel.read_state() is state
    with pytest.raises(TunnelError) as caught:
        await tunnel.send_wash(TunnelWash("Lane 1", 1))
    assert caught.value.code == outcome and caught.value.device == "simulated tunnel"
    assert caught.value.state is state
    assert tunnel.sent == []
    tunnel.set_outcome("ok")
    assert await tunnel.read_state() is TunnelState.READY and tunnel.status.state is DeviceState.CONNECTED
    await tunnel.send_wash(TunnelWash("Lane 1", 1))
    assert len(tunnel.sent) == 1


async def test_watching_the_controller_shows_a_fault_that_came_while_idle() -> None:
    tunnel = SimulatedTunnel()
    await tunnel.open()
    changes: list[DeviceState] = []
    faulted = asyncio.Event()

    def heard(_device: Device, status: DeviceStatus) -> None:
        changes.append(status.state)
        if status.state is DeviceState.ERROR:
            faulted.set()

    tunnel.add_status_listener(heard)
    watcher = asyncio.create_task(tunnel.watch(interval=0.01))
    tunnel.outcome = TunnelOutcome.FAULT  # the controller faults on its own: nobody calls set_outcome's show
    await asyncio.wait_for(faulted.wait(), timeout=30)
    watcher.cancel()
    assert changes == [DeviceState.ERROR] and tunnel.status.reason == "Tunnel controller fault"
