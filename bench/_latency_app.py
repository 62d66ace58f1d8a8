"""The app side of the latency benchmark: the real ClarityApp, headless, in its own process.

    python bench/_latency_app.py DATABASE_URL PAINTS_FILE STOP_FILE

Appends one line per applied board read to PAINTS_FILE: "<time.time()> <id,id,...>" (the
wall-clock time at which BoardScreen.Painted was handled, i.e. after the screen refreshed).
Exits when STOP_FILE appears.

With CLARITY_BENCH_TRACE=FILE (diagnostics only, off in the measured runs) it also appends the stages of
every board read to FILE (see `_install_trace`), which `bench/latency.py` turns into a breakdown.
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
            # No super().on_mount(): Textual calls ClarityApp.on_mount itself (handlers run for every class in
            # the MRO). Calling it too started the app's live work twice: two change-feed threads, two boots of
            # the background work.
            self.set_interval(0.1, self._maybe_stop)

        def on_database_changed(self, message: DatabaseChanged) -> None:
            # Diagnostic: when the change feed's wake-up reached the UI thread. No super() call: Textual runs
            # every class's handler in the MRO itself, so calling it here published each change twice (two
            # board reads per commit, the second one waiting behind the first).
            paints.write(f"{time.time():.6f} changed\n")

        def on_board_screen_painted(self, message: BoardScreen.Painted) -> None:
            paints.write(f"{time.time():.6f} {','.join(map(str, sorted(message.session_ids)))}\n")

        def _maybe_stop(self) -> None:
            if os.path.exists(stop_path):
                self.exit()

    trace_path = os.environ.get("CLARITY_BENCH_TRACE")
    if trace_path:
        _install_trace(Recording, open(trace_path, "a", buffering=1))  # noqa: SIM115 - lives as long as the app
    settings = load_settings(database_url=url, terminal_id="bench-board")
    db = open_database(settings)
    with open(paints_path, "a", buffering=1) as paints:
        Recording(settings=settings, db=db).run(headless=True, size=(120, 40))
    db.dispose()


def _install_trace(app_class, out) -> None:
    """Log "<time.time()> <stage> [detail]" lines for each stage between a commit and its paint: the feed's
    wake-up, the UI thread hearing of it, each read (numbered), the hop back, the apply, the paint; and the
    things that can stall the UI thread in between: layouts, compositor renders, the 1 s tick, GC."""
    import collections
    import functools
    import gc
    import threading

    from textual.screen import Screen

    from clarity_tui.screens.board import BoardScreen
    from db import changefeed

    def log(stage: str, detail: object = "") -> None:
        out.write(f"{time.time():.6f} {stage} {detail}\n")

    def timed(cls, name: str, stage: str, detail=lambda *a: "") -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            log(stage + "0", detail(*args))
            cpu = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                log(stage + "1", f"{(time.thread_time() - cpu) * 1000:.2f}")  # this thread's CPU ms

        setattr(cls, name, wrapper)

    for feed_class in (changefeed.SQLiteChangeFeed, changefeed.PostgresChangeFeed):
        def feed_wait(self, timeout, _original=feed_class.wait):
            changed = _original(self, timeout)
            if changed:
                log("feed")
            return changed

        feed_class.wait = feed_wait  # type: ignore[method-assign]

    reads = collections.deque()  # read numbers, in the order their lanes reach _apply
    numbers = {"read": 0}
    read_lock = threading.Lock()
    original_read = app_class.read_board

    def read_board(self):
        with read_lock:
            numbers["read"] += 1
            number = numbers["read"]
        log("read0", number)
        lanes = original_read(self)
        log("read1", number)
        reads.append(number)
        return lanes

    app_class.read_board = read_board

    applied = collections.deque()
    original_apply = BoardScreen._apply

    async def apply(self, lanes, banner):
        number = reads.popleft() if reads else -1
        log("apply0", f"{number} {time.thread_time() * 1000:.2f}")  # + the UI thread's CPU ms so far
        await original_apply(self, lanes, banner)
        applied.append(number)
        log("apply1", number)

    BoardScreen._apply = apply  # type: ignore[method-assign]
    original_after = BoardScreen._after_paint

    def after_paint(self, focused_id, ids):
        number = applied.popleft() if applied else -1
        log("painted", f"{number} {time.thread_time() * 1000:.2f} {','.join(map(str, sorted(ids)))}")
        original_after(self, focused_id, ids)

    BoardScreen._after_paint = after_paint  # type: ignore[method-assign]
    original_reload = BoardScreen.reload

    def reload(self):
        log("reload", f"loading={int(self._loading)}")
        original_reload(self)

    BoardScreen.reload = reload  # type: ignore[method-assign]
    original_changed = app_class.on_database_changed

    def on_database_changed(self, message):
        log("changed")
        original_changed(self, message)

    app_class.on_database_changed = on_database_changed
    timed(Screen, "_refresh_layout", "layout")
    timed(Screen, "_compositor_refresh", "render")
    timed(BoardScreen, "_tick", "tick")
    gc.callbacks.append(lambda phase, info: log("gc0" if phase == "start" else "gc1", info["generation"]))


if __name__ == "__main__":
    main(*sys.argv[1:4])
