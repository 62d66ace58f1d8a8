"""The right car at the lane (issue 14): a misread of a current customer's plate.

- `SessionLookalike`, a mixin of SessionDetailScreen: on a walk-up session whose plate looks like a
  customer's car, "Looks like RMK-3231 (Sofia Evans, Basic member)" and one key (F5 / l, and its button)
  to correct the session's plate to that car (services/plate_lookalikes.py; audited there).
- A Purchase on such a session asks first, before any order exists (widgets/lookalike_sale.py, which
  holds the one plate correction both use; `LookalikeSaleScreen` is re-exported here for the tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Static

from clarity_tui.services.plate_lookalikes import LookAlike, session_lookalikes
from clarity_tui.widgets.lookalike_sale import LookalikeSaleScreen, correct_plate
from clarity_tui.wiring import services_of
from clarity_tui.widgets.text import show_text

__all__ = ["LOOKALIKE_CSS", "LookalikeSaleScreen", "SessionLookalike"]

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp

LOOKALIKE_CSS = """
    #lookalike { display: none; height: auto; padding: 0 1; }
    #lookalike-text { width: 1fr; color: $warning; text-style: bold; }
    #correct-plate { width: auto; min-width: 24; height: 3; }
    &.-lookalike #lookalike { display: block; }
"""


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
        show_text(self.query_one("#lookalike-text", Static), "\n".join(lines))
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
