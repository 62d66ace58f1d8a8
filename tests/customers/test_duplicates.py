"""One person, one customer (issue 14 item 4): a new customer with the phone or email of an existing one is
offered that record ("Sofia Evans already has this phone number. Use that customer / Go back") instead of
becoming a second one. The service refuses (SQLite and PostgreSQL); the record's form asks (Pilot, 80x24)."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from textual.widgets import Input, Static

from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt
from db.models import Customer
from tests.helpers.actors import ATTENDANT, MANAGER
from tests.helpers.ui import make_app, wait_until

SOFIA = ContactForm("Sofia", "Evans", "(512) 555-0142", "Sofia.Evans@Example.com")


def _count(db) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(func.count()).select_from(Customer)).one()


@pytest.fixture
def sofia(demo_db) -> int:  # noqa: ANN001
    return CustomerService(demo_db).create_customer(ATTENDANT, SOFIA).id  # type: ignore[return-value]


@pytest.mark.both_databases
def test_the_same_phone_in_another_format_is_refused_with_the_existing_record(demo_db, sofia: int) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    before = _count(demo_db)
    with pytest.raises(DuplicateCustomer, match=r"^Sofia Evans already has this phone number\.") as found:
        svc.create_customer(ATTENDANT, ContactForm("Sam", "Other", "+1 512-555-0142", "sam@example.com"))
    dup = found.value.duplicate
    assert (dup.customer_id, dup.fields, dup.same_name, dup.reusable) == (sofia, ("phone",), False, False)
    assert _count(demo_db) == before  # nothing created


@pytest.mark.both_databases
def test_the_same_email_in_another_case_is_refused(demo_db, sofia: int) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    with pytest.raises(DuplicateCustomer, match=r"^Sofia Evans already has this email address\.") as found:
        svc.create_customer(ATTENDANT, ContactForm("S", "E", "", "sofia.evans@EXAMPLE.com"))
    assert found.value.duplicate.customer_id == sofia
    with pytest.raises(DuplicateCustomer, match=r"this phone number and email address") as both:
        svc.create_customer(ATTENDANT, SOFIA)
    assert both.value.duplicate.reusable  # the same person with nothing on the record yet


@pytest.mark.both_databases
def test_a_customer_without_phone_or_email_and_an_explicit_duplicate(demo_db, sofia: int) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db)
    svc.create_customer(ATTENDANT, ContactForm("No", "Contact"))
    svc.create_customer(ATTENDANT, ContactForm("No", "Contact"))  # nothing to compare: allowed
    twin = svc.create_customer(MANAGER, ContactForm("Sofia", "Evans Jr", "(512) 555-0142", ""), duplicate_ok=True)
    assert twin.id != sofia


async def test_the_record_offers_the_existing_customer(settings, demo_db, sofia: int) -> None:  # noqa: ANN001
    before = _count(demo_db)
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(CustomerRecordScreen(None))
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen)
                         and bool(app.screen.query("#in-first_name")), "the new record")
        screen = app.screen
        screen.query_one("#in-first_name", Input).value = "Sofie"
        screen.query_one("#in-last_name", Input).value = "Evans"
        screen.query_one("#in-phone", Input).value = "512 555 0142"
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "the duplicate prompt")
        text = " ".join(str(app.screen.query_one("#duplicate-text", Static).render()).split())
        assert "Sofia Evans already has this phone number." in text
        await pilot.press("escape")  # Go back: the form as typed, the phone marked
        await wait_until(pilot, lambda: app.screen is screen, "back on the form")
        assert screen.query_one("#in-first_name", Input).value == "Sofie"
        assert screen.query_one("#in-phone", Input).has_class("-invalid")
        assert "already has this phone number" in str(screen.query_one("#general-error", Static).render())
        assert _count(demo_db) == before
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "asked again")
        await pilot.press("f5")  # Use that customer: her record opens in place
        await wait_until(pilot, lambda: app.screen is screen and screen.record is not None
                         and screen.record.customer.id == sofia, "Sofia's record")
        assert screen.query_one("#in-first_name", Input).value == "Sofia"
    assert _count(demo_db) == before
