"""A timed child of the start-up benchmark. Never import this from the bench package.

    python bench/_startup_child.py bare
    python bench/_startup_child.py paint  DATABASE_URL LANES
    python bench/_startup_child.py booted DATABASE_URL LANES
    python bench/_startup_child.py orm-floor DATABASE_URL

The parent times each of these whole processes from outside (spawn -> exit).

`bare` is a bare Textual app that exits after its first refresh. `paint` and `booted` run the
real command line, `clarity-tui --db URL` (clarity_tui.cli's entry point, its click group and
run_app, the PIN pad included), on a database at the schema head, so the CLI takes its fast path.

- `paint` exits at the first BoardScreen.Painted showing LANES lanes (the board the person
  sees). The message is stopped before it reaches the app, so the boot worker does not start
  and the exit is not held up by it.
- `booted` notes that first paint, lets the boot run (settings, ORM, devices), waits for
  `app.booted` and then the board's next paint (its first read through the ORM), and exits.

`orm-floor` is the bare app after importing our SQLModel tables and reading the lanes once
through db.engine's Database: the memory any app on SQLModel + Textual needs (information only).

Every app here, bare or Clarity, runs headless at the same size: App.run is given those two
arguments, nothing else changes. Each run prints `AT <event> <time.monotonic()>` and
`RSS <event> <VmHWM kB>` lines, a Clarity run `HEAVY <libraries loaded>`, then `DONE <mode>`.
"""

import sys
import time

SIZE = (120, 40)


def peak_rss_kb() -> int:
    """This process's own peak RSS. (wait4's ru_maxrss would include the parent's memory at
    fork/exec time on Linux, hiding the difference we measure.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "pydantic_settings", "alembic", "psycopg", "phonenumbers")


def note(event: str) -> None:
    print(f"AT {event} {time.monotonic():.6f}\nRSS {event} {peak_rss_kb()}")


def note_heavy() -> None:
    """The heavy libraries this process loaded, whoever loaded them (tests/site/test_startup_first_paint.py)."""
    print("HEAVY " + ",".join(name for name in HEAVY if name in sys.modules))


def run_headless() -> None:
    """Every App.run in this process is headless at SIZE (no terminal to draw on), bare and Clarity alike."""
    from textual.app import App

    real_run = App.run

    def run(self: App, *args: object, **kwargs: object) -> object:
        kwargs.update(headless=True, size=SIZE)
        return real_run(self, *args, **kwargs)  # type: ignore[arg-type]

    App.run = run  # type: ignore[method-assign,assignment]


def bare() -> None:
    from textual.app import App

    class Bare(App[None]):
        def on_mount(self) -> None:
            self.call_after_refresh(self._painted)

        def _painted(self) -> None:
            note("paint")
            self.exit()

    run_headless()
    app = Bare()
    app.run()
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
    from textual._context import active_app, message_hook

    state = {"painted": False, "booted": False, "done": False}

    def on_booted(_: object) -> None:
        state["booted"] = True
        note("booted")

    def hook(message: object) -> None:
        # Called as each message pump dispatches a message, before any handler. The board's modules
        # are taken once the app has loaded them: the hook must not import anything itself.
        board_module = sys.modules.get("clarity_tui.screens.board")
        if state["done"] or board_module is None or not isinstance(message, board_module.BoardScreen.Painted):
            return
        BoardScreen = board_module.BoardScreen
        from clarity_tui.widgets.lane_column import LaneColumn  # loaded with the board

        app = active_app.get()
        if not state["painted"]:
            board = app.screen_stack[0] if app.screen_stack else None  # the PIN pad may sit above it
            if not isinstance(board, BoardScreen) or len(board.query(LaneColumn)) != lanes:
                return  # not the site's board yet
            state["painted"] = True
            note("paint")
            if mode == "paint":
                state["done"] = True
                message.stop()  # keep it from the app: no boot worker to wait for at exit
                app.exit()
            else:
                app.booted.subscribe(app, on_booted, immediate=True)  # type: ignore[attr-defined]
        elif state["booted"] and app.is_booted:  # type: ignore[attr-defined]
            state["done"] = True
            note("orm-paint")
            app.exit()

    message_hook.set(hook)
    run_headless()
    from clarity_tui.cli import cli

    code: object = 0
    try:
        cli.main(["--db", url], prog_name="clarity-tui")
    except SystemExit as exit_:
        code = exit_.code
    note("exit")
    note_heavy()
    ok = code in (0, None) and state["done"]
    print(f"DONE {mode}" if ok else f"FAILED exit code {code}, reached {state}")


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare()
    elif sys.argv[1] == "orm-floor":
        orm_floor(sys.argv[2])
    else:
        clarity(sys.argv[1], sys.argv[2], int(sys.argv[3]))
