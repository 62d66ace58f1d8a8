"""The bulk loader behind `clarity-tui demo seed --customers N` (N > 5000), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import func, select

from clarity_tui.seeding.bulk import BulkSeedResult, bulk_seed
from clarity_tui.services.identity import customer_search_keys, normalize_email, normalize_phone
from clarity_tui.services.plates import normalize_plate
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    MembershipVehicle,
    PaymentMethod,
    Vehicle,
    utcnow,
)

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

N = 3000


def _count(db, model) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def _indexes(db) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every secondary index with its definition: the loader drops them and must put them all back."""
    with db.read() as s:
        if db.is_sqlite:
            rows = s.execute(text("SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"))
        else:
            rows = s.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
        return {(r[0], r[1]) for r in rows}


def _foreign_keys(db) -> set[tuple[str, str]]:  # noqa: ANN001
    if db.is_sqlite:
        return set()
    with db.read() as s:
        rows = s.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"))
        return {(r[0], r[1]) for r in rows}


def _orphans(db) -> dict[str, int]:  # noqa: ANN001
    """Child rows whose parent does not exist (the loader inserts with checks deferred/off)."""
    checks = {
        "vehicle": "SELECT count(*) FROM vehicle v LEFT JOIN customer c ON c.id = v.customer_id "
                   "WHERE v.customer_id IS NOT NULL AND c.id IS NULL",
        "membership": "SELECT count(*) FROM membership m LEFT JOIN customer c ON c.id = m.customer_id "
                      "LEFT JOIN plan p ON p.id = m.plan_id WHERE c.id IS NULL OR p.id IS NULL",
        "membership_vehicle": "SELECT count(*) FROM membership_vehicle mv LEFT JOIN membership m ON m.id = mv.membership_id "
                              "LEFT JOIN vehicle v ON v.id = mv.vehicle_id WHERE m.id IS NULL OR v.id IS NULL",
        "payment_method": "SELECT count(*) FROM payment_method pm LEFT JOIN customer c ON c.id = pm.customer_id WHERE c.id IS NULL",
        "legacy_member_plate": "SELECT count(*) FROM legacy_member_plate p LEFT JOIN legacy_member l "
                               "ON l.id = p.legacy_member_id WHERE l.id IS NULL",
    }
    with db.read() as s:
        out = {name: s.execute(text(sql)).scalar_one() for name, sql in checks.items()}
        if db.is_sqlite:
            out["pragma foreign_key_check"] = len(s.execute(text("PRAGMA foreign_key_check")).all())
        return out


def test_bulk_seed_counts_keys_and_integrity(db) -> None:  # noqa: ANN001
    indexes_before, fkeys_before = _indexes(db), _foreign_keys(db)
    result = bulk_seed(db, customers=N, legacy=150)

    assert isinstance(result, BulkSeedResult)
    assert result.customers == N and result.legacy == 150
    assert _count(db, Customer) == N
    assert _count(db, Vehicle) == result.vehicles
    assert _count(db, Membership) == result.memberships
    assert _count(db, MembershipVehicle) == result.membership_vehicles
    assert _count(db, PaymentMethod) == result.payment_methods
    assert _count(db, LegacyMember) == _count(db, LegacyMemberPlate) == 150
    # 1-2 vehicles each, most customers with a card, a majority with a membership.
    assert N < result.vehicles <= 2 * N
    assert 0.4 * N < result.memberships < 0.8 * N
    assert 0.6 * N < result.payment_methods < 0.9 * N

    # Indexes and foreign keys the loader dropped for speed are all back, unchanged.
    assert _indexes(db) == indexes_before
    assert _foreign_keys(db) == fkeys_before
    assert all(n == 0 for n in _orphans(db).values()), _orphans(db)

    with db.read() as s:
        customers = s.exec(select(Customer)).all()
        vehicles = s.exec(select(Vehicle)).all()
        memberships = s.exec(select(Membership)).all()
        cards = s.exec(select(PaymentMethod)).all()
        legacy_plates = s.exec(select(LegacyMemberPlate.plate_normalized)).all()

    # Search keys are exactly the customers service's.
    for c in customers:
        expected = customer_search_keys(c.first_name, c.last_name, c.email, c.phone_e164)
        assert {k: getattr(c, k) for k in expected} == expected, c
        assert c.version == 1
        assert c.created_at.tzinfo is not None and c.created_at <= utcnow()
    assert len({c.customer_number for c in customers}) == N

    # Realistic people: valid E.164 phones (a few foreign), valid emails, varied names.
    phones = [c.phone_e164 for c in customers if c.phone_e164]
    assert len(phones) > 0.9 * N
    assert all(normalize_phone(p) == p for p in phones)
    assert any(not p.startswith("+1") for p in phones)
    emails = [c.email for c in customers if c.email]
    assert all(normalize_email(e).lower() == e.lower() for e in emails[:500])
    last_names = Counter(c.last_name for c in customers)
    assert len(last_names) > 400
    assert any("'" in n for n in last_names) and any("-" in n for n in last_names)
    assert any(c.search_first != c.first_name.lower() for c in customers)  # accents folded
    assert last_names.most_common(1)[0][1] < 0.03 * N  # no name dominates

    # Plates: unique per region and normalised like the plates service does.
    keys = [v.plate_normalized for v in vehicles]  # unique even across regions
    assert len(set(keys)) == len(keys)
    assert all(v.plate_normalized == normalize_plate(v.plate) for v in vehicles)
    assert not set(legacy_plates) & {v.plate_normalized for v in vehicles}
    assert Counter(v.customer_id for v in vehicles).most_common(1)[0][1] <= 2

    statuses = Counter(m.status for m in memberships)
    assert {"active", "past_due", "paused", "cancelled"} <= set(statuses)
    assert statuses["active"] > N * 0.3
    assert all(isinstance(m.started_on, dt.date) for m in memberships)

    # Cards are gateway tokens only.
    assert all(pm.gateway_token.startswith("pm_") and len(pm.last4) == 4 and pm.last4.isdigit() for pm in cards)


