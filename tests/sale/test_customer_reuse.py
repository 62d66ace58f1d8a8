"""A new customer is created once (issue 14 item 4): a sale retried after a failed or abandoned step
reuses the customer the first attempt created, and a walk-up with the phone of an existing customer is
offered that customer ("Use that customer / Go back"). SQLite; the form through Pilot."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from textual.widgets import Input, Static

from clarity_tui.payments.errors import PaymentError
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.orders import SaleError
from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt
from db.models import Customer, SalesOrder
from tests.helpers.actors import ATTENDANT
from tests.helpers.lanes import Lanes
from tests.helpers.sale import sale_service
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, wait_until

DANA = ContactForm("Dana", "Reyes", "(512) 555-2368", "dana.reyes@example.com")


def _danas(db) -> list[int]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(Customer.id).where(Customer.first_name == "Dana", Customer.last_name == "Reyes")))


def test_a_sale_retried_after_a_declined_card_and_a_cancel_reuses_the_customer(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.unknown)
    service.choose_plan(view.id, "BASIC")
    first = service.set_new_customer(view.id, DANA)
    try:  # the decline test card: refused when it is saved, or later when it is charged
        service.key_card(view.id, "4000 0000 0000 0002", "12/30", "123")
    except (PaymentError, SaleError):
        pass
    service.cancel(view.id)  # blocked: the attendant starts over
    assert _danas(db) == [first.customer_id]

    retry = service.open_for_session(lanes.unknown)  # the session keeps Dana: the retry starts with her
    assert retry.id != view.id and retry.customer_id == first.customer_id
    assert _danas(db) == [first.customer_id]


def test_a_retry_after_the_link_failed_reuses_the_customer(lanes: Lanes) -> None:
    """The first attempt created the customer, then stopped before linking them (the process was killed
    between the two transactions, or the link was refused): the retry with the same details links that
    customer instead of creating a second Dana."""
    db = lanes.db
    service = sale_service(db)
    view = service.open_for_session(lanes.unknown)
    service.choose_plan(view.id, "BASIC")
    created = CustomerService(db).create_customer(ATTENDANT, DANA)  # what the first attempt left
    linked = service.set_new_customer(view.id, DANA)
    assert linked.customer_id == created.id and _danas(db) == [created.id]


def test_somebody_elses_phone_is_refused_and_they_can_be_linked(lanes: Lanes) -> None:
    db = lanes.db
    service = sale_service(db)
    with db.read() as s:
        ivana = s.get(Customer, lanes.ivana_customer_id)
        name, phone = f"{ivana.first_name} {ivana.last_name}", ivana.phone_e164
    view = service.open_for_session(lanes.unknown)
    service.choose_plan(view.id, "BASIC")
    with db.read() as s:
        count = s.exec(select(func.count()).select_from(Customer)).one()
    with pytest.raises(DuplicateCustomer, match=rf"^{name} already has this phone number\.") as found:
        service.set_new_customer(view.id, ContactForm("Dana", "Reyes", phone, "dana.reyes@example.com"))
    assert found.value.duplicate.customer_id == lanes.ivana_customer_id
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(Customer)).one() == count
        assert s.get(SalesOrder, view.id).customer_id is None
    linked = service.link_customer(view.id, found.value.duplicate.customer_id)  # "Use that customer"
    assert linked.customer_id == lanes.ivana_customer_id


async def test_the_walk_up_form_offers_the_existing_customer(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    with db.read() as s:
        ivana = s.get(Customer, lanes.ivana_customer_id)
        name, email = f"{ivana.first_name} {ivana.last_name}", ivana.email
        count = s.exec(select(func.count()).select_from(Customer)).one()
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.unknown)
        await pilot.press("f2")  # Purchase
        await at(pilot, "plan-select")
        await pilot.press("1")  # Basic
        await at(pilot, "customer-quick")
        screen = app.screen
        for field, value in (("first_name", "Dana"), ("last_name", "Reyes"), ("phone", "(512) 555-2368"),
                             ("email", email)):
            screen.query_one(f"#f-{field}", Input).value = value
        await pilot.press("f5")
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "the duplicate prompt")
        text = " ".join(str(app.screen.query_one("#duplicate-text", Static).render()).split())
        assert f"{name} already has this email address." in text
        await pilot.press("escape")  # Go back: the form as typed
        await wait_until(pilot, lambda: app.screen is screen and app.focused is screen.query_one("#f-email"),
                         "back on the form, at the email")
        assert screen.query_one("#f-first_name", Input).value == "Dana"
        await pilot.press("f5")
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "asked again")
        await pilot.press("f5")  # Use that customer
        await wait_until(pilot, lambda: app.screen.id in ("payment", "family-vehicles"), "the next step")
        await pilot.pause()
    with db.read() as s:
        assert s.exec(select(func.count()).select_from(Customer)).one() == count
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.unknown)).one()
        assert order.customer_id == lanes.ivana_customer_id
