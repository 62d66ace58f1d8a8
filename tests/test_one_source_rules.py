"""One source per rule: the SQL forms of the plate look-alike map and of the open/current state lists are
derived from the Python definitions (db/plate_shape.py, db/states.py), and the migrated databases agree."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, bindparam, literal, select, text
from sqlalchemy.schema import CreateIndex

from clarity_tui.services import board_view
from clarity_tui.services.plates import plate_shape
from db import migrate
from db.engine import make_engine
from db.models import metadata
from db.plate_shape import CONFUSIONS, plate_shape_sql, plate_shape_sql_text
from db.states import CURRENT_MEMBERSHIP_STATES, OPEN_ORDER_STATES, OPEN_SESSION_STATES


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A database migrated by the migrations (not create_all): what a site really runs."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rules.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = make_engine(url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def _samples() -> list[str]:
    rng = random.Random(16)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    plates = ["8OB1234", "BOBI234", "RMK323I", "RMK3231", "GDQSZLIOB", "0000", "AB"]
    plates += ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 10))) for _ in range(40)]
    return [*CONFUSIONS, *alphabet, *plates]


def _index_sql(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = conn.execute(text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": name})
        else:
            found = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name})
        sql = found.scalar_one()
    return " ".join(sql.split())


def _quoted(sql: str) -> list[str]:
    return re.findall(r"'([^']*)'", sql)


def test_the_sql_shape_equals_the_python_shape_for_every_confusion_and_sample_plate(engine: Engine) -> None:
    samples = _samples()
    with engine.connect() as conn:
        for plate in samples:
            orm = conn.execute(select(plate_shape_sql(literal(plate)))).scalar_one()
            raw = conn.execute(text(f"SELECT {plate_shape_sql_text(':plate')}").bindparams(
                bindparam("plate", plate))).scalar_one()
            assert orm == raw == plate_shape(plate), plate
    # Every confusable character folds, and to the character the map says.
    assert all(plate_shape(old) == new for old, new in CONFUSIONS.items())


@pytest.mark.parametrize(("index", "table"), [("ix_vehicle_plate_shape", "vehicle"),
                                              ("ix_legacy_member_plate_shape", "legacy_member_plate")])
def test_the_migrated_shape_index_is_the_expression_the_models_derive(engine: Engine, index: str, table: str) -> None:
    """Migrations 0005 and 0010 wrote the shape out as they were then; the database's index definition equals
    the one the models derive from CONFUSIONS (built here under another name and read back the same way)."""
    derived = next(ix for ix in metadata.tables[table].indexes if ix.name == index)
    probe = "probe_shape_index"
    ddl = str(CreateIndex(derived).compile(dialect=engine.dialect)).replace(index, probe)
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text(ddl))
        if engine.dialect.name == "sqlite":
            probe_sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": probe}).scalar_one()
        else:
            probe_sql = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                     {"n": probe}).scalar_one()
        trans.rollback()
    migrated = _index_sql(engine, index)
    assert " ".join(probe_sql.split()).replace(probe, index) == migrated
    # ...and both fold exactly the map's characters, in the map's order.
    assert _quoted(migrated) == [c for pair in CONFUSIONS.items() for c in pair]


def test_the_partial_indexes_filter_on_the_python_open_states(engine: Engine) -> None:
    order_where = _index_sql(engine, "ux_sales_order_open_session").split(" WHERE ", 1)[1]
    assert sorted(_quoted(order_where)) == sorted(OPEN_ORDER_STATES)
    session_where = _index_sql(engine, "ux_vehicle_session_open_plate").split(" WHERE ", 1)[1]
    assert sorted(_quoted(session_where)) == sorted(OPEN_SESSION_STATES)
    # The models build the same partial indexes from the same tuples.
    for table, name, states in (("sales_order", "ux_sales_order_open_session", OPEN_ORDER_STATES),
                                ("vehicle_session", "ux_vehicle_session_open_plate", OPEN_SESSION_STATES)):
        ix = next(i for i in metadata.tables[table].indexes if i.name == name)
        model_sql = str(CreateIndex(ix).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        assert sorted(_quoted(model_sql.split(" WHERE ", 1)[1])) == sorted(states)


def test_the_boards_status_lists_are_the_python_definitions() -> None:
    assert _quoted(board_view.OPEN_SESSIONS_WHERE) == list(OPEN_SESSION_STATES)
    assert _quoted(board_view.CURRENT_MEMBERSHIPS_WHERE) == list(CURRENT_MEMBERSHIP_STATES)
    assert board_view.CURRENT_MEMBERSHIPS_WHERE in board_view._LOOKALIKES_SQL
    assert plate_shape_sql_text("v.plate_normalized") == board_view.SHAPE_SQL
    assert [board_view.membership_rank(s) for s in CURRENT_MEMBERSHIP_STATES] == [0, 1, 2]


def test_the_services_current_memberships_are_the_boards() -> None:
    """The board reads db.states before the ORM is loaded; the services' rule must say the same."""
    from clarity_tui.services.membership_rules import CURRENT_STATUSES

    assert tuple(CURRENT_STATUSES) == CURRENT_MEMBERSHIP_STATES
