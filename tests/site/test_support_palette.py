"""What remote support (SSH) can and cannot reach from the command palette (issue 15).

Before: the palette offered Textual's "Screenshot", which saved an SVG into the Downloads folder
of the account running the app: over SSH, the support account on the site's server. Now a support
session keeps only Textual's Theme / Quit / Keys / Maximize / Minimize, and every file Textual
would write for it (the screenshot action or key, save/deliver_screenshot, deliver_text/binary)
is refused with a notice, as is the end-of-shift report's CSV export. A manager's palette is
unchanged. The test looks at the disk: every place a file could land is under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

from clarity_tui.app import ClarityApp
from clarity_tui.services.actor import Actor
from clarity_tui.support_palette import NO_FILES, SUPPORT_TEXTUAL_COMMANDS
from db.models import Role
from tests.helpers.ui import wait_until

# What a support session's palette offers on the lanes board: Textual's commands, exactly, then
# Clarity's own (these at least; the services check the support role and audit what it does).
SUPPORT_TEXTUAL = ["Theme", "Quit", "Keys"]
SUPPORT_CLARITY = ["Lanes board: refresh", "Hardware: devices and tests", "Customers: search",
                   "Operators: who is signed in", "Audit trail", "End-of-shift report"]
FILE_WRITERS = {"Screenshot"}  # Textual's commands a support session never sees


class ShotApp(ClarityApp):
    """The app with a screenshot key, as a keymap or a future Textual default might bind one."""

    SHOTS: Path = Path(".")

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.bind("ctrl+s", f"screenshot('shot.svg', '{self.SHOTS}')", description="Screenshot", show=False)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".svg", ".csv"})


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Downloads (Textual's default save folder), the shots folder, and the data dir are all in tmp_path."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(downloads))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    shots = tmp_path / "shots"
    shots.mkdir()
    monkeypatch.setattr(ShotApp, "SHOTS", shots)
    return tmp_path


NO_MATCHES = "--no-matches"  # the option the palette adds when a search found nothing


async def search_palette(pilot, query: str, until: str) -> list[str]:  # noqa: ANN001
    """Open the palette with F10 (Menu), type `query`, wait for `until` ("no matches", or a title
    that must appear), and return the titles offered."""
    app = pilot.app
    await pilot.press("f10")
    await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*query)
    commands = app.screen.query_one(CommandList)

    def options() -> list[tuple[str | None, str]]:
        return [(o.id, str(o.prompt)) for o in (commands.get_option_at_index(i) for i in range(commands.option_count))]

    if until == "no matches":
        await wait_until(pilot, lambda: any(oid == NO_MATCHES for oid, _ in options()), "'No matches found'")
    else:
        await wait_until(pilot, lambda: any(until in prompt for _, prompt in options()), f"'{until}' offered")
    return [prompt for oid, prompt in options() if oid != NO_MATCHES]


async def test_support_palette_has_no_screenshot_and_writes_no_file(settings, demo_db, places: Path) -> None:  # noqa: ANN001
    app = ShotApp(settings=settings, db=demo_db, support_user="sam")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.operator_session.shift_id is not None, "the support session recorded")
        assert app.actor.role == Role.SUPPORT
        titles = [c.title for c in app.get_system_commands(app.screen)]
        textual_titles = titles[:len(SUPPORT_TEXTUAL)]
        assert textual_titles == SUPPORT_TEXTUAL and set(textual_titles) <= SUPPORT_TEXTUAL_COMMANDS, titles
        assert set(SUPPORT_CLARITY) <= set(titles[len(SUPPORT_TEXTUAL):]), titles  # what support can run
        assert not FILE_WRITERS & set(titles), titles
        offered = await search_palette(pilot, "screenshot", until="no matches")
        assert offered == []
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CommandPalette), "the palette closed")
        # The screenshot key, the action and Textual's delivery methods: refused, with a notice.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: any(n.message == NO_FILES for n in app._notifications),  # noqa: SLF001
                         "the refusal notice")
        assert app.deliver_screenshot() is None
        assert app.save_screenshot(path=str(places / "shots")) == ""
        # The end-of-shift report's CSV export (F2): refused too.
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: app.screen.id == "report", "the report")
        notices = len(app._notifications)  # noqa: SLF001
        await pilot.press("f2")
        await wait_until(pilot, lambda: len(app._notifications) > notices, "the export refused")  # noqa: SLF001
        assert list(app._notifications)[-1].message == NO_FILES  # noqa: SLF001
    assert files_under(places) == []


async def test_manager_palette_still_offers_screenshot_and_it_writes(settings, demo_db, places: Path) -> None:  # noqa: ANN001
    manager = Actor("Morgan Manager", Role.MANAGER, "lane-1")
    app = ShotApp(settings=settings, db=demo_db, actor=manager)
    async with app.run_test(size=(100, 30)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Screenshot" in titles and set(SUPPORT_TEXTUAL + SUPPORT_CLARITY) <= set(titles)
        offered = await search_palette(pilot, "screenshot", until="Screenshot")
        assert "Screenshot" in offered[0]
        await pilot.press("down", "enter")  # run it from the palette: it lands in Downloads
        await wait_until(pilot, lambda: any((places / "downloads").glob("*.svg")), "the palette's screenshot")
        await pilot.press("ctrl+s")  # and the key writes where it says
        await wait_until(pilot, lambda: (places / "shots" / "shot.svg").exists(), "the key's screenshot")
