"""Database faults as an operator meets them (issue 15, item 5): real files, real processes.

- A SQLite file with damaged pages: every command (and the app) prints one line naming the fix,
  exits 2 and leaves the file byte for byte as it was (no WAL frames either).
- Another program's database (SQLite file or PostgreSQL database): refused, never given our tables.
- Every bad URL form: one line, exit 2, through --db and CLARITY_DATABASE_URL.
- A full disk: a real small tmpfs when this machine allows one (root, or an unprivileged user
  namespace through `unshare`), else SQLite's own `PRAGMA max_page_count` (the same SQLITE_FULL
  error); /dev/full for files that are not the database (exports).
"""

from __future__ import annotations

import hashlib
from contextlib import closing
import os
import pty
import random
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.helpers import forked
from tests.helpers.db_faults import assert_one_line, corrupt

ROOT = Path(__file__).resolve().parents[2]
APP_DEADLINE_SECONDS = 180  # only a guard against a hung app; nothing is timed


# --- running the CLI -------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`clarity-tui ARGS` in its own process, forked from the warm interpreter (tests/helpers/forked.py)."""
    return forked.run(["-m", "clarity_tui", *args], capture_output=True, text=True, timeout=timeout,
                      env={**os.environ, **(env or {})}, cwd=ROOT)


