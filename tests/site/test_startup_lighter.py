"""Start-up work that is no longer done (issue 17): Button's stylesheet before the first paint, the exit's
collection of the whole heap, collections that walk the database stack again and again while it loads, and
PostgreSQL's dialect on a SQLite terminal.

Each runs in a fresh interpreter (the first two through the start-up benchmark's own child, the real
`clarity-tui --db URL`), so what an earlier test loaded cannot hide it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from bench._support import child_env
from tests.helpers.startup import lane_count

CHILD = Path(__file__).resolve().parents[2] / "bench" / "_startup_child.py"


def run_paint_child(url: str, workdir: Path, before: str, mode: str = "paint") -> list[str]:
    """The benchmark's paint child (exits at the first board showing every lane; `booted`: once booted and
    repainted through the ORM), after `before` ran."""
    script = before + textwrap.dedent(f"""
        import runpy, sys
        sys.argv = [{str(CHILD)!r}, "{mode}", {url!r}, "{lane_count(url)}"]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180,
                          env=child_env(workdir), stdin=subprocess.DEVNULL)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and f"DONE {mode}" in lines, done.stdout + done.stderr[-2000:]
    return lines


def test_the_pin_pad_paints_without_buttons_stylesheet(demo_db, settings, tmp_path) -> None:
    # Button's stylesheet styles every variant (57 rules): the costliest CSS parsed before the first paint.
    lines = run_paint_child(settings.resolved_database_url(), tmp_path, textwrap.dedent("""
        import atexit
        from textual.css.stylesheet import Stylesheet
        sources = set()
        real_add = Stylesheet.add_source
        def add_source(self, css, read_from=None, *args, **kwargs):
            sources.add(read_from[1] if isinstance(read_from, tuple) else str(read_from))
            return real_add(self, css, read_from, *args, **kwargs)
        Stylesheet.add_source = add_source
        atexit.register(lambda: print("CSS " + " ".join(sorted(sources))))
    """))
    (css,) = [line.split()[1:] for line in lines if line.startswith("CSS ")]
    assert "SignInScreen.DEFAULT_CSS" in css and "PinKey.DEFAULT_CSS" in css  # the pad was painted
    assert "Button.DEFAULT_CSS" not in css


def test_the_exit_does_not_collect_the_whole_heap(demo_db, settings, tmp_path) -> None:
    # Registered before the app runs, so it runs after the app's own exit handlers: the heap is frozen by
    # then, and the interpreter's last collections skip it (~250 ms once booted).
    lines = run_paint_child(settings.resolved_database_url(), tmp_path, textwrap.dedent("""
        import atexit, gc
        atexit.register(lambda: print(f"FROZEN {gc.get_freeze_count()}"))
    """))
    (frozen,) = [int(line.split()[1]) for line in lines if line.startswith("FROZEN ")]
    assert frozen > 50_000


def test_the_database_stack_lands_out_of_the_collectors_view() -> None:
    script = textwrap.dedent("""
        import gc
        from clarity_tui import db_stack
        before = gc.get_freeze_count()
        db_stack.import_database_stack()
        after_stack = gc.get_freeze_count()
        db_stack.import_worker_stack()
        print(before, after_stack, gc.get_freeze_count())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after_stack, after_workers = map(int, done.stdout.split())
    # SQLAlchemy, SQLModel, pydantic and the tables: tens of thousands of objects the boot's collections skip.
    assert before == 0 and after_stack > 50_000 and after_workers > after_stack


def test_a_sqlite_terminal_boots_without_the_postgresql_dialect(demo_db, settings, tmp_path) -> None:
    # The partial indexes used to name postgresql_where, which loads the dialect and its drivers' modules.
    lines = run_paint_child(settings.resolved_database_url(), tmp_path, textwrap.dedent("""
        import atexit, sys
        atexit.register(lambda: print("DIALECTS " + " ".join(sorted(
            m for m in sys.modules if m.startswith("sqlalchemy.dialects.") and m.count(".") == 2))))
    """), mode="booted")
    (dialects,) = [line.split()[1:] for line in lines if line.startswith("DIALECTS")]
    assert dialects == ["sqlalchemy.dialects._typing", "sqlalchemy.dialects.sqlite"]
