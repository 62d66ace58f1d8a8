"""`customers search --json` prints its document as one line of JSON: every field of every hit, names with
accents, quotes and control characters intact, on real searches (SQLite and PostgreSQL) and edge values."""

from __future__ import annotations

import json

import pytest

from clarity_tui.cli_customers import run_search, search_json, search_payload
from clarity_tui.services.search import SearchHit, SearchResult
from tests.helpers.customers import Tricky


def round_trips(result: SearchResult) -> bool:
    text = search_json(result)
    return "\n" not in text and json.loads(text) == search_payload(result)


@pytest.mark.both_databases
def test_real_searches_print_their_whole_result(demo_db, tricky: Tricky) -> None:
    # Names with accents and apostrophes, phones, plates, emails, numbers, a broad prefix, no match.
    terms = ["o'brien", "Zoë", "jose nunez", "+44 20 7946 0958", "0142", "AB12 CDE", "FR-123-XY", "MaryAnn@",
             "c100000", "s", "zzzz-no-such-customer"]
    for term in terms:
        assert round_trips(run_search(demo_db, term)), term
    found = json.loads(search_json(run_search(demo_db, "sean o'brien")))["results"]
    assert [r["plates"] for r in found if r["first_name"] == "Seán"] == [["AB12 CDE"]]


def test_edge_values_survive() -> None:
    def hit(**overrides: object) -> SearchHit:
        fields: dict[str, object] = {"customer_id": 7, "customer_number": "C100007", "first_name": "Ann",
                                     "last_name": "Lee", "phone_e164": "+15125550142", "email": "ann@example.com",
                                     "plates": ("ABC123",), "score": 90, "matched": "phone"}
        fields.update(overrides)
        return SearchHit(**fields)  # type: ignore[arg-type]

    hits = [
        hit(),
        hit(customer_id=12345678, phone_e164=None, email=None, plates=()),
        hit(first_name='Zoë "Z" \\ O\'Brien', last_name="Ñúñez\ttab\nline", plates=("AB12 CDE", "FR-123-XY", "Ω1")),
        hit(first_name="", last_name="", score=0, matched="plate"),
        hit(first_name="emoji \U0001f697 \u2028", email="x@\u00e9.fr"),
    ]
    for term, elapsed in [("ann", 1.0), ("", 0.0), ("o'brien \"q\"", 12.3456), ("Zoë", 0.0004), ("x", 1234567.891)]:
        for chosen in (hits, hits[:1], []):
            assert round_trips(SearchResult(term=term, hits=list(chosen), elapsed_ms=elapsed)), (term, len(chosen))
