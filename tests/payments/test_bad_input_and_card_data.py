"""Bad input gets specific messages; card numbers and CVCs never reach the database or the logs."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from clarity_tui.payments import InvalidCard, ManualCard, PromotionInvalid
from clarity_tui.services.promotions import PromotionService, validate_code
from db import migrate

TODAY = dt.date(2026, 5, 15)


@pytest.mark.parametrize(
    ("code", "plan", "fragment", "kind"),
    [
        ("NOPE", "BASIC", "does not exist", "unknown"),
        ("summer25", "BASIC", "expired on", "expired"),
        ("LAUNCH50", "BASIC", "used up", "used_up"),
        ("ULTIMATE10", "BASIC", "not valid for the BASIC plan", "wrong_plan"),
    ],
)
def test_promotion_rejections(demo_db, code, plan, fragment, kind) -> None:
    with demo_db.read() as s, pytest.raises(PromotionInvalid) as info:
        validate_code(s, code, plan)
    assert fragment in str(info.value) and info.value.code == kind


def test_promotion_accepted_and_priced(demo_db) -> None:
    service = PromotionService(demo_db)
    assert service.validate_code(" ultimate10 ", "FAMILY").code == "ULTIMATE10"
    assert service.quote("BASIC", "SAVE20").total_cents == 1599
    assert service.quote("ULTIMATE", "ULTIMATE10").total_cents == 2999
    assert service.quote("FAMILY", None, vehicles=4).total_cents == 5999 + 1500
    assert service.quote("BASIC", "FIRSTMONTH").discount_cents == 1000


@pytest.mark.parametrize(
    ("number", "expiry", "cvc", "kind"),
    [
        ("4242424242424241", "12/30", "123", "luhn"),
        ("4242 4242 4242", "12/30", "123", "number_length"),
        ("4242x42424242424", "12/30", "123", "number_format"),
        ("4242424242424242", "04/26", "123", "expired"),
        ("4242424242424242", "13/30", "123", "expiry_format"),
        ("4242424242424242", "1230x", "123", "expiry_format"),
        ("4242424242424242", "12/30", "12", "cvc"),
        ("378282246310005", "12/30", "123", "cvc"),
    ],
)
def test_manual_card_rejections(number, expiry, cvc, kind) -> None:
    with pytest.raises(InvalidCard) as info:
        ManualCard.parse(number, expiry, cvc, today=TODAY)
    message = str(info.value).lower()
    assert info.value.code == kind and ("re-enter" in message or "another card" in message), message


def test_manual_card_never_shows_number() -> None:
    card = ManualCard.parse("4242-4242-4242-4242", "12/30", "987", today=TODAY)
    assert (card.exp_month, card.exp_year, card.last4, card.brand) == (12, 2030, "4242", "visa")
    assert "424242424242" not in repr(card) and "987" not in repr(card) and "987" not in str(card)


def test_payments_schema_matches_models(db) -> None:
    """Migration 0002 and the payments models agree (other areas have their own drift tests)."""
    mine = ("sim_gateway_object", "sim_gateway_request")
    assert [d for d in migrate.schema_drift(db.engine) if any(t in repr(d) for t in mine)] == []
    from sqlalchemy import inspect

    tables = set(inspect(db.engine).get_table_names())
    assert set(mine) <= tables


def _scan(paths, needles):  # noqa: ANN001, ANN202
    found = []
    for p in paths:
        if p.exists():
            data = p.read_bytes()
            found += [(p.name, n) for n in needles if n.encode() in data]
    return found


@pytest.mark.parametrize("gateway", ["stripe", "simulated"])
def test_no_card_number_or_cvc_in_database_or_logs(gateway, localstripe, sqlite_url, tmp_path, caplog) -> None:
    from pathlib import Path

    from clarity_tui.config import Settings
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.payments.stripe_gateway import StripeGateway
    from clarity_tui.services.billing import BillingService
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from tests.helpers.localstripe import API_KEY
    from tests.helpers.orders import new_order

    number, cvc = "4242424242424242", "731"
    caplog.set_level(logging.DEBUG)  # every logger, the stripe SDK's request bodies included
    db = open_database(Settings(database_url=sqlite_url))
    try:
        seed_demo(db, customers=3, legacy=0)
        gw = (StripeGateway(API_KEY, api_base=localstripe.url, raw_card_data_access=True) if gateway == "stripe"
              else SimulatedGateway(db))
        service = BillingService(db, gw)
        order_id = new_order(db, "BASIC")
        year = dt.date.today().year + 2
        service.add_manual_card(order_id, number, f"11/{year % 100}", cvc)
        assert service.start_sale(order_id).completed
        if gateway == "stripe":
            assert any("Post details" in r.getMessage() for r in caplog.records)  # bodies were logged...
        path = Path(sqlite_url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
        assert _scan(files, [number, "4242 4242", f"cvc={cvc}", f'"{cvc}"']) == []
        logs = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
        assert number not in logs and f"cvc%5D={cvc}" not in logs and f"cvc]={cvc}" not in logs  # ...redacted
    finally:
        db.dispose()
    assert _scan([path, path.with_name(path.name + "-wal")], [number]) == []
