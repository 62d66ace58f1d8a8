"""Database problems, phrased for the person at the terminal: what is wrong and what to do.

`as_problem(exc)` is the one place that recognises a raw failure from anywhere below (SQLAlchemy,
sqlite3, psycopg, the OS) as a known problem with a one-line message naming the fix. The CLI
(clarity_tui.cli: every command) and the app's boot use it, so every path says the same line.
Nothing heavy is imported here: the app's first paint imports this module.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator


class DatabaseProblem(Exception):
    """A database that cannot be used. str() is a one-line message naming the fix."""


class DatabaseUnreachable(DatabaseProblem):
    pass


class DatabaseCorrupt(DatabaseProblem):
    pass


class DatabaseReadOnly(DatabaseProblem):
    pass


class SchemaTooNew(DatabaseProblem):
    pass


class DatabaseUrlInvalid(DatabaseProblem):
    """--db / CLARITY_DATABASE_URL cannot name a database we can use (syntax, scheme, port, driver)."""


class NotAClarityDatabase(DatabaseProblem):
    """The file or database already holds another program's tables: we never add ours to it."""


class DiskFull(DatabaseProblem):
    """The disk (or the database server's disk) is full: the change in progress was not saved."""


# SQLite's primary result codes (https://sqlite.org/rescode.html); sqlite3.Error.sqlite_errorcode
# carries the extended code, whose low byte is the primary one.
SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 8, 10, 11, 13, 14, 26

_location: list[str] = []


def note_location(where: str) -> None:
    """Remember the database this process opened last (a file path, or a URL without its password),
    for messages about errors that do not carry it (a raw sqlite3 error deep in a service)."""
    _location[:] = [where]


def _where(exc: BaseException, where: str | None) -> str | None:
    return getattr(exc, "clarity_where", None) or where or (_location[0] if _location else None)


def _is_file(where: str | None) -> bool:
    return where is not None and "://" not in where


# --- the messages ------------------------------------------------------------------------


def corrupt(path: str | None, detail: str) -> DatabaseCorrupt:
    if "not a database" in detail.lower():
        return DatabaseCorrupt(
            f"The file {path or '(unknown)'} is not an SQLite database, or its header is corrupt ({detail}): nothing "
            "was changed; if it is the site's database restore it from your latest backup, otherwise point --db "
            "(or CLARITY_DATABASE_URL) at the site's database or at a new file."
        )
    name = path or "of this site"
    recover = (f"or recover what is readable with `sqlite3 {path} .recover | sqlite3 {path}.recovered` and point "
               f"--db at {path}.recovered" if path else "or recover it with sqlite3's `.recover` command")
    return DatabaseCorrupt(
        f"The database file {name} is corrupt ({detail}): nothing was changed; restore it from your latest "
        f"backup, {recover}."
    )