def run_app(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`clarity-tui ARGS` (the Textual app) under an 80x24 pseudo-terminal: (exit code, text it printed).
    The app is a forked process (tests/helpers/forked.py) whose stdin, stdout and stderr are the terminal."""
    fd, terminal = pty.openpty()
    try:
        proc = forked.popen(["-m", "clarity_tui", *args], stdin=terminal, stdout=terminal, stderr=terminal,
                            env={**os.environ, **(env or {}), "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
                            cwd=ROOT)
    finally:
        os.close(terminal)  # the child holds the only end left: its exit is the end of the output
    out = b""
    deadline = time.monotonic() + APP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    else:
        proc.kill()
    code = proc.wait()
    os.close(fd)
    text = re.sub(r"\x1b\[[0-9;?<>=$]*[a-zA-Z~]|\x1b\][^\x07]*\x07|\x1b[()][AB0]|\x1b[=>]", "", out.decode(errors="replace"))
    return code, text


def assert_app_one_line(code: int, text: str, *needles: str) -> None:
    assert code == 2, f"exit {code} (-9: the app hung and was killed)\n{text[-2000:]}"
    assert "Traceback" not in text, text[-4000:]
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("Error: ")]
    assert len(errors) == 1, text[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


# --- files -------------------------------------------------------------------------------------


def file_state(path: Path) -> tuple[str, int]:
    """The file's sha256 and the bytes in its WAL: a write shows in one or the other."""
    wal = Path(f"{path}-wal")
    return hashlib.sha256(path.read_bytes()).hexdigest(), wal.stat().st_size if wal.exists() else 0


_TEMPLATE: dict[str, Path] = {}


@pytest.fixture
def seeded(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a demo site (40 customers, 20 legacy members) in one self-contained file (no WAL)."""
    if "demo" not in _TEMPLATE:
        from clarity_tui.config import Settings
        from clarity_tui.services.bootstrap import open_database
        from clarity_tui.seeding.demo import seed_demo

        path = tmp_path_factory.mktemp("template") / "demo.db"
        db = open_database(Settings(database_url=f"sqlite:///{path}", terminal_id="seed", site={"timezone": "UTC"}))
        seed_demo(db, customers=40, legacy=20)
        db.dispose()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        _TEMPLATE["demo"] = path
    copy = tmp_path / "site.db"
    shutil.copyfile(_TEMPLATE["demo"], copy)
    return copy


def a_legacy_plate(path: Path) -> str:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT plate_normalized FROM legacy_member_plate ORDER BY id LIMIT 1").fetchone()[0]


# --- damaged SQLite files --------------------------------------------------------------------


COMMANDS = {
    "doctor": lambda plate: ["doctor"],
    "legacy find": lambda plate: ["legacy", "find", plate],
    "plans sync": lambda plate: ["plans", "sync"],
    "customers search": lambda plate: ["customers", "search", "a"],
    "demo seed": lambda plate: ["demo", "seed", "--customers", "5"],
    "report": lambda plate: ["report"],
}


@pytest.mark.parametrize("how", ["table pages", "legacy pages", "header"])
def test_a_damaged_sqlite_file_gets_one_line_naming_the_fix_and_is_never_written(seeded: Path, how: str) -> None:
    plate = a_legacy_plate(seeded)
    corrupt(seeded, how)
    before = file_state(seeded)
    for name, args in COMMANDS.items():
        result = run_cli("--db", f"sqlite:///{seeded}", *args(plate))
        line = assert_one_line(result, str(seeded), "corrupt")
        assert "backup" in line, line
        if how != "header":
            assert ".recover" in line, line
        assert file_state(seeded) == before, f"`{name}` wrote to the damaged file"


def test_plans_sync_never_writes_to_a_file_whose_other_tables_are_damaged(seeded: Path) -> None:
    """The case found by the adversarial pass: plans sync reads only healthy pages, and used to write."""
    corrupt(seeded, "legacy pages")
    before = file_state(seeded)
    result = run_cli("--db", f"sqlite:///{seeded}", "plans", "sync")
    assert_one_line(result, "corrupt", str(seeded))
    assert "Synced" not in result.stdout
    assert file_state(seeded) == before


def test_the_same_damaged_file_through_the_environment_variable(seeded: Path) -> None:
    corrupt(seeded, "legacy pages")
    before = file_state(seeded)
    for args in (["plans", "sync"], ["legacy", "find", "ABC123"]):
        result = run_cli(*args, env={"CLARITY_DATABASE_URL": f"sqlite:///{seeded}"})
        assert_one_line(result, "corrupt", str(seeded))
        assert file_state(seeded) == before


@pytest.mark.parametrize("how", ["table pages", "legacy pages"])
def test_the_app_on_a_damaged_file_shows_the_calm_line_and_exits_2(seeded: Path, how: str) -> None:
    corrupt(seeded, how)
    before = file_state(seeded)
    code, text = run_app("--db", f"sqlite:///{seeded}")
    assert_app_one_line(code, text, "corrupt", ".recover")
    assert file_state(seeded) == before


def scatter_random_bytes(path: Path, seed: int) -> None:
    """200 random bytes into every third page from page 3 (100 bytes in), as a failing disk leaves them."""
    rng = random.Random(seed)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for page in range(3, size // 4096, 3):
            f.seek(page * 4096 + 100)
            f.write(rng.randbytes(200))


def undecodable_by_sqlite3(path: Path) -> bool:
    """True when plain sqlite3 meets text it cannot decode (SQLite quotes the damaged bytes in its own
    messages): the schema read or `PRAGMA quick_check` raises UnicodeDecodeError."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        for sql in ("SELECT name FROM sqlite_master WHERE type = 'table'", "PRAGMA quick_check(1)"):
            try:
                conn.execute(sql).fetchall()
            except UnicodeDecodeError:
                return True
            except sqlite3.Error:
                pass
    return False


@pytest.fixture
def undecodable(seeded: Path) -> Path:
    """The demo site with random bytes in its pages that sqlite3 cannot even put into an error message."""
    pristine = seeded.read_bytes()
    for seed in range(60):
        seeded.write_bytes(pristine)
        scatter_random_bytes(seeded, seed)
        if undecodable_by_sqlite3(seeded):
            return seeded
    pytest.fail("no seed in 60 gave bytes that sqlite3 cannot decode")


def test_random_bytes_sqlite_quotes_undecoded_get_the_damaged_file_line(undecodable: Path) -> None:
    """Used to be a UnicodeDecodeError traceback (exit 1) from every command, doctor included."""
    before = file_state(undecodable)
    for args in (["doctor"], ["operators", "list"], ["customers", "search", "a"], ["plans", "sync"],
                 ["demo", "seed", "--customers", "3"]):
        result = run_cli("--db", f"sqlite:///{undecodable}", *args)
        line = assert_one_line(result, str(undecodable), "corrupt", "backup")
        assert "\ufffd" not in line, line
        assert file_state(undecodable) == before, f"{args} wrote to the damaged file"


def test_quick_check_and_preflight_report_undecodable_damage(undecodable: Path) -> None:
    from db.errors import DatabaseCorrupt
    from db.rawconnect import preflight_sqlite, quick_check

    with closing(sqlite3.connect(f"file:{undecodable}?mode=ro", uri=True)) as conn:
        problems = quick_check(conn)
        assert problems and all(isinstance(p, str) for p in problems)
        assert conn.text_factory is str  # the lenient decoding was only for quick_check
    with pytest.raises(DatabaseCorrupt, match="corrupt"):
        preflight_sqlite(str(undecodable))


# --- something at the path that is not a file ----------------------------------------------------


FIFO_GUARD_SECONDS = 120  # a guard against the old endless hang only: nothing is timed


def test_a_fifo_as_the_database_is_refused_in_one_line_never_opened(tmp_path: Path) -> None:
    """Opening a FIFO blocks until a writer comes: every command but doctor used to hang for ever."""
    fifo = tmp_path / "site.db"
    os.mkfifo(fifo)
    for args in (["doctor"], ["operators", "list"], ["customers", "search", "a"], ["legacy", "find", "ABC123"],
                 ["db", "upgrade"], ["demo", "seed", "--customers", "3"], ["report"]):
        result = run_cli("--db", f"sqlite:///{fifo}", *args, timeout=FIFO_GUARD_SECONDS)
        assert_one_line(result, "is not a database file", str(fifo), "FIFO", "--db")
    result = run_cli("plans", "sync", env={"CLARITY_DATABASE_URL": f"sqlite:///{fifo}"}, timeout=FIFO_GUARD_SECONDS)
    assert_one_line(result, "is not a database file", str(fifo))
    assert fifo.is_fifo()
    assert not Path(f"{fifo}-wal").exists() and not Path(f"{fifo}-journal").exists()


def test_a_device_as_the_database_is_refused_before_any_connection() -> None:
    from db.engine import make_engine
    from db.errors import DatabaseUnreachable
    from db.rawconnect import connect_raw, schema_at_head

    with pytest.raises(DatabaseUnreachable, match="is not a database file: it is a character device"):
        make_engine("sqlite:////dev/null")
    with pytest.raises(DatabaseUnreachable, match="is not a database file"):
        connect_raw("sqlite:////dev/null", read_only=True)
    assert schema_at_head("sqlite:////dev/null") is False


# --- in-memory SQLite URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_url_is_refused_before_a_write_vanishes(url: str) -> None:
    """These URLs used to be accepted: `operators add` said "Added" and the operator was gone."""
    result = run_cli("--db", url, "operators", "add", "Mem Mgr", "--role", "manager",
                     env={"CLARITY_NEW_PIN": "482915"})
    assert_one_line(result, "in-memory", "give a file path", "--db")
    assert "Added" not in result.stdout
    result = run_cli("operators", "list", env={"CLARITY_DATABASE_URL": url})
    assert_one_line(result, "in-memory", "give a file path")


def test_make_engine_refuses_memory_unless_asked() -> None:
    from sqlalchemy import text

    from db.engine import make_engine
    from db.errors import DatabaseUrlInvalid

    for url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(DatabaseUrlInvalid, match="give a file path"):
            make_engine(url)
    engine = make_engine("sqlite://", allow_memory=True)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


# --- another program's database ----------------------------------------------------------------


def _foreign_sqlite(path: Path, *, alembic: bool = False) -> None:
    """Another program's SQLite file, in the default rollback-journal mode (WAL would change its header)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE places (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, email TEXT)")  # one name like ours
        conn.execute("INSERT INTO places (name) VALUES ('the depot')")
        if alembic:  # another program that uses Alembic too, at a revision we do not know
            conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('3f2a9c1d7e00')")
        conn.commit()


@pytest.mark.parametrize("alembic", [False, True], ids=["plain", "with-its-own-alembic"])
def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path, alembic: bool) -> None:
    path = tmp_path / "inventory.sqlite"
    _foreign_sqlite(path, alembic=alembic)
    before = file_state(path)
    for args in (["db", "upgrade"], ["demo", "seed", "--customers", "3"], ["customers", "search", "a"],
                 ["legacy", "find", "ABC123"], ["doctor"], ["db", "current"]):
        result = run_cli("--db", f"sqlite:///{path}", *args)
        assert_one_line(result, "not a Clarity database", str(path), "places", "--db")
        assert file_state(path) == before, f"{args} changed the file"
    assert not Path(f"{path}-wal").exists()
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert tables == {"places", "customer"} | ({"alembic_version"} if alembic else set())
    # ...while an empty file is a new database, as before.
    empty = tmp_path / "new.db"
    empty.touch()
    assert run_cli("--db", f"sqlite:///{empty}", "db", "upgrade").returncode == 0


def test_the_app_refuses_another_programs_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite"
    _foreign_sqlite(path)
    before = file_state(path)
    code, text = run_app("--db", f"sqlite:///{path}")
    assert_app_one_line(code, text, "not a Clarity database", str(path))
    assert file_state(path) == before


@pytest.mark.postgres
def test_another_programs_postgresql_database_is_refused_and_gets_no_tables(pg_empty_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE widgets (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO widgets (name) VALUES ('sprocket')")
    for args in (["db", "upgrade"], ["demo", "seed", "--customers", "3"], ["customers", "search", "a"], ["doctor"]):
        result = run_cli("--db", pg_empty_url, *args)
        assert_one_line(result, "not a Clarity database", "widgets")
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"widgets"}


# --- bad database URLs -------------------------------------------------------------------------

BAD_URLS = {
    "connection refused": ("postgresql://postgres@127.0.0.1:1/clarity", "Cannot reach the database"),
    "port out of range": ("postgresql://postgres@127.0.0.1:99999/clarity", "not a port number"),
    "port not a number": ("postgresql://postgres@127.0.0.1:abc/clarity", "cannot be read"),
    "mysql": ("mysql://clarity:s3cret@127.0.0.1/clarity", "SQLite and PostgreSQL only"),
    "unknown scheme": ("nosuchdb://host/x", "SQLite and PostgreSQL only"),
    "driver not installed": ("postgresql+asyncpg://postgres@127.0.0.1/clarity", "not installed"),
    "garbage": ("this is not a url", "cannot be read"),
    "folder as the file": ("sqlite:///{tmp}", "is a folder"),
    "file as the folder": ("sqlite:///{tmp}/file.txt/site.db", "is a file, not a folder"),
    "cannot create": ("sqlite:////proc/clarity-cannot-create.db", "/proc/clarity-cannot-create.db"),
    "cannot create the folder": ("sqlite:////proc/clarity-no-such/site.db", "Cannot create the folder"),
}
URL_COMMANDS = [["doctor"], ["legacy", "find", "ABC123"], ["customers", "search", "a"],
                ["demo", "seed", "--customers", "3"], ["report"], ["payments", "status"]]


@pytest.mark.parametrize("case", list(BAD_URLS))
def test_every_bad_url_form_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    url, needle = BAD_URLS[case]
    url = url.format(tmp=tmp_path)
    # Every command for one form in three; the others rotate through the commands (through --db and the env).
    index = list(BAD_URLS).index(case)
    commands = URL_COMMANDS if index % 3 == 0 else [URL_COMMANDS[index % len(URL_COMMANDS)],
                                                    URL_COMMANDS[(index + 3) % len(URL_COMMANDS)]]
    for args in commands:
        line = assert_one_line(run_cli("--db", url, *args), needle)
        assert "s3cret" not in line
    line = assert_one_line(run_cli(*commands[0], env={"CLARITY_DATABASE_URL": url}), needle)
    assert "s3cret" not in line


@pytest.mark.parametrize("url", ["mysql://clarity@127.0.0.1/clarity", "this is not a url", "sqlite:///:memory:"])
def test_the_app_with_a_bad_url_is_one_line_and_exit_2(url: str) -> None:
    code, text = run_app("--db", url)
    assert_app_one_line(code, text, "--db")


# --- a full disk -----------------------------------------------------------------------------


PAGE_LIMIT = """
import sqlite3, sys
from sqlalchemy import event
from sqlalchemy.pool import Pool

@event.listens_for(Pool, "connect")
def _cap(dbapi_connection, _record):
    # SQLite's own limit on the file's size: past it, writes fail with SQLITE_FULL, the error a full disk gives.
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA max_page_count = %d")

from clarity_tui.cli import main
sys.argv[0] = "clarity-tui"
main()
"""


def run_with_page_limit(pages: int, *args: str) -> subprocess.CompletedProcess[str]:
    return forked.run(["-c", PAGE_LIMIT % pages, *args], capture_output=True, text=True,
                      timeout=240, env=dict(os.environ), cwd=ROOT)


def page_count(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("PRAGMA page_count").fetchone()[0]


def _tmpfs_works(tmp_path: Path) -> bool:
    """A private tmpfs in a new mount namespace: root, or an unprivileged user namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c",
                           'mount -t tmpfs -o size=64k tmpfs "$0" && touch "$0/ok"', str(probe)],
                          capture_output=True, timeout=60)
    return done.returncode == 0


