"""The right car at the lane (issue 14): a misread of a current customer's plate.

- `SessionLookalike`, a mixin of SessionDetailScreen: on a walk-up session whose plate looks like a
  customer's car, "Looks like RMK-3231 (Sofia Evans, Basic member)" and one key (F5 / l, and its button)
  to correct the session's plate to that car (services/plate_lookalikes.py; audited there).
- `LookalikeSaleScreen` and `lookalike_cleared`: a Purchase on such a session asks first, before any
  order exists: "RMK-323I looks like RMK-3231, Sofia Evans's car (Basic member). Correct the plate /
  Sell anyway / Back" (the sale flow calls it, screens/sale/flow.py).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Static

from clarity_tui.operator_session import operator_session_of
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.plate_lookalikes import (
    LookAlike,
    PlateCorrectionRefused,
    correct_session_plate,
    member_lookalike,
    note_sell_anyway,
    session_lookalikes,
)
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp

LOOKALIKE_CSS = """
    #lookalike { display: none; height: auto; padding: 0 1; }
    #lookalike-text { width: 1fr; color: $warning; text-style: bold; }
    #correct-plate { width: auto; min-width: 24; height: 3; }
    &.-lookalike #lookalike { display: block; }
"""


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


class SessionLookalike(Screen[None]):
    """The look-alike hint and the correction key on the session screen (mixed into SessionDetailScreen)."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    session_id: int

    def load(self) -> Any:  # pragma: no cover - SessionDetailScreen's: re-read the session
        raise NotImplementedError

    lookalike: LookAlike | None = None
    # Type-ahead (clarity_tui/typeahead.py): F5 typed right after opening the session waits for the hint.
    TYPEAHEAD_WAIT_FOR = frozenset({"session-lookalike", "session-correct-plate"})

    @staticmethod
    def lookalike_info() -> Vertical:
        """Under the customer section: what the plate looks like, and the button that corrects it."""
        return Vertical(Static("", id="lookalike-text"),
                        Button("Correct plate · F5", id="correct-plate", variant="warning",
                               action="screen.correct_plate",
                               tooltip="The camera misread this car: make it the customer's car shown"),
                        id="lookalike")

    @work(thread=True, exclusive=True, group="session-lookalike", exit_on_error=False)
    def load_lookalike(self) -> None:
        found = session_lookalikes(services_of(self).db, self.session_id)
        self.app.call_from_thread(self._show_lookalike, found)

    def _show_lookalike(self, found: list[LookAlike]) -> None:
        self.lookalike = found[0] if found else None
        self.set_class(self.lookalike is not None, "-lookalike")
        lines = [f"Looks like {a.label}" for a in found]
        if lines:
            lines[0] += "   F5 corrects the plate"
        self.query_one("#lookalike-text", Static).update("\n".join(lines))
        self.refresh_bindings()

    def lookalike_allows(self, action: str) -> bool | None:
        """For check_action: "Correct plate" only while the plate looks like a customer's car."""
        return self.lookalike is not None if action == "correct_plate" else True

    def action_correct_plate(self) -> None:
        self._correct_plate()

    @work(exclusive=True, group="session-correct-plate", exit_on_error=False)
    async def _correct_plate(self) -> None:
        lookalike = self.lookalike
        if lookalike is None:
            self.notify("This plate does not look like a customer's car.", severity="information")
            return
        if await correct_plate(self.app, self.session_id, lookalike):
            self._show_lookalike([])
            self.load()


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

