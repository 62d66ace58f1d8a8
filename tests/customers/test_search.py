"""Search correctness on tricky data, on SQLite and PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import pytest

from sqlalchemy import text

from clarity_tui.services.search import SearchService, plate_lookup_variants
from tests.helpers.customers import Tricky

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


def names(db, term: str) -> list[str]:  # noqa: ANN001
    return [h.name for h in SearchService(db).search(term).hits]


def top(db, term: str) -> str:  # noqa: ANN001
    hits = SearchService(db).search(term).hits
    assert hits, f"no result for {term!r}"
    return hits[0].name


def test_names_prefixes_and_full_names(demo_db) -> None:  # noqa: ANN001
    for term in ["zoom", "Zoom", "ZOO", "ivana zoom", "zoom ivana", "Zoom, Ivana", "iva zo"]:
        assert top(demo_db, term) == "Ivana Zoom", term


def test_apostrophes_and_accents(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    for term in ["o'brien", "O'Brien", "obrien", "o brien", "OBRI", "seán o'brien", "sean obrien", "o’brien"]:
        assert "Seán O'Brien" in names(demo_db, term), term


def test_accents_and_hyphens(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    for term in ["zoe quixote", "Zoë", "ZOE", "quixote-laurent", "quixote laurent", "Quixote-L"]:
        assert "Zoë Quixote-Laurent" in names(demo_db, term), term
    # A prefix search: the second half of a hyphenated name is not a prefix.
    assert "Zoë Quixote-Laurent" not in names(demo_db, "laurent")


def test_two_word_first_name_and_hyphenated_last(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    assert top(demo_db, "mary ann smythe-jones") == "Mary Ann Smythe-Jones"
    assert top(demo_db, "smythe jones") == "Mary Ann Smythe-Jones"
    assert top(demo_db, "Ñúñez") == "José Ñúñez"
    assert top(demo_db, "jose nunez") == "José Ñúñez"


def test_international_phone_in_any_format(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    for term in ["+44 20 7946 0958", "020 7946 0958", "7946 0958", "0958", "(20) 7946-0958", "442079460958", "+44.20.7946.0958"]:
        hits = SearchService(demo_db).search(term).hits
        assert "Seán O'Brien" in [h.name for h in hits], term
        if sum(ch.isdigit() for ch in term) >= 10:
            assert hits[0].name == "Seán O'Brien" and hits[0].matched == "phone", term
    assert top(demo_db, "+33 1 42 68 53 00") == "Zoë Quixote-Laurent"
    assert top(demo_db, "512-555-0142") == "Mary Ann Smythe-Jones"


def test_phone_needs_four_digits(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    assert all(h.matched != "phone" for h in SearchService(demo_db).search("958").hits)


def test_plates_with_spaces_or_dashes(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    for term in ["AB12 CDE", "ab12cde", "AB12-CDE", "ab 12 cde", "ab.12.cde"]:
        hits = SearchService(demo_db).search(term).hits
        assert hits and hits[0].name == "Seán O'Brien" and hits[0].matched == "plate", term
        assert "AB12 CDE" in hits[0].plates


def test_plates_fuzzy_like_the_camera(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    # exact, a prefix, a camera confusion (I for 1), one extra character.
    for term in ["FR 123 XY", "fr-123-xy", "FR123X", "FRI23XY", "FR1234XY"]:
        assert "Zoë Quixote-Laurent" in names(demo_db, term), term


def test_plate_lookup_variants_cover_confusions_and_deletions() -> None:
    variants = plate_lookup_variants("8OB1234")
    assert {"8OB1234", "BOB1234", "80B1234", "OB1234", "8OB123"} <= variants


def test_email_prefix_and_exact_case_insensitive(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    hits = SearchService(demo_db).search("MaryAnn@Example.com").hits
    assert hits[0].name == "Mary Ann Smythe-Jones" and hits[0].matched == "email"
    assert "Mary Ann Smythe-Jones" in names(demo_db, "maryann@")


def test_customer_number_exact_ranks_first(demo_db) -> None:  # noqa: ANN001
    hits = SearchService(demo_db).search("c100000").hits
    assert hits[0].customer_number == "C100000" and hits[0].matched == "number"
    prefix = SearchService(demo_db).search("C10001").hits
    assert {h.customer_number for h in prefix} >= {f"C1000{n}" for n in range(10, 20)}


def test_relevance_exact_last_name_before_prefix(demo_db) -> None:  # noqa: ANN001
    from clarity_tui.services.customers import ContactForm, CustomerService
    from tests.helpers.actors import MANAGER

    svc = CustomerService(demo_db)
    svc.create_customer(MANAGER, ContactForm(first_name="Amy", last_name="Zoomer"))
    hits = SearchService(demo_db).search("zoom").hits
    assert [h.name for h in hits[:2]] == ["Ivana Zoom", "Amy Zoomer"]
    assert hits[0].score > hits[1].score


def test_limit_and_empty_and_no_match(demo_db) -> None:  # noqa: ANN001
    svc = SearchService(demo_db)
    assert svc.search("").hits == []
    assert svc.search("   ").hits == []
    assert svc.search("xqzxqz").hits == []
    assert len(svc.search("c1", limit=5).hits) == 5


def test_search_keys_follow_edits(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    from clarity_tui.services.customers import ContactForm, CustomerService
    from tests.helpers.actors import MANAGER

    svc = CustomerService(demo_db)
    cid = tricky.ids["O'Brien"]
    rec = svc.record(cid)
    form = ContactForm.of(rec.customer)
    form.last_name, form.phone = "Byrne", "+353 1 555 0199"
    form.phone = "+353 87 123 4567"
    svc.update_contact(MANAGER, cid, rec.customer.version, form)
    assert "Seán O'Brien" not in names(demo_db, "obrien")
    assert top(demo_db, "byrne") == "Seán Byrne"
    assert top(demo_db, "087 123 4567") == "Seán Byrne"


def test_naive_baseline_finds_the_same_customers(demo_db, tricky: Tricky) -> None:  # noqa: ANN001
    svc = SearchService(demo_db)
    for term in ["zoom", "o'brien", "AB12 CDE"]:
        fast = {h.customer_id for h in svc.search(term).hits}
        naive = {h.customer_id for h in svc.naive_like_search(term).hits}
        assert fast <= naive, term
        assert fast, term


def test_postgres_queries_use_the_collate_c_indexes(pg_url: str) -> None:
    """The range probes must be index scans on PostgreSQL (EXPLAIN, with seq scans discouraged)."""
    from db.engine import Database

    db = Database.from_url(pg_url)
    try:
        svc = SearchService(db)
        with db.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            for term in ("ivana zoom", "ABC-1234", "5125550199", "ivana.zoom@"):
                for probe in svc._criteria(term, 50):  # noqa: SLF001
                    plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {probe.sql}", probe.params))
                    # "Index Cond": the criterion itself drives the index (a full index scan
                    # with a Filter would pass "no Seq Scan" and still read every row).
                    assert "Index Cond" in plan and "Seq Scan" not in plan, (term, plan)
                    if "FROM vehicle" in probe.sql:
                        # Plates: the byte-order plate index, not a walk of the (region, plate) one.
                        assert "ix_vehicle_plate_normalized" in plan, (term, plan)
    finally:
        db.dispose()
