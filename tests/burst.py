"""Type-ahead tests (issue 14): keys sent as one burst, as tmux or SSH deliver them, and the database
state they leave, compared with the same keys pressed slowly.

`burst` hands every key to the app's driver at once, the way the terminal driver does when one read
returns a whole packet of keys: nothing waits between keys (Pilot's `press` waits for the app to be
idle after each key, which is exactly what a real burst does not do). `slow` is Pilot's `press`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import SQLModel
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot

from clarity_tui.config import Settings


def text(s: str) -> list[str]:
    """The keys that type `s`."""
    return list(s)


def key_event(key: str) -> events.Key:
    """The Key event the terminal driver makes for `key` (as Textual's own `_press_keys` does)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def burst(pilot: Pilot, keys: list[str]) -> None:
    """Every key read at once: handed to the driver with no wait in between (the test then waits for
    the outcome it expects)."""
    app = pilot.app
    driver = app._driver
    assert driver is not None
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        driver.send_message(event)


async def slow(pilot: Pilot, keys: list[str]) -> None:
    """The same keys one at a time, Pilot waiting for the app after each."""
    for key in keys:
        await pilot.press(key)


# --- a second database of the same kind, seeded the same way ---------------------------------------

@pytest.fixture
def twin_settings(settings: Settings, request: pytest.FixtureRequest, tmp_path) -> Iterator[Settings]:  # noqa: ANN001
    """Settings for a second database of the same backend as `settings` (SQLite file or PostgreSQL)."""
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        yield settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'twin.db'}"})
        return
    from tests.conftest import _admin_execute, _pg_conninfo

    template = request.getfixturevalue("pg_template")
    name = f"clarity_t_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield settings.model_copy(update={"database_url": _pg_conninfo(name)})
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def twin_demo_db(twin_settings: Settings) -> Iterator[Any]:
    """The twin database with the same demo site as `demo_db` (the demo seed is deterministic)."""
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.services.demo import seed_demo

    database = open_database(twin_settings)
    seed_demo(database, customers=40, legacy=20)
    yield database
    database.dispose()


# --- the database state, without what differs between two runs (clock, random gateway ids) ---------

TABLES = ("customer", "vehicle", "vehicle_session", "sales_order", "membership", "membership_vehicle",
          "payment_method", "signature")
_VOLATILE = re.compile(r"(_at|_on_utc|idempotency_key|^gateway_.*|.*_intent_id|svg|strokes|points|"
                       r"terms_hash|device|search_.*|email_lower|phone_rev|holder|held_by|.*token.*)$")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items()
            if not _VOLATILE.match(k) and not isinstance(v, dt.datetime)}


def db_state(db: Any) -> dict[str, Any]:
    """Every row of the tables a lane flow writes, plus the audit trail's (action, entity, id)."""
    tables = SQLModel.metadata.tables
    out: dict[str, Any] = {}
    with db.read() as s:
        for name in TABLES:
            table = tables[name]
            rows = s.execute(sa_select(table).order_by(*table.primary_key.columns)).mappings().all()
            out[name] = [_clean(dict(r)) for r in rows]
        audit = tables["audit_log"]
        out["audit"] = sorted((r.action, r.entity, r.entity_id)
                              for r in s.execute(sa_select(audit.c.action, audit.c.entity, audit.c.entity_id)))
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A short description of where two states differ (for assertion messages)."""
    lines = []
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        if ra == rb:
            continue
        if isinstance(ra, list) and isinstance(rb, list):
            only_a = [r for r in ra if r not in rb][:3]
            only_b = [r for r in rb if r not in ra][:3]
            lines.append(f"{key}: burst-only {only_a} / slow-only {only_b}")
        else:
            lines.append(f"{key}: {ra!r} != {rb!r}")
    return "\n".join(lines)