def test_bulk_seed_appends_to_the_demo_site_and_orm_inserts_still_work(demo_db) -> None:  # noqa: ANN001
    db = demo_db
    before = {m: _count(db, m) for m in (Customer, Vehicle, Membership, PaymentMethod)}
    first = bulk_seed(db, customers=N)
    second = bulk_seed(db, customers=500)
    assert _count(db, Customer) == before[Customer] + N + 500
    assert _count(db, Vehicle) == before[Vehicle] + first.vehicles + second.vehicles
    assert second.first_customer_id > first.last_customer_id
    assert all(n == 0 for n in _orphans(db).values()), _orphans(db)

    # The ORM (and on PostgreSQL the id sequences) carry on after the bulk rows.
    with db.write() as s:
        c = Customer(customer_number="C-AFTER-BULK", first_name="Ana", last_name="After",
                     **customer_search_keys("Ana", "After", None, None))
        s.add(c)
        s.flush()
        v = Vehicle(customer_id=c.id, plate="AFT 001", plate_region="US-TX", plate_normalized="AFT001")
        m = Membership(customer_id=c.id, plan_id=1, started_on=dt.date.today())
        pm = PaymentMethod(customer_id=c.id, gateway_token="pm_after", brand="Visa", last4="4242", exp_month=1, exp_year=2030)
        s.add_all([v, m, pm])
        s.flush()
        s.add(MembershipVehicle(membership_id=m.id, vehicle_id=v.id))
    assert c.id > second.last_customer_id
    with db.read() as s:
        assert s.exec(select(Customer).where(Customer.customer_number == "C-AFTER-BULK")).one().id == c.id


def test_cli_demo_seed_uses_the_bulk_loader(sqlite_url: str, tmp_path) -> None:  # noqa: ANN001
    from clarity_tui.cli import cli

    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("")
    result = CliRunner().invoke(cli, ["demo", "seed", "--customers", "6000", "--db", sqlite_url],
                                env={"CLARITY_CONFIG": str(settings_file)})
    assert result.exit_code == 0, result.output
    assert "bulk data: 6000 customers" in result.output
    assert "took" in result.output

    from db.engine import Database

    db = Database.from_url(sqlite_url)
    try:
        assert _count(db, Customer) == 6000
        assert all(n == 0 for n in _orphans(db).values())
    finally:
        db.dispose()


def test_plates_already_in_the_database_are_never_reused() -> None:
    from clarity_tui.seeding.bulk_rows import RowGenerator as _Generator

    plans = {"BASIC": (1, 1)}
    fresh = _Generator(plans, seed=1, ts_suffix="", existing_plates=set(), plate_counter=0)
    first_three = [fresh._next_plate("US-TX")[1] for _ in range(3)]  # noqa: SLF001
    # The same sequence, with the 1st and 3rd plates already taken (by the demo site, say).
    taken = {first_three[0], first_three[2]}
    gen = _Generator(plans, seed=1, ts_suffix="", existing_plates=taken, plate_counter=0)
    got = [gen._next_plate("US-TX")[1] for _ in range(3)]  # noqa: SLF001
    assert got[0] == first_three[1]
    assert not set(got) & taken and len(set(got)) == 3
