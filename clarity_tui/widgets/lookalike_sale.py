"""Asked before a sale on a session whose plate looks like a current member's car (issue 14).

`lookalike_cleared` (the sale flow calls it, screens/sale/flow.py) shows `LookalikeSaleScreen`:
"RMK-323I looks like RMK-3231, Sofia Evans's car (Basic member). Correct the plate / Sell anyway / Back".
`correct_plate` is the one correction, here and on the session screen (screens/session_lookalike.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from clarity_tui.operator_session import operator_session_of
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.plate_lookalikes import (
    LookAlike,
    PlateCorrectionRefused,
    correct_session_plate,
    member_lookalike,
    note_sell_anyway,
)
from clarity_tui.wiring import services_of


async def correct_plate(app: App[Any], session_id: int, lookalike: LookAlike) -> bool:
    """Correct the session's plate to the look-alike car, telling the attendant either way."""
    try:
        plate = await asyncio.to_thread(correct_session_plate, services_of(app).db, session_id, lookalike.vehicle_id,
                                        operator_session_of(app).actor)
    except PermissionDenied as exc:
        app.notify(str(exc), title="Not allowed", severity="error", timeout=8)
        return False
    except PlateCorrectionRefused as exc:
        app.notify(str(exc), title="Plate not corrected", severity="error", timeout=10)
        return False
    app.notify(f"Plate corrected to {plate}: {lookalike.whose}.", title="Plate corrected")
    return True


class LookalikeSaleScreen(ModalScreen[str]):
    """Asked before selling to a look-alike of a current member: "correct", "sell" or "back"."""

    DEFAULT_CLASSES = "dialog"  # app.tcss: the one dialog style, with a warning border
    BINDINGS = [
        Binding("c,f5", "choose('correct')", "Correct the plate", id="lookalike_sale.correct",
                tooltip="The camera misread the car: make the session the member's car"),
        Binding("s", "choose('sell')", "Sell anyway", id="lookalike_sale.sell",
                tooltip="A different car: go on with the sale"),
        Binding("escape,b", "choose('back')", "Back", id="lookalike_sale.back", tooltip="Back to the session"),
    ]

    def __init__(self, plate: str, lookalike: LookAlike) -> None:
        super().__init__(id="lookalike-sale")
        self.plate = plate
        self.lookalike = lookalike

    @property
    def question(self) -> str:
        return (f"{self.plate} looks like {self.lookalike.plate}, {self.lookalike.whose}. "
                "Check the plate on the car before selling a second membership.")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Is this the member's car?", classes="dialog-title")
            yield Static(self.question, id="lookalike-question", classes="dialog-body", markup=False)
            with Horizontal():
                yield Button("Correct the plate · C", id="lookalike-correct", variant="warning",
                             action="screen.choose('correct')")
                yield Button("Sell anyway · S", id="lookalike-sell", action="screen.choose('sell')")
                yield Button("Back · Esc", id="lookalike-back", action="screen.choose('back')")

    def on_mount(self) -> None:
        self.query_one("#lookalike-correct", Button).focus()

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


async def lookalike_cleared(app: App[Any], session_id: int) -> bool:
    """Before a sale opens: True to go on. A session whose plate looks like a current member's car asks
    first; "Correct the plate" corrects it (and the sale does not start: the member is on screen now)."""
    db = services_of(app).db
    lookalike = await asyncio.to_thread(member_lookalike, db, session_id)
    if lookalike is None:
        return True
    choice = await app.push_screen_wait(LookalikeSaleScreen(lookalike.read_plate, lookalike))
    if choice == "correct":
        await correct_plate(app, session_id, lookalike)
    elif choice == "sell":
        await asyncio.to_thread(note_sell_anyway, db, session_id, lookalike, operator_session_of(app).actor)
    return choice == "sell"