def run_on_small_tmpfs(mount: Path, size_bytes: int, setup: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Mount a tmpfs of `size_bytes` on `mount` (private to the command), run `setup` (sh), then the CLI.
    A real interpreter exec'd by the shell: the mount exists only in unshare's namespace, where no fork
    of the test's fork server can be."""
    script = f'mount -t tmpfs -o size={size_bytes} tmpfs "$0" || exit 97\n{setup}\nexec "$@"'
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(mount),
                           sys.executable, "-m", "clarity_tui", *args],
                          capture_output=True, text=True, timeout=240, env=dict(os.environ), cwd=ROOT)


BUSY = "initial_vehicles = 3\ndwell_minutes = 0.03\n[arrivals]\nper_minute = 600\nseed = 5\n"


def test_demo_seed_on_a_full_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.db"
    assert run_cli("--db", f"sqlite:///{path}", "db", "upgrade").returncode == 0
    result = run_with_page_limit(page_count(path) + 2, "--db", f"sqlite:///{path}", "demo", "seed")
    assert_one_line(result, "is full", str(path), "free some space")


def test_simulate_headless_on_a_full_database_is_one_line(tmp_path: Path, seeded: Path) -> None:
    scenario = tmp_path / "busy.toml"
    scenario.write_text(BUSY)
    result = run_with_page_limit(page_count(seeded) + 4, "--db", f"sqlite:///{seeded}", "simulate", "--headless",
                                 "--duration", "120", "--scenario", str(scenario))
    assert_one_line(result, "is full", str(seeded))


