"""A timed child of the start-up benchmark. Never import this from the bench package.

    python bench/_startup_child.py bare
    python bench/_startup_child.py paint  DATABASE_URL LANES
    python bench/_startup_child.py booted DATABASE_URL LANES
    python bench/_startup_child.py orm-floor DATABASE_URL

`bare` is a bare Textual app that exits after its first refresh. `paint` and `booted`
start Clarity exactly as `clarity-tui --db URL` does when the schema is already at head
(clarity_tui/cli.py run_app's fast path): a BootConfig from `resolve_boot_config`, then
`ClarityApp(boot=boot)`, no subclass. The first board is painted from plain SQL, then
The boot worker (clarity_tui/boot.py) loads settings, the ORM and the devices; the app publishes `app.booted`.

- `paint` exits at the first BoardScreen.Painted showing LANES lanes (the board the person
  sees). The message is stopped before it reaches the app, so the boot worker does not start
  and the exit is not held up by it.
- `booted` notes that first paint, then waits for `app.booted`, then for the board's next
  paint (its first read through the ORM, as every later refresh is), and exits.

`orm-floor` is the bare app after importing our SQLModel tables and reading the lanes once
through db.engine's Database: the memory any app on SQLModel + Textual needs, whatever it
does (a floor for the fully booted figure, not a Clarity measurement).

Each run prints `AT <event> <time.monotonic()>` lines (the parent spawned us at a known
monotonic time) and `RSS <event> <VmHWM kB>` lines. The parent also times spawn to exit.
"""

import sys
import time

SIZE = (120, 40)


def peak_rss_kb() -> int:
    """This process's own peak RSS. (getrusage's ru_maxrss would include the parent's
    memory at fork/exec time on Linux, hiding the difference we measure.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def note(event: str) -> None:
    print(f"AT {event} {time.monotonic():.6f}\nRSS {event} {peak_rss_kb()}")


def bare() -> None:
    from textual.app import App

    class Bare(App[None]):
        def on_mount(self) -> None:
            self.call_after_refresh(self._painted)

        def _painted(self) -> None:
            note("paint")
            self.exit()

    app = Bare()
    app.run(headless=True, size=SIZE)
    note("exit")
    print("DONE bare" if app.return_code == 0 else f"FAILED {app.return_code}")


def orm_floor(url: str) -> None:
    from sqlmodel import select

    from db.engine import Database
    from db.models import Lane

    db = Database.from_url(url)
    with db.read() as session:
        lanes = session.exec(select(Lane)).all()
    db.dispose()
    if not lanes:
        print("FAILED no lanes read")
        return
    bare()


def clarity(mode: str, url: str, lanes: int) -> None:
    from textual._context import message_hook

    from clarity_tui.bootconfig import resolve_boot_config
    from db.rawconnect import schema_at_head

    # As cli.run_app: no --config, --db URL, no --simulate.
    boot = resolve_boot_config(None, url, None)
    if not schema_at_head(boot.database_url):
        print(f"FAILED the CLI would not take its fast path: {boot.database_url} is not at the schema head")
        return
    from clarity_tui.app import ClarityApp

    app = ClarityApp(boot=boot)
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.widgets.lane_column import LaneColumn

    state = {"painted": False, "booted": False, "done": False}

    def on_booted(_: object) -> None:
        state["booted"] = True
        note("booted")

    def hook(message: object) -> None:
        # Called as each message pump dispatches a message, before any handler.
        if state["done"] or not isinstance(message, BoardScreen.Painted):
            return
        if not state["painted"]:
            board = app.screen
            if not isinstance(board, BoardScreen) or len(board.query(LaneColumn)) != lanes:
                return  # not the site's board yet
            state["painted"] = True
            note("paint")
            if mode == "paint":
                state["done"] = True
                message.stop()  # keep it from the app: no boot worker to wait for at exit
                app.exit()
            else:
                app.booted.subscribe(app, on_booted, immediate=True)
        elif state["booted"] and app.is_booted:
            state["done"] = True
            note("orm-paint")
            app.exit()

    message_hook.set(hook)
    app.run(headless=True, size=SIZE)
    note("exit")
    ok = app.return_code == 0 and state["done"]
    print(f"DONE {mode}" if ok else f"FAILED exit code {app.return_code}, reached {state}")


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare()
    elif sys.argv[1] == "orm-floor":
        orm_floor(sys.argv[2])
    else:
        clarity(sys.argv[1], sys.argv[2], int(sys.argv[3]))
