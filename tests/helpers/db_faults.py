"""Damaged SQLite files and the one-line error an operator must get for them (issue 15, item 5)."""

from __future__ import annotations

import random
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, no traceback anywhere, exactly one line on stderr: 'Error: ...' with the needles."""
    context = f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 2, context
    assert "Traceback" not in result.stderr + result.stdout, context
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, context
    assert lines[0].startswith("Error: "), context
    for needle in needles:
        assert needle in lines[0], context
    return lines[0]


def pages_of(path: Path, *, only: set[str] | None = None, keep: frozenset[str] | set[str] = frozenset()) -> list[int]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT name, pageno FROM dbstat").fetchall()
    return sorted({p for name, p in rows if (only is None or name in only) and name not in keep})


def overwrite(path: Path, pages: list[int], *, from_share: float = 0.0, seed: int = 15) -> None:
    """Write random bytes over these pages (from `from_share` of each page to its end)."""
    rng = random.Random(seed)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in pages:
        start, end = (page - 1) * size + int(size * from_share), page * size
        data[start:end] = rng.randbytes(end - start)
    path.write_bytes(bytes(data))


LEGACY_TABLES = {"legacy_member", "legacy_member_plate", "sqlite_autoindex_legacy_member_1",
                 "ix_legacy_member_plate_plate_normalized", "ix_legacy_member_plate_shape",
                 "ix_legacy_member_plate_legacy_member_id", "ix_legacy_member_phone_e164"}


def corrupt(path: Path, how: str) -> None:
    if how == "table pages":  # every table and index page, the schema and alembic_version left readable
        overwrite(path, pages_of(path, keep={"sqlite_schema", "alembic_version", "sqlite_autoindex_alembic_version_1"}))
    elif how == "legacy pages":  # the cell area of the legacy members' pages only: the rest reads fine
        overwrite(path, pages_of(path, only=LEGACY_TABLES), from_share=0.3)
    elif how == "header":  # the first 100 bytes: SQLite no longer recognises the file
        data = bytearray(path.read_bytes())
        data[:100] = random.Random(3).randbytes(100)
        path.write_bytes(bytes(data))
    else:  # pragma: no cover
        raise ValueError(how)
