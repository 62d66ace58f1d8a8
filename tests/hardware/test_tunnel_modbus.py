"""The Modbus TCP tunnel controller against pymodbus's own server on 127.0.0.1 (tests/helpers/modbus_server.py):
a wash writes the mapped registers then the start command, the gate is its lane's coil, the status register
decodes to ready/busy/fault, a timeout and a stopped server name the device and the register, and a bad
register map is one clear sentence naming the setting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clarity_tui.config import DeviceConfig, Settings
from clarity_tui.devices import build_devices
from hardware.base import DeviceError, DeviceState
from hardware.registry import create_device
from hardware.tunnel.base import TunnelError, TunnelState, TunnelWash
from hardware.unavailable import UnavailableTunnelController
from hardware.tunnel.modbus_tcp import ModbusTcpTunnel, plate_words
from tests.helpers.modbus_server import ModbusTestServer, modbus_server

MAP: dict[str, Any] = {
    "unit_id": 1, "timeout_seconds": 0.5,
    "gate_coils": {"Lane 1": 0, "Lane 2": 1, "Lane 3": 2},
    "lane_register": 0, "package_register": 1, "extras_register": 2, "plate_register": 4, "plate_registers": 4,
    "start_coil": 16, "status_register": 20,
}


@pytest.fixture
def server() -> Iterator[ModbusTestServer]:
    with modbus_server() as srv:
        yield srv


def tunnel_for(server: ModbusTestServer, **changes: Any) -> ModbusTcpTunnel:
    device = create_device("tunnel", DeviceConfig(driver="modbus_tcp", port=server.address, options={**MAP, **changes}))
    assert isinstance(device, ModbusTcpTunnel)
    return device


async def test_a_wash_writes_the_mapped_registers_then_the_start_coil(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    await tunnel.send_wash(TunnelWash("Lane 2", package_code=3, extras_codes=(0, 4), plate="abc-123"))
    assert server.holding(0, 8) == [2, 3, 0b10001, 0, *plate_words("ABC-123", 4)]
    assert plate_words("ABC-123", 4) == [0x4142, 0x432D, 0x3132, 0x3300]  # "AB" "C-" "12" "3\0"
    assert server.coils(16) == [True]
    # The start command comes last, after everything it starts.
    assert [(kind, address) for kind, address, _ in server.writes] == [
        ("register", 0), ("register", 1), ("register", 2), ("register", 4), ("coil", 16)]
    assert server.coils(0, 3) == [False, False, False]  # no gate yet
    assert tunnel.status.state is DeviceState.CONNECTED


async def test_the_gate_is_the_lanes_coil(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    await tunnel.open_gate("Lane 3")
    assert server.coils(0, 3) == [False, False, True]
    assert server.writes == [("coil", 2, [1])]


async def test_a_pulsed_gate_relay_is_set_then_released(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server, gate_pulse_seconds=0.01)
    await tunnel.open_gate("Lane 1")
    assert server.writes == [("coil", 0, [1]), ("coil", 0, [0])]
    assert server.coils(0) == [False]


async def test_a_start_register_and_lane_numbers_from_the_map(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server, start_coil=None, start_register=10, start_value=7, lane_numbers={"Lane 3": 9},
                        plate_register=None, extras_register=None)
    await tunnel.send_wash(TunnelWash("Lane 3", package_code=2, plate="XYZ"))
    assert server.holding(0, 2) == [9, 2] and server.holding(10) == [7]
    assert server.writes == [("register", 0, [9]), ("register", 1, [2]), ("register", 10, [7])]


@pytest.mark.parametrize(("value", "state", "device_state"), [
    (0, TunnelState.READY, DeviceState.CONNECTED),
    (1, TunnelState.BUSY, DeviceState.BUSY),
    (2, TunnelState.FAULT, DeviceState.ERROR),
    (77, TunnelState.FAULT, DeviceState.ERROR),  # a value the map does not know is a fault, not "ready"
])
async def test_the_status_register_decodes(server: ModbusTestServer, value: int, state: TunnelState,
                                           device_state: DeviceState) -> None:
    tunnel = tunnel_for(server)
    server.set_holding(20, value)
    assert await tunnel.read_state() is state
    assert tunnel.status.state is device_state
    if state is TunnelState.FAULT:
        assert tunnel.status.reason == f"Tunnel controller fault (register 40021): status value {value}"


async def test_a_controllers_own_status_values(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server, status_values={"ready": 1, "busy": 2, "fault": 4})
    server.set_holding(20, 1)
    assert await tunnel.read_state() is TunnelState.READY
    server.set_holding(20, 0)
    assert await tunnel.read_state() is TunnelState.FAULT


async def test_a_faulted_controller_refuses_the_wash_and_nothing_is_written(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    server.set_holding(20, 2)
    with pytest.raises(TunnelError) as caught:
        await tunnel.send_wash(TunnelWash("Lane 1", package_code=1))
    error = caught.value
    assert error.code == "fault" and error.register == "register 40021"
    assert error.device == f"modbus_tcp tunnel {server.address} unit 1"
    assert error.summary == "Tunnel controller fault (register 40021)"
    assert server.writes == []
    assert tunnel.status.state is DeviceState.ERROR


async def test_a_modbus_timeout_is_reported_by_device_and_register(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    server.hang()
    with pytest.raises(TunnelError) as caught:
        await tunnel.open_gate("Lane 2")
    server.release()
    error = caught.value
    assert error.code == "timeout" and error.register == "coil 00002"
    assert error.device == f"modbus_tcp tunnel {server.address} unit 1"
    assert str(error).startswith("Tunnel controller did not answer (coil 00002): no answer in 0.5 s")
    assert tunnel.status.state is DeviceState.ERROR
    # The next call reconnects and works.
    await tunnel.open_gate("Lane 2")
    assert server.coils(1) == [True]


async def test_a_stopped_server_is_offline_by_device_and_register(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    assert await tunnel.read_state() is TunnelState.READY
    server.stop()
    with pytest.raises(TunnelError) as caught:
        await tunnel.send_wash(TunnelWash("Lane 1", package_code=1))
    assert caught.value.code == "offline" and caught.value.register == "register 40021"
    assert caught.value.device == f"modbus_tcp tunnel {server.address} unit 1"
    assert await tunnel.read_state() is TunnelState.OFFLINE
    assert tunnel.status.state is DeviceState.ERROR
    assert "offline" in tunnel.status.reason
    with pytest.raises(TunnelError, match="offline"):
        await tunnel.open()


async def test_extras_that_do_not_fit_the_map_are_refused_before_anything_is_written(server: ModbusTestServer) -> None:
    tunnel = tunnel_for(server)
    with pytest.raises(TunnelError, match="does not fit the register map") as caught:
        await tunnel.send_wash(TunnelWash("Lane 1", package_code=1, extras_codes=(16,)))
    assert caught.value.code == "config" and server.writes == []
    with pytest.raises(TunnelError, match="no gate coil for 'Lane 9'"):
        await tunnel.open_gate("Lane 9")
    assert tunnel.status.state is not DeviceState.ERROR  # a lane missing from the map is not a controller fault


@pytest.mark.parametrize(("changes", "port", "message"), [
    ({"gate_coils": None}, "127.0.0.1:502", "hardware.tunnel.options.gate_coils: missing: set it"),
    ({"gate_coils": {}}, "127.0.0.1:502", "hardware.tunnel.options.gate_coils: Dictionary should have at least 1 item"),
    ({"start_register": 10}, "127.0.0.1:502", "set exactly one of start_coil and start_register"),
    ({"plate_register": 18}, "127.0.0.1:502",
     "plate_register (register 40019) overlaps status_register (register 40021): give each its own registers"),
    ({"status_values": {"busy": 1}}, "127.0.0.1:502", "status_values maps ready (required)"),
    ({"lane_numbers": {"Lane 7": 7}}, "127.0.0.1:502", "lane_numbers names Lane 7"),
    ({"staus_register": 3}, "127.0.0.1:502", "hardware.tunnel.options.staus_register: Extra inputs are not permitted"),
    ({"unit_id": 300}, "127.0.0.1:502", "hardware.tunnel.options.unit_id: Input should be less than or equal to 247"),
    ({}, None, "set hardware.tunnel.port to the controller's host:port"),
    ({}, "plc:http", "hardware.tunnel.port 'plc:http' is not host:port"),
])
def test_a_bad_register_map_is_one_clear_config_error(changes: dict[str, Any], port: str | None, message: str) -> None:
    options = {k: v for k, v in {**MAP, **changes}.items() if v is not None}
    with pytest.raises(DeviceError, match="Tunnel controller not set up") as caught:
        create_device("tunnel", DeviceConfig(driver="modbus_tcp", port=port, options=options))
    assert caught.value.code == "config"
    assert message in str(caught.value)


async def test_a_bad_map_in_the_settings_leaves_an_unavailable_controller_with_the_reason() -> None:
    settings = Settings()
    settings.hardware.tunnel = DeviceConfig(driver="modbus_tcp", port="10.0.0.5:502", options={"gate_coils": {}})
    devices = build_devices(settings)
    assert isinstance(devices.tunnel, UnavailableTunnelController)
    assert devices.tunnel.status.state is DeviceState.ERROR
    assert "gate_coils" in devices.tunnel.status.reason
    assert devices.summary().endswith("tunnel ERROR")
    with pytest.raises(TunnelError) as caught:
        await devices.tunnel.send_wash(TunnelWash("Lane 1", 1))
    assert str(caught.value) == devices.tunnel.status.reason == (
        "Tunnel controller not set up: hardware.tunnel.options.gate_coils: Dictionary should have at least 1 item "
        "after validation, not 0 [modbus_tcp tunnel]")
