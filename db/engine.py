"""Engine factory. SQLite (WAL, foreign keys, busy timeout) by default; PostgreSQL via URL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from db.errors import DatabaseReadOnly, DatabaseUnreachable, DatabaseUrlInvalid, note_location

SQLITE_BUSY_TIMEOUT_MS = 10_000
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_EXAMPLES = "sqlite:////path/to/site.db or postgresql://user@host:5432/dbname"


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url_or_engine: str | Engine) -> bool:
    name = url_or_engine.dialect.name if isinstance(url_or_engine, Engine) else make_url(
        normalise_url(url_or_engine)
    ).get_backend_name()
    return name == "sqlite"


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _on_sqlite_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL + NORMAL is durable across application crashes (only an OS crash can
    # lose the last transaction), and much faster for a kiosk.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn) -> None:
    # Write transactions take the write lock at BEGIN (sqlite_begin="IMMEDIATE"),
    # so two terminals never fail upgrading a read lock: busy_timeout queues
    # them instead. Reads stay DEFERRED and never block writers under WAL.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def shown_url(url: str) -> str:
    """The URL as typed, with any password blanked (for messages)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def check_url(url: str) -> URL:
    """Parse a database URL; DatabaseUrlInvalid (one line naming the fix) for anything we cannot use."""
    where = "--db (or CLARITY_DATABASE_URL)"
    try:
        parsed = make_url(normalise_url(url))
        port = parsed.port
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUrlInvalid(
            f"The database URL {shown_url(url)!r} cannot be read ({str(exc).splitlines()[0]}): write {URL_EXAMPLES} "
            f"in {where}."
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseUrlInvalid(
            f"The database URL {shown_url(url)!r} is for {backend!r}: clarity-tui works with SQLite and PostgreSQL "
            f"only; write {URL_EXAMPLES} in {where}."
        )
    if port is not None and not 1 <= port <= 65535:
        raise DatabaseUrlInvalid(
            f"The database URL {shown_url(url)!r} has port {port}, which is not a port number (1-65535): "
            f"fix {where} (PostgreSQL listens on 5432 by default)."
        )
    return parsed


def _location(parsed: URL) -> str:
    if parsed.get_backend_name() == "sqlite":
        return str(Path(parsed.database).resolve()) if parsed.database and parsed.database != ":memory:" else ":memory:"
    return parsed.render_as_string(hide_password=True)


def _create_engine(url: str, parsed: URL, **kw: Any) -> Engine:
    try:
        return create_engine(url, **kw)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseUrlInvalid(
            f"The database driver for {parsed.drivername!r} is not installed ({exc}): write {URL_EXAMPLES} "
            "(SQLite and psycopg 3 come with clarity-tui) in --db (or CLARITY_DATABASE_URL)."
        ) from None
    except ArgumentError as exc:
        raise DatabaseUrlInvalid(
            f"The database URL {shown_url(url)!r} cannot be used ({str(exc).splitlines()[0]}): write {URL_EXAMPLES}."
        ) from None


def _annotate_errors(engine: Engine, where: str) -> None:
    """Every driver error from this engine carries the database it came from (db.errors.as_problem
    names the file in its message, wherever the error surfaces)."""

    @event.listens_for(engine, "handle_error")
    def _where(context) -> None:
        for exc in (context.original_exception, context.sqlalchemy_exception):
            try:
                exc.clarity_where = where
            except AttributeError:
                pass


def _sqlite_location_ready(path: Path, create_dirs: bool) -> None:
    if path.is_dir():
        raise DatabaseUnreachable(
            f"{path} is a folder, not a database file: point --db (or CLARITY_DATABASE_URL) at a file, "
            f"e.g. sqlite:///{path / 'clarity.db'}."
        )
    from db.rawconnect import refuse_non_file

    refuse_non_file(str(path))  # a FIFO (or a device) would block the first connection for ever
    if path.parent.exists() and not path.parent.is_dir():
        raise DatabaseUnreachable(
            f"{path.parent} is a file, not a folder: point --db (or CLARITY_DATABASE_URL) at a file in a folder."
        )
    if create_dirs:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnreachable(
                f"Cannot create the folder {path.parent} for the database file ({exc.strerror}): choose another "
                "--db path (or CLARITY_DATABASE_URL), or create that folder."
            ) from None
    if not path.parent.is_dir():
        raise DatabaseUnreachable(
            f"The folder {path.parent} does not exist: create it or choose another --db path."
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise DatabaseReadOnly(
            f"The database file {path} is read-only: give this user write access "
            f"(chmod u+w {path}) or point CLARITY_DATABASE_URL at a writable file."
        )
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise DatabaseReadOnly(
            f"Cannot create the database file {path}: this user may not write in {path.parent}; give it write "
            "access there, or choose another --db path (or CLARITY_DATABASE_URL)."
        )


def make_engine(url: str, *, echo: bool = False, create_dirs: bool = True, check: bool = True,
                allow_memory: bool = False) -> Engine:
    """Build an engine for `url`. Raises DatabaseProblem subclasses with a fix in the message.

    SQLite: before any connection (the first one switches the file to WAL, which writes its header),
    `check` refuses a damaged file or another program's database (rawconnect.preflight_sqlite).
    An in-memory SQLite URL (sqlite://, sqlite:///, sqlite:///:memory:) is refused: everything written
    to it would vanish when the command ends. `allow_memory=True` is for code that means it."""
    parsed = check_url(url)
    if not allow_memory and parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise DatabaseUrlInvalid(
            f"The database URL {shown_url(url)!r} names an in-memory SQLite database, whose data would vanish "
            f"when the command ends: give a file path instead, e.g. sqlite:////path/to/site.db, in --db (or "
            "CLARITY_DATABASE_URL)."
        )
    url = normalise_url(url)
    where = _location(parsed)
    note_location(where)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            _sqlite_location_ready(path, create_dirs)
            if check:
                from db.rawconnect import preflight_sqlite

                preflight_sqlite(str(path))
        engine = _create_engine(
            url, parsed,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _annotate_errors(engine, where)
        event.listen(engine, "connect", _on_sqlite_connect)
        # pysqlite's own transaction handling would defer BEGIN; take it over.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = _create_engine(
        url, parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5},
    )
    _annotate_errors(engine, where)
    return engine


class Database:
    """The engine plus read and write unit-of-work helpers; injected into services."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=False)
        self.is_sqlite = engine.dialect.name == "sqlite"
        write_bind = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._read = sessionmaker(engine, class_=Session, expire_on_commit=False)
        self._write = sessionmaker(write_bind, class_=Session, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any exception."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    @classmethod
    def from_url(cls, url: str, **kw) -> Database:
        return cls(make_engine(url, **kw))
