"""A timed child of the start-up benchmark. Never import this from the bench package.

    python bench/_startup_child.py bare
    python bench/_startup_child.py clarity DATABASE_URL

Both exit at their first paint: the bare app after its first refresh, Clarity when the
board posts its first BoardScreen.Painted (the first database read on screen). Everything
the user waits for is inside the parent's timing: interpreter start, imports, settings,
opening the database (schema check), the first board read and paint, and shutdown.
"""

import os
import sys

SIZE = (120, 40)


def peak_rss_kb() -> int:
    """This process's own peak RSS. (getrusage's ru_maxrss would include the parent's
    memory at fork/exec time on Linux, hiding the difference we measure.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def bare() -> None:
    from textual.app import App

    class Bare(App[None]):
        def on_mount(self) -> None:
            self.call_after_refresh(self.exit)

    app = Bare()
    app.run(headless=True, size=SIZE)
    print(f"PAINTED bare\nRSS {peak_rss_kb()}" if app.return_code == 0 else f"FAILED {app.return_code}")


def clarity(url: str) -> None:
    from clarity_tui.app import ClarityApp
    from clarity_tui.config import load_settings
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.services.bootstrap import open_database

    import clarity_tui.app

    class FirstPaint(ClarityApp):
        # Textual resolves a relative CSS_PATH next to the subclass's module: point at the app's own.
        CSS_PATH = os.path.join(os.path.dirname(clarity_tui.app.__file__), ClarityApp.CSS_PATH)
        bubbles: int | None = None

        def on_board_screen_painted(self, message: BoardScreen.Painted) -> None:
            self.bubbles = len(message.session_ids)
            self.exit()

    settings = load_settings(database_url=url, terminal_id="bench")
    db = open_database(settings)
    app = FirstPaint(settings=settings, db=db)
    app.run(headless=True, size=SIZE)
    db.dispose()
    print(f"PAINTED {app.bubbles} bubbles\nRSS {peak_rss_kb()}" if app.bubbles is not None and app.return_code == 0
          else f"FAILED {app.return_code}")


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare()
    else:
        clarity(sys.argv[2])