def not_clarity(where: str, tables: list[str]) -> NotAClarityDatabase:
    shown = ", ".join(sorted(tables)[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    if _is_file(where):
        return NotAClarityDatabase(
            f"The file {where} is not a Clarity database (it holds other tables: {shown}): nothing was changed; "
            "point --db (or CLARITY_DATABASE_URL) at the site's database, or at a new file to start one."
        )
    return NotAClarityDatabase(
        f"The database at {where} is not a Clarity database (it holds other tables: {shown}): nothing was changed; "
        "point --db (or CLARITY_DATABASE_URL) at the site's database, or at a new empty database."
    )


def not_a_file(path: str, mode: int) -> DatabaseUnreachable:
    """`path` exists but is a FIFO, a device or a socket (st_mode `mode`): never opened."""
    import stat

    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return DatabaseUnreachable(
        f"{path} is not a database file: it is {kind}; nothing was opened; point --db (or CLARITY_DATABASE_URL) "
        "at the site's database file, or at a new file to start one."
    )


def disk_full(where: str | None, detail: str) -> DiskFull:
    if where is not None and not _is_file(where):
        return DiskFull(
            f"The database server at {where} is out of disk space ({detail}): the change in progress was not "
            "saved; ask its administrator to free space, then try again."
        )
    return DiskFull(
        f"The disk holding the database file {where or '(unknown)'} is full ({detail}): the change in progress "
        "was not saved; free some space on that disk, then try again."
    )


def unreachable(where: str | None, detail: str) -> DatabaseUnreachable:
    return DatabaseUnreachable(
        f"Cannot reach the database at {where or '(unknown)'} ({detail}): check that the server is running "
        "and that CLARITY_DATABASE_URL / --db are right."
    )


# --- recognising raw failures ---------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error SQLAlchemy wraps (.orig), a worker's error (.error), causes."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 16:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for attr in ("orig", "error", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def undecodable_text(e: UnicodeDecodeError, limit: int = 120) -> str:
    """The bytes a UnicodeDecodeError could not decode, as one printable line (damaged bytes as '?')."""
    raw = e.object if isinstance(e.object, (bytes, bytearray)) else b""
    text = bytes(raw).decode("utf-8", "replace").strip()
    line = text.split("\n")[0]
    line = "".join(ch if ch.isprintable() and ch != "\ufffd" else "?" for ch in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _undecodable_problem(e: BaseException, where: str | None) -> DatabaseProblem | None:
    """SQLite quotes a damaged file's bytes in its error messages (`malformed database schema (plan) -
    unrecognized token: "<random bytes>"`); Python then fails to decode the message itself and raises
    UnicodeDecodeError instead of sqlite3.DatabaseError. Recognised by the message SQLite wrote."""
    if not isinstance(e, UnicodeDecodeError):
        return None
    text = undecodable_text(e)
    lowered = text.lower()
    if not any(sign in lowered for sign in ("malformed", "not a database", "database disk image", "corrupt")):
        return None
    where = _where(e, where)
    return corrupt(where if _is_file(where) else None, text)


def _sqlite_problem(e: BaseException, where: str | None) -> DatabaseProblem | None:
    import sqlite3

    if not isinstance(e, sqlite3.Error):
        return _undecodable_problem(e, where)
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    text = _first_line(e)
    lowered = text.lower()
    where = _where(e, where)
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in lowered or "not a database" in lowered:
        return corrupt(where if _is_file(where) else None, text)
    if code == SQLITE_FULL or "database or disk is full" in lowered:
        return disk_full(where if _is_file(where) else None, text)
    if code == SQLITE_IOERR or "disk i/o error" in lowered:
        return DatabaseUnreachable(
            f"Reading or writing the database file {where or '(unknown)'} failed ({text}): check that disk and its "
            "free space, then try again."
        )
    if code == SQLITE_READONLY or "readonly" in lowered or "read-only" in lowered:
        return DatabaseReadOnly(
            f"The database file {where or '(unknown)'} is read-only ({text}): give this user write access, or point "
            "CLARITY_DATABASE_URL at a writable file."
        )
    if code == SQLITE_CANTOPEN or "unable to open" in lowered:
        return DatabaseUnreachable(
            f"Cannot open the database file {where or '(unknown)'} ({text}): check the path and its folder's permissions."
        )
    return None


# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_DISK_FULL = "53100"
_PG_UNREACHABLE_CLASSES = ("08", "57P01", "57P02", "57P03", "3D000", "28000", "28P01")


def _pg_problem(e: BaseException, where: str | None) -> DatabaseProblem | None:
    if not type(e).__module__.startswith("psycopg"):
        return None
    import psycopg

    if not isinstance(e, psycopg.Error):
        return None
    sqlstate = getattr(e, "sqlstate", None)
    where = _where(e, where)
    if sqlstate == _PG_DISK_FULL:
        return disk_full(where, _first_line(e))
    if isinstance(e, psycopg.OperationalError) and (sqlstate is None or sqlstate.startswith(_PG_UNREACHABLE_CLASSES)):
        return unreachable(where, _first_line(e))
    return None


def _os_problem(e: BaseException) -> DatabaseProblem | None:
    if not isinstance(e, OSError) or e.errno is None:
        return None
    what = f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"The disk is full ({what}): what was being written is incomplete; free some space on "
                        "that disk, then try again.")
    if e.errno == errno.EROFS:
        return DatabaseReadOnly(f"The disk is mounted read-only ({what}): write somewhere else, or ask for it to be "
                                "mounted read-write.")
    if e.errno == errno.EIO:
        return DatabaseUnreachable(f"The disk failed to read or write ({what}): check that disk, then try again.")
    return None


def as_problem(exc: BaseException, where: str | None = None) -> DatabaseProblem | None:
    """The known problem behind `exc` (anywhere in its chain), or None for anything else (a bug:
    let it show). `where`: the database (file path, or URL without password) when the caller knows it."""
    for e in _chain(exc):
        if isinstance(e, DatabaseProblem):
            return e
        problem = _sqlite_problem(e, where) or _pg_problem(e, where) or _os_problem(e)
        if problem is not None:
            return problem
    return None
