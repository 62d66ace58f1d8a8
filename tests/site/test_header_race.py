"""A title change while the header's parts are not mounted (a screen opened and closed fast on a loaded
terminal) must not exit the lane app. Textual's own Header raises NoMatches there; seen in the suite."""

from __future__ import annotations

import ast
from pathlib import Path

from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets._header import HeaderTitle

from clarity_tui.widgets.header import ClarityHeader

PACKAGE = Path(__file__).resolve().parents[2] / "clarity_tui"


class _Titled(Screen):
    def compose(self) -> ComposeResult:
        yield ClarityHeader()


async def test_a_title_set_while_the_header_has_no_title_part_is_ignored() -> None:
    app = App()
    async with app.run_test() as pilot:
        screen = _Titled()
        await app.push_screen(screen)
        await pilot.pause()
        header = screen.query_one(ClarityHeader)
        await header.query_one(HeaderTitle).remove()
        screen.title = "Session"  # Textual's Header: NoMatches, and run_test re-raises it here
        await pilot.pause()
        assert app.is_running
        screen.sub_title = "still fine"
        await pilot.pause()


async def test_the_header_still_shows_the_screen_title() -> None:
    app = App()
    async with app.run_test() as pilot:
        screen = _Titled()
        await app.push_screen(screen)
        screen.title = "Lanes"
        await pilot.pause()
        assert "Lanes" in str(screen.query_one(HeaderTitle).render())


def test_no_screen_uses_textuals_header_directly() -> None:
    users = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "header.py" and path.parent.name == "widgets":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Header":
                users.append(str(path.relative_to(PACKAGE)))
    assert users == [], f"use widgets.header.ClarityHeader instead of Textual's Header in {users}"
