"""The tunnel controller on the lane (Pilot, 80x24): a faulted controller shows on the board's device bar and
on the hardware screen, T asks it again, and a stopped one shows as down (pymodbus's own server)."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from clarity_tui.app import ClarityApp
from clarity_tui.config import DeviceConfig, Settings
from clarity_tui.screens.hardware import HardwareScreen
from clarity_tui.widgets.status_bar import StatusBar
from db.engine import Database
from tests.helpers.modbus_server import modbus_server
from tests.helpers.ui import wait_until

OPTIONS = {"timeout_seconds": 1.0, "gate_coils": {"Lane 1": 0, "Lane 2": 1}, "package_register": 1,
           "start_coil": 16, "status_register": 9}


async def test_a_down_controller_shows_on_the_board_and_the_hardware_screen(settings: Settings, demo_db: Database) -> None:
    with modbus_server() as server:
        server.set_holding(9, 2)  # faulted from the start
        settings.hardware.tunnel = DeviceConfig(driver="modbus_tcp", port=server.address, options=dict(OPTIONS))
        app = ClarityApp(settings=settings, db=demo_db)
        async with app.run_test(size=(80, 24)) as pilot:
            bar = app.screen.query_one(StatusBar)
            await wait_until(pilot, lambda: "tunnel ERROR" in bar.devices, "the fault on the device bar")
            assert bar.devices == "Devices: card ok · pad ok · camera ok · tunnel ERROR"
            await pilot.press("f9")
            await wait_until(pilot, lambda: isinstance(app.screen, HardwareScreen), "hardware screen")
            table = app.screen.query_one(DataTable)
            assert [str(c) for c in table.get_row("tunnel")[:2]] == ["Tunnel controller", "modbus_tcp"]
            assert str(table.get_row("tunnel")[3]) == "ERROR"

            def said() -> str:
                return str(app.screen.query_one("#hw-message", Static).render())

            server.set_holding(9, 0)  # fixed
            await pilot.press("t")
            await wait_until(pilot, lambda: "ready" in said(), "the controller asked again")
            assert said() == f"Tunnel controller at modbus://{server.address}/1: ready"
            assert str(table.get_row("tunnel")[3]) == "connected"
            server.stop()  # unplugged
            await pilot.press("t")
            await wait_until(pilot, lambda: "offline" in said(), "the controller gone")
            assert said() == (f"Tunnel controller at modbus://{server.address}/1: offline "
                              "(Tunnel controller offline (register 40010))")
            assert str(table.get_row("tunnel")[3]) == "ERROR"
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, HardwareScreen), "back to the board")
            await wait_until(pilot, lambda: app.screen.query_one(StatusBar).devices.endswith("tunnel ERROR"),
                             "down on the board")
