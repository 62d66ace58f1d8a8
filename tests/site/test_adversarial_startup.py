"""Adversarial checks of the start-up changes (issue 17, commit 021c2b2): lazily registered CLI commands,
the PIN pad's keys without Button's stylesheet, the exit that skips its last collection, and the partial
unique indexes defined without loading PostgreSQL's dialect."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from sqlmodel import select
from textual.widgets import Button, OptionList

from bench._support import child_env
from clarity_tui.screens import signin
from db.engine import Database, sqlite_path
from db.models import AuditLog, OperatorShift, VehicleSession
from tests.helpers.cli import run_cli
from tests.helpers.signin import choose, signin_settings
from tests.helpers.ui import make_app, wait_until


class _OldKey(Button):
    """A key as the pad made it before PinKey: a default Button, sized by the pad's old rule."""

    DEFAULT_CSS = "#signin-pad _OldKey { width: 100%; height: 3; min-width: 8; }"


def _old_key(key: str) -> Button:
    button = _OldKey(signin.KEY_LABELS.get(key, key), id=f"pin-{key}", compact=False,
                     action=signin.KEY_ACTIONS.get(key, f"screen.digit('{key}')"))
    button.can_focus = False
    button.active_effect_duration = 0.0
    return button


async def _pad_pictures(settings, db, size: tuple[int, int], key_class: type) -> list[str]:
    """The pad at rest, with the pointer over a digit, over Del, and after a tap."""
    app = make_app(signin_settings(settings), db, fixed_clock=True, require_signin=True)
    pictures = []
    async with app.run_test(size=size) as pilot:
        await choose(pilot, "Morgan Manager")
        await pilot.pause()
        pictures.append(app.export_screenshot())
        for target in ("#pin-5", "#pin-back"):
            await pilot.hover(target)
            await pilot.pause()
            pictures.append(app.export_screenshot())
        await pilot.click("#pin-0")
        await pilot.pause()
        pictures.append(app.export_screenshot())
        assert type(app.screen.query_one("#pin-0")) is key_class
    return pictures


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("colours", ["truecolor", "standard"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_pin_keys_look_like_default_buttons_at_rest_and_under_the_pointer(
        demo_db, settings, monkeypatch, colours, size) -> None:
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", colours)
    new = await _pad_pictures(settings, demo_db, size, signin.PinKey)
    monkeypatch.setattr(signin, "PinKey", _old_key)
    old = await _pad_pictures(settings, demo_db, size, _OldKey)
    for what, before, after in zip(["at rest", "hover 5", "hover Del", "after a tap"], old, new, strict=True):
        assert before == after, what
    assert len(set(new)) == 4  # the pointer and the tap each change the picture: the comparison sees them


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_pin_keys_by_touch_double_taps_del_and_clear_keep_focus_on_the_names(demo_db, settings) -> None:
    app = make_app(signin_settings(settings), demo_db, fixed_clock=True, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await choose(pilot, "Taylor Tech")
        names = screen.query_one(OptionList)
        assert app.focused is names
        await pilot.click("#pin-9")
        await pilot.click("#pin-9", times=2)  # a terminal that reports a double click: two taps, two digits
        assert screen._pin == "999" and app.focused is names  # a tap never takes the focus from the names
        await pilot.click("#pin-back")
        assert screen._pin == "99"
        await pilot.click("#pin-clear")
        assert screen._pin == ""
        for _ in range(3):
            await pilot.click("#pin-1", times=2)
        await wait_until(pilot, lambda: app.actor.name == "Taylor Tech", "signed in by double taps")


# --- the command line: subcommands registered on lookup ---------------------------------------------------


def _eager_tree() -> dict[str, list[str]]:
    """Every command as the CLI registered them before (each module's register() at import): top-level
    names, and each group's subcommands."""
    from clarity_tui.cli import COMMAND_MODULES, cli

    group = click.Group(commands=dict(cli.commands))  # the commands cli.py defines itself
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(group)
    tree = {"": sorted(group.commands)}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            tree[name] = sorted(command.commands)
    return tree


def _complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    """Bash completion as the shell asks for it: click's `bash_complete` protocol ("type,value" lines)."""
    typed = words.split()
    cword = len(typed) + 1 if words == "" or words.endswith(" ") else len(typed)  # the word being completed
    done = run_cli(env={"_CLARITY_TUI_COMPLETE": "bash_complete", "COMP_WORDS": f"clarity-tui {words}",
                        "COMP_CWORD": str(cword), **(env or {})})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Usage" not in done.stdout, done.stderr
    return lines[0]


def test_help_in_a_fresh_interpreter_lists_every_command_registered_before() -> None:
    done = run_cli("--help", fresh=True)  # nothing imported the command modules beforehand
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("Commands:", 1)[1].split()
    expected = _eager_tree()
    assert [name for name in expected[""] if name not in listed] == []
    for group in ("customers", "payments", "hardware"):
        sub = run_cli(group, "--help")
        assert sub.returncode == 0, sub.stderr
        assert set(expected[group]) <= set(sub.stdout.split("Commands:", 1)[1].split()), group


def test_shell_completion_lists_commands_subcommands_and_options() -> None:
    expected = _eager_tree()
    assert _complete("") == expected[""]
    assert _complete("cu") == ["customers"]
    assert _complete("customers ") == expected["customers"]
    assert {"--json", "--limit"} <= set(_complete("customers search --"))
    assert _complete("payments ") == expected["payments"]


def test_unknown_commands_and_options_are_one_line_at_every_level() -> None:
    assert "No such command 'custmers'" in _one_line_error(run_cli("custmers", "zoom", fresh=True))
    assert "Did you mean 'customers'" in _one_line_error(run_cli("custmers"))  # the suggestion sees them all
    assert "No such option" in _one_line_error(run_cli("--bogus", "customers"))
    assert "No such command 'serch'" in _one_line_error(run_cli("customers", "serch", "zoom"))
    assert "No such option" in _one_line_error(run_cli("customers", "search", "--jsn", "zoom"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_nested_command_runs_in_a_fresh_interpreter(demo_db, settings) -> None:
    done = run_cli("--db", settings.resolved_database_url(), "customers", "search", "--json", "o'brien", fresh=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] is not None


# --- the exit: the heap frozen, no last collection ---------------------------------------------------------

# The real `clarity-tui --db URL`, headless, driven by a pilot: sign in, a crash in a worker, a plate read
# written through the app's own database, then Ctrl+Q at once. Everything is read back by the test, from
# another process, after this one has exited (through its atexit gc.freeze).
QUIT_CHILD = """
import sys
from textual.app import App

url, plate = sys.argv[1], sys.argv[2]
real_run = App.run


async def drive(pilot):
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent
    from tests.helpers.signin import sign_in
    from tests.helpers.ui import wait_until

    app = pilot.app
    await wait_until(pilot, lambda: app.is_booted, "booted")
    await sign_in(pilot, "Alex Attendant")

    def boom():
        raise RuntimeError("adversarial crash just before quitting")

    app.run_worker(boom, thread=True, exit_on_error=False, name="boom")
    await wait_until(pilot, lambda: type(app.screen).__name__ == "ErrorScreen", "the calm error screen")
    await pilot.press("enter")  # back to the board (Ctrl+Q does nothing over a modal screen: see below)
    await wait_until(pilot, lambda: type(app.screen).__name__ == "BoardScreen", "the board")
    SessionService(app.services.db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("t"))
    print("WROTE", flush=True)
    await pilot.press("ctrl+q")


def run(self, *args, **kwargs):
    kwargs.update(headless=True, size=(120, 40), auto_pilot=drive)
    return real_run(self, *args, **kwargs)


App.run = run
from clarity_tui.cli import cli

cli.main(["--db", url], prog_name="clarity-tui")
"""


@pytest.mark.both_databases
def test_what_is_written_just_before_quitting_is_there_for_the_next_process(demo_db, settings, tmp_path) -> None:
    url = settings.resolved_database_url()
    child = tmp_path / "quit_child.py"
    child.write_text(QUIT_CHILD)
    state = tmp_path / "state"
    done = subprocess.run([sys.executable, str(child), url, "QUIT-001"], capture_output=True, text=True, timeout=180,
                          env=child_env(tmp_path, XDG_STATE_HOME=str(state)), stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and "WROTE" in done.stdout, done.stdout + done.stderr[-3000:]
    demo_db.dispose()  # nothing cached from before: a new connection reads what the child left
    again = Database.from_url(url)
    try:
        with again.read() as s:
            assert s.exec(select(VehicleSession).where(VehicleSession.plate_normalized == "QUIT001")).one()
            (shift,) = s.exec(select(OperatorShift)).all()
            assert shift.signout_reason == "exit"  # written by the app's unmount, the last write of all
            actions = [a.action for a in s.exec(select(AuditLog).order_by(AuditLog.id)).all()]  # type: ignore[arg-type]
        assert "operator.sign_in" in actions and actions[-1] == "operator.sign_out"
    finally:
        again.dispose()
    crash_log = (state / "clarity-tui" / "log" / "crash.log").read_text()
    assert crash_log.count("=== ") == 1  # one entry, written whole
    assert crash_log.endswith("RuntimeError: adversarial crash just before quitting\n\n")
    path = sqlite_path(url)
    if path is not None:  # the app's connections were closed: SQLite checkpointed its WAL and removed it
        assert not Path(f"{path}-wal").exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_ctrl_q_quits_from_the_pin_pad(demo_db, settings) -> None:
    app = make_app(signin_settings(settings), demo_db, fixed_clock=True, require_signin=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await choose(pilot, "Alex Attendant")
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, "the app quit", timeout=10)


# --- the partial unique indexes (PartialIndex: each dialect gets its WHERE when it first asks) -------------

PARTIAL = ("ux_sales_order_open_session", "ux_vehicle_session_open_plate")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_create_all_makes_partial_indexes_that_enforce_one_open_session_per_plate(backend, tmp_path, request) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session

    from db.engine import normalise_url
    from db.models import metadata

    url = f"sqlite:///{tmp_path / 'all.db'}" if backend == "sqlite" else request.getfixturevalue("pg_empty_url")
    engine = create_engine(normalise_url(url))  # no foreign keys on SQLite: the sessions need no lane here
    try:
        metadata.create_all(engine)
        with engine.connect() as conn:
            for name in PARTIAL:
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n") if backend == "sqlite"
                                   else text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                   {"n": name}).scalar_one()
                assert "UNIQUE" in sql.upper() and " WHERE " in sql.upper(), sql

        def add(*statuses: str) -> None:
            with Session(engine) as s, s.begin():
                if backend == "postgres":
                    s.execute(text("SET LOCAL session_replication_role = replica"))  # no lane rows: skip the FKs
                for status in statuses:
                    s.add(VehicleSession(lane_id=1, plate="ABC 123", plate_normalized="ABC123", status=status))

        add("done", "abandoned", "done")  # closed sessions of the same plate are many
        add("waiting")
        with pytest.raises(IntegrityError):
            add("in_service")  # a second open one is refused by the database itself
    finally:
        engine.dispose()


AUTOGENERATE = """
import sys
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine
import db.models
from sqlmodel import SQLModel

engine = create_engine(sys.argv[1])  # an empty database: autogenerate writes the whole schema
with engine.connect() as conn:
    code = render_python_code(produce_migrations(MigrationContext.configure(conn), SQLModel.metadata).upgrade_ops)
for line in code.splitlines():
    if "op.create_index" in line and ("ux_sales_order_open_session" in line or "ux_vehicle_session_open_plate" in line):
        print("AUTOGEN", line.strip())
copy = SQLModel.metadata.tables["vehicle_session"].to_metadata(MetaData())
print("COPY", [dict(ix.dialect_kwargs) for ix in copy.indexes if ix.name == "ux_vehicle_session_open_plate"])
"""


def _fresh_autogenerate(tmp_path: Path) -> list[str]:
    """`alembic revision --autogenerate`'s rendering, in a new interpreter (in this one, earlier tests may
    already have compiled the indexes for one dialect or both)."""
    done = subprocess.run([sys.executable, "-c", AUTOGENERATE, f"sqlite:///{tmp_path / 'empty.db'}"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_autogenerate_renders_the_partial_indexes_with_their_where(tmp_path: Path) -> None:
    lines = [line for line in _fresh_autogenerate(tmp_path) if line.startswith("AUTOGEN")]
    assert len(lines) == 2
    for line in lines:
        assert "sqlite_where=" in line and "postgresql_where=" in line, line


def test_a_copied_table_keeps_its_partial_index_where(tmp_path: Path) -> None:
    (copy,) = [line for line in _fresh_autogenerate(tmp_path) if line.startswith("COPY")]
    assert "sqlite_where" in copy and "postgresql_where" in copy, copy
