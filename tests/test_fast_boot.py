"""Start-up path: the board paints from plain SQL, then settings/ORM/devices load in a worker."""

from __future__ import annotations

import json
import subprocess
import sys

from clarity_tui.app import ClarityApp
from clarity_tui.bootconfig import resolve_boot_config
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.status_bar import StatusBar
from hardware.plate_reader import PlateEvent
from tests.helpers.ui import bubble_ids, wait_until

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "pydantic_settings", "alembic", "stripe", "serial", "phonenumbers")


def test_importing_the_app_and_resolving_the_boot_config_load_none_of_the_heavy_libraries() -> None:
    # Resolving the boot config is on the first-paint path too (cli.run_app's fast path).
    code = ("import sys, json; import clarity_tui.cli, clarity_tui.app; from clarity_tui.bootconfig import resolve_boot_config; "
            f"resolve_boot_config(None, 'sqlite:///unused.db', None); print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


async def test_board_paints_before_the_full_boot_and_the_boot_completes(demo_db, settings) -> None:  # noqa: ANN001
    sid = SessionService(demo_db).record_plate_read(PlateEvent(plate="FST-123", lane="Lane 2", make="Kia", model="Soul", colour="Red"), Actor.system("t"))
    boot = resolve_boot_config(None, settings.resolved_database_url(), None)
    app = ClarityApp(boot=boot)
    assert not app.is_booted
    painted_before_boot: list[bool] = []

    def on_message(message) -> None:  # noqa: ANN001
        from clarity_tui.screens.board import BoardScreen

        if isinstance(message, BoardScreen.Painted) and sid in message.session_ids:
            painted_before_boot.append(not app.is_booted)

    async with app.run_test(size=(80, 24), message_hook=on_message) as pilot:
        await wait_until(pilot, lambda: sid in bubble_ids(app), "the bubble from the raw first read")
        await wait_until(pilot, lambda: app.is_booted, "the full boot")
        assert painted_before_boot[0] is True, "the first board must paint before settings and ORM are loaded"
        # The board hears of the boot through a signal it handles on its own queue, a moment later.
        await wait_until(pilot, lambda: app.screen.title == app.services.settings.site.name, "the site's name in the title")
        await wait_until(pilot, lambda: "Devices:" in app.screen.query_one(StatusBar).devices, "device status after boot")
        # After the boot, live updates and the ORM path work as usual.
        sid2 = SessionService(demo_db).record_plate_read(PlateEvent(plate="FST-456", lane="Lane 1"), Actor.system("t"))
        await wait_until(pilot, lambda: sid2 in bubble_ids(app), "a later arrival")


async def test_a_boot_that_fails_exits_with_a_one_line_error(demo_db, settings, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.toml"
    bad.write_text("[site]\nlanes = 7\n")  # not a list of lanes: the full Settings refuse it
    boot = resolve_boot_config(bad, settings.resolved_database_url(), None)
    app = ClarityApp(boot=boot)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.boot_error is not None, "the boot error")
    assert app.return_code == 2
    assert app.boot_error.startswith("Settings problem at site.lanes")
