"""The hardware screen through Textual's Pilot at 80x24: every simulated card outcome, a live signature,
a pad that drops mid-capture (Retry loses nothing), plate injection, the board's device bar."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from clarity_tui.screens.device_action import DeviceActionScreen, DeviceErrorScreen
from clarity_tui.screens.hardware import HardwareScreen
from clarity_tui.widgets.braille import BrailleCanvas
from clarity_tui.widgets.status_bar import StatusBar
from db.models import VehicleSession
from hardware.base import DeviceState
from hardware.card_reader.simulated import OUTCOME_LABELS, Outcome
from tests.helpers.signature import every_point_shown
from tests.helpers.ui import wait_until


def fast_devices(settings: Settings) -> Settings:
    settings.hardware.card_reader.options = {"delay": 0.05, "timeout_after": 0.1}
    settings.hardware.signature_pad.options = {"speed": 8, "start_delay": 0.05, "seed": 3}
    return settings


def message(app: ClarityApp) -> str:
    return str(app.screen.query_one("#hw-message", Static).render())


async def open_hardware(pilot: Pilot) -> HardwareScreen:
    app = pilot.app
    await wait_until(pilot, lambda: all(d.status.state is DeviceState.CONNECTED for _, d in app.devices.items()),
                   "devices open")
    await pilot.press("f9")
    await wait_until(pilot, lambda: isinstance(app.screen, HardwareScreen), "hardware screen")
    return app.screen  # type: ignore[return-value]


async def choose_outcome(pilot: Pilot, screen: HardwareScreen, outcome: Outcome) -> None:
    options = list(OUTCOME_LABELS)
    current = options.index(pilot.app.devices.card_reader.outcome)
    screen.query_one("#outcome").focus()
    await pilot.press("enter")
    step = "down" if options.index(outcome) > current else "up"
    await pilot.press(*[step] * abs(options.index(outcome) - current))
    await pilot.press("enter")
    screen.query_one(DataTable).focus()
    await wait_until(pilot, lambda: pilot.app.devices.card_reader.outcome is outcome, f"outcome {outcome}")


async def test_every_simulated_card_outcome_through_the_ui(settings: Settings, demo_db) -> None:  # noqa: ANN001
    app = ClarityApp(settings=fast_devices(settings), db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        await pilot.press("c")
        await wait_until(pilot, lambda: app.screen is screen and "Card read:" in message(app), "approved read")
        assert "Visa •••• 4242 exp 12/30, token pm_sim_" in message(app)

        expected = {
            Outcome.DECLINE: "Card declined: ask for another card.",
            Outcome.INSUFFICIENT_FUNDS: "Card declined for insufficient funds: ask for another card.",
            Outcome.EXPIRED_CARD: "Card expired: ask for another card.",
            Outcome.TIMEOUT: "No card was presented in time",
            Outcome.CARD_REMOVED: "Card removed too soon",
            Outcome.OFFLINE: "Reader offline: check its power and network, then Retry.",
            Outcome.BUSY: "Reader busy with another action",
        }
        for outcome, text in expected.items():
            await choose_outcome(pilot, screen, outcome)
            await pilot.press("c")
            # Shown once its message is composed (the screen is on the stack a moment before).
            await wait_until(pilot, lambda: isinstance(app.screen, DeviceErrorScreen)
                             and bool(app.screen.query("#device-error-message")), f"error dialog for {outcome}")
            shown = str(app.screen.query_one("#device-error-message", Static).render())
            assert text in shown, outcome
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, "back on the hardware screen")
            assert text in message(app)
        # The table shows the offline reader's last error.
        table = screen.query_one(DataTable)
        assert "Reader offline" in str(table.get_row("card_reader")[4])


async def test_reader_offline_then_retry_after_the_fix_completes_the_same_action(settings: Settings, demo_db) -> None:  # noqa: ANN001
    app = ClarityApp(settings=fast_devices(settings), db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        await choose_outcome(pilot, screen, Outcome.OFFLINE)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, DeviceErrorScreen), "offline dialog")
        assert isinstance(app.screen_stack[-2], DeviceActionScreen)  # the flow is paused, not gone
        app.devices.card_reader.set_outcome("approve")  # the technician plugs the reader back in
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen is screen and "Card read:" in message(app), "read after retry")
        assert app.devices.card_reader.status.state is DeviceState.CONNECTED


async def test_cancel_while_waiting_for_a_card(settings: Settings, demo_db) -> None:  # noqa: ANN001
    settings = fast_devices(settings)
    settings.hardware.card_reader.options["timeout_after"] = 30
    app = ClarityApp(settings=settings, db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        await choose_outcome(pilot, screen, Outcome.TIMEOUT)
        await pilot.press("c")
        await wait_until(pilot, lambda: app.devices.card_reader.status.state is DeviceState.BUSY, "reader waiting")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, "cancelled")
        assert "Cancelled: nothing was charged." in message(app)


async def test_signature_is_drawn_live_in_braille_and_accepted(settings: Settings, demo_db) -> None:  # noqa: ANN001
    app = ClarityApp(settings=fast_devices(settings), db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        canvas = screen.query_one(BrailleCanvas)
        await pilot.press("s")
        await wait_until(pilot, lambda: len(canvas.strokes) >= 1, "first stroke drawn")
        live = str(canvas.render())
        assert any(0x2801 <= ord(ch) <= 0x28FF for ch in live)  # braille dots on screen while signing
        await wait_until(pilot, lambda: app.devices.signature_pad.signer_finished, "signer done")
        await wait_until(pilot, lambda: every_point_shown(app.devices.signature_pad, canvas.strokes), "every point drawn")
        await pilot.press("a")
        await wait_until(pilot, lambda: "Signature captured" in message(app), "captured")
        assert "4 strokes" in message(app)
        assert app.devices.signature_pad.status.state is DeviceState.CONNECTED


async def test_pad_unplugged_mid_signature_pauses_with_retry(settings: Settings, demo_db) -> None:  # noqa: ANN001
    settings = fast_devices(settings)
    settings.hardware.signature_pad.options["speed"] = 2
    app = ClarityApp(settings=settings, db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        pad = app.devices.signature_pad
        await pilot.press("s")
        await wait_until(pilot, lambda: len(screen.query_one(BrailleCanvas).strokes) >= 1, "signing started")
        pad.unplug()
        await wait_until(pilot, lambda: isinstance(app.screen, DeviceErrorScreen), "disconnect dialog")
        assert "Signature pad disconnected" in str(app.screen.query_one("#device-error-message", Static).render())
        assert pad.status.state is DeviceState.ERROR
        pad.options["speed"] = 8
        await pilot.press("r")
        await wait_until(pilot, lambda: pad.status.state is DeviceState.BUSY and pad.signer_finished, "re-signed")
        await wait_until(pilot, lambda: every_point_shown(pad, screen.query_one(BrailleCanvas).strokes), "every point drawn")
        await pilot.press("a")
        await wait_until(pilot, lambda: "Signature captured: 4 strokes" in message(app), "captured after retry")


async def test_inject_a_plate_creates_a_session_and_bad_plates_say_why(settings: Settings, demo_db) -> None:  # noqa: ANN001
    def count() -> int:
        with demo_db.read() as s:
            return s.exec(select(func.count()).select_from(VehicleSession)).one()

    app = ClarityApp(settings=fast_devices(settings), db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        before = count()
        screen.query_one(Input).focus()
        await pilot.press(*"!!", "enter")
        await wait_until(pilot, lambda: "Plate not recorded" in message(app), "rejected")
        assert "is not a plate" in message(app) and count() == before
        screen.query_one(Input).value = ""
        await pilot.press(*"hw 4242", "enter")
        await wait_until(pilot, lambda: "recorded at cam-pregate" in message(app), "recorded")
        assert count() == before + 1
        with demo_db.read() as s:
            row = s.exec(select(VehicleSession).where(VehicleSession.plate_normalized == "HW4242")).one()
        assert row.image_ref == "injected"


async def test_board_shows_device_status_and_palette_opens_hardware(settings: Settings, demo_db) -> None:  # noqa: ANN001
    settings.hardware.signature_pad.driver = "serial"
    settings.hardware.signature_pad.port = "/dev/clarity-missing-pad"
    app = ClarityApp(settings=settings, db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: "pad ERROR" in bar.devices, "device bar")
        assert bar.devices == "Devices: card ok · pad ERROR · camera ok · tunnel ok"
        await pilot.press("f10")
        await pilot.press(*"Hardware")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette)
                         and app.screen.query_one(CommandList).option_count == 1, "the palette's one match")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HardwareScreen), "hardware via palette")
        table = app.screen.query_one(DataTable)
        assert str(table.get_row("signature_pad")[3]) == "ERROR"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HardwareScreen), "back to the board")


@pytest.fixture
def sqlite_site(sqlite_url: str):  # noqa: ANN201
    from clarity_tui.services.bootstrap import open_database

    settings = fast_devices(Settings(database_url=sqlite_url, terminal_id="lane-1-term"))
    db = open_database(settings)
    yield settings, db
    db.dispose()


def test_hardware_screen_snapshot(snap_compare, sqlite_site) -> None:  # noqa: ANN001
    settings, db = sqlite_site
    app = ClarityApp(settings=settings, db=db)

    async def run_before(pilot: Pilot) -> None:
        screen = await open_hardware(pilot)
        await wait_until(pilot, lambda: screen.query_one(DataTable).row_count == len(list(pilot.app.devices.items())),
                         "the device table")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_reopen_restores_devices_and_the_plate_feed(settings: Settings, demo_db) -> None:  # noqa: ANN001
    from hardware.plate_reader.base import PlateEvent

    def sessions_for(plate: str) -> int:
        with demo_db.read() as s:
            return s.exec(select(func.count()).select_from(VehicleSession)
                          .where(VehicleSession.plate_normalized == plate)).one()

    app = ClarityApp(settings=fast_devices(settings), db=demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_hardware(pilot)
        await app.devices.close_all()
        await wait_until(pilot, lambda: str(screen.query_one(DataTable).get_row("signature_pad")[3]) == "not open",
                       "table shows the closed pad")
        await pilot.press("f5")
        await wait_until(pilot, lambda: "All devices open." in message(app), "reopened")
        assert all(d.status.state is DeviceState.CONNECTED for _, d in app.devices.items())
        # The simulated camera's reads are recorded by the app's plate feed, after the reopen too.
        app.devices.plate_reader.inject(PlateEvent(plate="FEED123", lane="Lane 1"))
        await wait_until(pilot, lambda: sessions_for("FEED123") == 1, "fed plate recorded")
