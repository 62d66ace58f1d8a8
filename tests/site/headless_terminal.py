"""One terminal, headless, in its own process: the real ClarityApp on a shared database.

    python -m tests.site.headless_terminal DATABASE_URL TERMINAL_ID WORKDIR

Every 0.1 s it writes WORKDIR/<terminal>.state.json: the bubbles on its board (session id ->
"held by" as shown) and the session detail's vehicle text if one is open. It obeys commands
written to WORKDIR/<terminal>.cmd, one at a time: "arrive PLATE LANE" (a plate read recorded
here, as this terminal's camera would), "open SESSION_ID", "back", "quit".
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(url: str, terminal: str, workdir: str) -> None:
    from clarity_tui.app import ClarityApp
    from clarity_tui.config import Settings
    from clarity_tui.screens.session_detail import SessionDetailScreen
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.services.sessions import SessionService
    from clarity_tui.widgets.bubble import SessionBubble
    from hardware.plate_reader import PlateEvent

    work = Path(workdir)
    state_file, cmd_file = work / f"{terminal}.state.json", work / f"{terminal}.cmd"
    settings = Settings(database_url=url, terminal_id=terminal)
    db = open_database(settings)

    class Terminal(ClarityApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.set_interval(0.1, self._tick)

        def _tick(self) -> None:
            if cmd_file.exists():
                command = cmd_file.read_text().split()
                cmd_file.unlink()
                self._obey(command)
            board = self.screen_stack[0]
            bubbles = {str(b.session_id): b.view.held_by for b in board.query(SessionBubble)}
            detail = next((s for s in self.screen_stack if isinstance(s, SessionDetailScreen)), None)
            text = str(detail.query_one("#vehicle").render()) if detail is not None and detail.is_mounted else None
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"board": bubbles, "detail": text, "actor": self.holder_label}))
            os.replace(tmp, state_file)

        def _obey(self, command: list[str]) -> None:
            if command[0] == "arrive":
                assert self.services is not None  # settings and database were injected: booted at once
                SessionService(self.services.db).record_plate_read(PlateEvent(plate=command[1], lane=" ".join(command[2:])),
                                                          Actor.system("camera", terminal))
            elif command[0] == "open":
                self.push_screen(SessionDetailScreen(int(command[1])))
            elif command[0] == "back":
                self.screen.action_back()  # type: ignore[attr-defined]
            elif command[0] == "quit":
                self.exit()

    actor = Actor(f"Operator {terminal}", terminal=terminal)
    Terminal(settings=settings, db=db, actor=actor).run(headless=True, size=(80, 24))
    db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
