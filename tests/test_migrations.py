"""Alembic: from an empty database, step by step through every revision, and models == migrations."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db import migrate
from db.engine import make_engine
from db.errors import SchemaTooNew
from db.models import metadata

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_empty_url")


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_single_head_and_linear_history() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    revisions = _revisions_oldest_first()
    assert revisions[0] == "0001"
    assert migrate.head_revision() == revisions[-1]
    # Start-up compares the database with this constant instead of importing Alembic.
    from db.schema_head import HEAD_REVISION

    assert HEAD_REVISION == revisions[-1]


def test_upgrade_from_empty_creates_every_table_and_matches_the_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert migrate.schema_drift(engine) == []
    # Upgrading again is a no-op (the app calls it on every start).
    migrate.upgrade(engine)
    engine.dispose()


def test_each_revision_upgrades_from_the_previous_head_and_downgrades(empty_url: str) -> None:
    engine = make_engine(empty_url)
    revisions = _revisions_oldest_first()
    for rev in revisions:
        migrate.upgrade(engine, rev)
        assert migrate.current_revision(engine) == rev
    for previous in reversed([None, *revisions[:-1]]):
        migrate.downgrade(engine, previous or "base")
        assert migrate.current_revision(engine) == previous
    # ...and back up to head from empty once more: downgrades left nothing behind.
    migrate.upgrade(engine)
    assert migrate.schema_drift(engine) == []
    engine.dispose()


def test_0011_from_the_previous_head_ties_benefits_to_memberships_and_keeps_the_old_rows(empty_url: str) -> None:
    """0010 -> 0011: account_benefit gains a nullable membership_id (a foreign key, indexed); the rows
    already there stay as they were, with no membership (an account benefit). Down again keeps them too."""
    from sqlalchemy import insert

    from db.models import AccountBenefit, Customer

    engine = make_engine(empty_url)
    migrate.upgrade(engine, "0010")
    assert "membership_id" not in {c["name"] for c in inspect(engine).get_columns("account_benefit")}
    with engine.begin() as conn:
        cid = conn.execute(insert(Customer.__table__).values(customer_number="C0010", first_name="Old", last_name="Row")
                           ).inserted_primary_key[0]
        old = [conn.execute(insert(AccountBenefit.__table__).values(customer_id=cid, kind=kind, quantity=3, remaining=left)
                            ).inserted_primary_key[0] for kind, left in (("Free wash", 2), ("Vacuum token", 3))]
    migrate.upgrade(engine, "0011")
    assert migrate.current_revision(engine) == "0011"
    found = inspect(engine)
    column = {c["name"]: c for c in found.get_columns("account_benefit")}["membership_id"]
    assert column["nullable"] is True
    assert [(fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
            for fk in found.get_foreign_keys("account_benefit") if fk["constrained_columns"] == ["membership_id"]] \
        == [(["membership_id"], "membership", ["id"])]
    assert {"name": "ix_account_benefit_membership_id", "column_names": ["membership_id"]} in [
        {"name": i["name"], "column_names": i["column_names"]} for i in found.get_indexes("account_benefit")]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, customer_id, membership_id, kind, remaining FROM account_benefit ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(old[0], cid, None, "Free wash", 2), (old[1], cid, None, "Vacuum token", 3)]
    migrate.downgrade(engine, "0010")
    assert "membership_id" not in {c["name"] for c in inspect(engine).get_columns("account_benefit")}
    with engine.connect() as conn:
        assert list(conn.execute(text("SELECT id FROM account_benefit ORDER BY id")).scalars()) == old
    engine.dispose()


def test_0012_from_the_previous_head_gives_old_plans_once_a_day_and_keeps_orders_and_lanes(empty_url: str) -> None:
    """0011 -> 0012 (issue 18): plans already sold get our terms' limit (one wash a day), orders keep no
    upsell credit, lanes are not on auto; the new tables are empty. Down again keeps the old rows."""
    engine = make_engine(empty_url)
    migrate.upgrade(engine, "0011")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:  # raw SQL: the models already carry 0012's columns
        conn.execute(text("INSERT INTO plan (code, name, tier, price_cents, interval, active, max_vehicles, "
                          "extra_vehicle_price_cents) VALUES ('GOLD', 'Gold', 2, 2999, 'month', TRUE, 1, 0)"))
        plan = conn.execute(text("SELECT id FROM plan")).scalar_one()
        conn.execute(text("INSERT INTO site (code, name, phone_region, created_at) VALUES ('S1', 'Site', 'US', :n)"),
                     {"n": now})
        conn.execute(text("INSERT INTO lane (site_id, name, kind, position, active) "
                          "SELECT id, 'Lane 1', 'lane', 1, TRUE FROM site"))
        conn.execute(text(
            "INSERT INTO sales_order (idempotency_key, kind, state, subtotal_cents, discount_cents, due_today_cents, "
            "card_present, refunded_cents, tax_cents, created_at, updated_at, version) "
            "VALUES ('k-old', 'sale', 'completed', 2999, 0, 2999, FALSE, 0, 0, :n, :n, 1)"), {"n": now})
        # Rows that point at plan and sales_order: a migration that rebuilt those tables on SQLite would fail.
        conn.execute(text("INSERT INTO customer (customer_number, search_first, search_last, first_name, last_name, created_at, updated_at, "
                          "version) VALUES ('C1', '', '', 'Old', 'Member', :n, :n, 1)"), {"n": now})
        conn.execute(text("INSERT INTO membership (customer_id, plan_id, status, source, started_on, "
                          "cancel_at_period_end, pending_sync, created_at, updated_at, version) "
                          "SELECT c.id, p.id, 'active', 'sale', :d, FALSE, FALSE, :n, :n, 1 FROM customer c, plan p"),
                     {"n": now, "d": now.date()})
        conn.execute(text("INSERT INTO outbox (order_id, operation, idempotency_key, status, attempts, created_at, "
                          "updated_at, key_poisoned) SELECT id, 'payment.charge', 'k-old:charge', 'done', 1, :n, :n, "
                          "FALSE FROM sales_order"), {"n": now})
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0012"
    with engine.connect() as conn:
        assert tuple(conn.execute(text("SELECT visit_limit, visit_period FROM plan WHERE id = :p"), {"p": plan}).one()) \
            == (1, "day")
        assert tuple(conn.execute(text("SELECT credit_order_id, credit_cents FROM sales_order")).one()) == (None, 0)
        assert not conn.execute(text("SELECT auto_dispatch FROM lane")).scalar_one()
        for table in ("wash_item", "plan_wash_item", "order_line", "receipt", "wash", "visit_refusal", "commission",
                      "commission_rate"):
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0
    assert migrate.schema_drift(engine) == []
    migrate.downgrade(engine, "0011")
    assert "visit_limit" not in {c["name"] for c in inspect(engine).get_columns("plan")}
    assert "wash" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT code FROM plan")).scalar_one() == "GOLD"
        assert conn.execute(text("SELECT idempotency_key FROM sales_order")).scalar_one() == "k-old"
        assert conn.execute(text("SELECT COUNT(*) FROM membership")).scalar_one() == 1
        assert conn.execute(text("SELECT COUNT(*) FROM outbox")).scalar_one() == 1
    engine.dispose()


def test_a_schema_newer_than_the_code_is_refused(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNew, match="newer than this version of clarity-tui"):
        migrate.upgrade(engine)
    engine.dispose()


def test_postgres_change_feed_triggers_exist(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        triggers = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'clarity_notify_%'")).scalars())
    engine.dispose()
    assert "clarity_notify_vehicle_session" in triggers
    assert "clarity_notify_customer" in triggers


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()
