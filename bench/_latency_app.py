"""The app side of the latency benchmark: the real ClarityApp, headless, in its own process.

    python bench/_latency_app.py DATABASE_URL PAINTS_FILE STOP_FILE

Appends one line per applied board read to PAINTS_FILE: "<time.time()> <id,id,...>" (the
wall-clock time at which BoardScreen.Painted was handled, i.e. after the screen refreshed).
Exits when STOP_FILE appears.
"""

import os
import sys
import time


def main(url: str, paints_path: str, stop_path: str) -> None:
    import clarity_tui.app
    from clarity_tui.app import ClarityApp
    from clarity_tui.config import load_settings
    from clarity_tui.messages import DatabaseChanged
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.services.bootstrap import open_database

    class Recording(ClarityApp):
        CSS_PATH = os.path.join(os.path.dirname(clarity_tui.app.__file__), ClarityApp.CSS_PATH)

        def on_mount(self) -> None:
            super().on_mount()
            self.set_interval(0.1, self._maybe_stop)

        def on_database_changed(self, message: DatabaseChanged) -> None:
            # Diagnostic: when the change feed's wake-up reached the UI thread.
            paints.write(f"{time.time():.6f} changed\n")
            super().on_database_changed(message)

        def on_board_screen_painted(self, message: BoardScreen.Painted) -> None:
            paints.write(f"{time.time():.6f} {','.join(map(str, sorted(message.session_ids)))}\n")

        def _maybe_stop(self) -> None:
            if os.path.exists(stop_path):
                self.exit()

    settings = load_settings(database_url=url, terminal_id="bench-board")
    db = open_database(settings)
    with open(paints_path, "a", buffering=1) as paints:
        Recording(settings=settings, db=db).run(headless=True, size=(120, 40))
    db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