def test_a_real_full_disk_for_demo_seed_and_simulate(tmp_path: Path, seeded: Path) -> None:
    """A real tmpfs that fills up. Where this machine allows no mount namespace, the same commands run
    against SQLite's page limit instead (the same SQLITE_FULL error), so the case is never skipped."""
    scenario = tmp_path / "busy.toml"
    scenario.write_text(BUSY)
    mount = tmp_path / "small"
    mount.mkdir()
    if not _tmpfs_works(tmp_path):
        fresh = tmp_path / "fresh.db"
        assert run_cli("--db", f"sqlite:///{fresh}", "db", "upgrade").returncode == 0
        assert_one_line(run_with_page_limit(page_count(fresh) + 2, "--db", f"sqlite:///{fresh}", "demo", "seed"),
                        "is full")
        assert_one_line(run_with_page_limit(page_count(seeded) + 4, "--db", f"sqlite:///{seeded}", "simulate",
                                            "--headless", "--duration", "120", "--scenario", str(scenario)), "is full")
        return
    db = mount / "site.db"
    upgraded = tmp_path / "upgraded.db"
    assert run_cli("--db", f"sqlite:///{upgraded}", "db", "upgrade").returncode == 0
    # Room for the schema and a little more: the demo data does not fit.
    seed = run_on_small_tmpfs(mount, upgraded.stat().st_size + 160 * 1024, f'cp "{upgraded}" "$0/site.db"',
                              "--db", f"sqlite:///{db}", "demo", "seed")
    assert_one_line(seed, "is full", str(db), "free some space")
    # The demo site fits with a little room: the camera's arrivals fill the disk.
    sim = run_on_small_tmpfs(mount, seeded.stat().st_size + 400 * 1024, f'cp "{seeded}" "$0/site.db"',
                             "--db", f"sqlite:///{db}", "simulate", "--headless", "--duration", "120",
                             "--scenario", str(scenario))
    assert_one_line(sim, "is full", str(db))


def test_a_full_disk_under_an_export_is_one_line(seeded: Path) -> None:
    # /dev/full answers every write with ENOSPC: the kernel's own "No space left on device".
    result = run_cli("--db", f"sqlite:///{seeded}", "report", "--csv", "/dev/full")
    assert_one_line(result, "The disk is full", "No space left on device")
