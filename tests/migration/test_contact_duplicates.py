"""The migration's Contact step and a phone or email already on file (issue 14 item 4), on SQLite
with the demo site, through Pilot at 80x24:

- Confirm with an existing customer's phone or email offers that customer with the shared prompt
  (widgets/duplicate_prompt.py: "Use that customer · F5" / "Go back · Esc");
- Use that customer: the legacy member is migrated onto them (their vehicle and the migrated membership go
  there), no second customer is created, and the choice is audited (migration.existing_customer_used);
- Go back: nothing is created, the contact form keeps what was typed, at the shared field;
- the service refuses to migrate onto a customer who already has a current membership.
"""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from textual.widgets import Button, Input, Static

from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.services.migration import MigrationError
from clarity_tui.services.plates import validate_plate
from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt
from db.models import (
    AuditLog,
    Customer,
    LegacyMember,
    Membership,
    MembershipStatus,
    MembershipVehicle,
    Role,
    SalesOrder,
    Vehicle,
)
from tests.helpers.lanes import Legacy
from tests.helpers.migration_ui import card_to_agree, migration_app, to_contact
from tests.helpers.migration import service, session_of
from tests.helpers.ui import at, text_of, wait_until

MANAGER = Actor("Morgan Manager", Role.MANAGER, "lane-1-term")


def _customers(db) -> int:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(func.count()).select_from(Customer)).one()


def _audit(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _existing(db, first: str, last: str, phone: str, email: str) -> int:  # noqa: ANN001
    """A customer already on file (entered at the walk-up form, say), with no membership."""
    return CustomerService(db).create_customer(MANAGER, ContactForm(first, last, phone, email)).id  # type: ignore[return-value]


def _migration_order(db, legacy: Legacy) -> SalesOrder:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(SalesOrder).where(SalesOrder.session_id == legacy.jane_session,
                                               SalesOrder.kind == "migration")).one()


def _prompt_text(app) -> str:  # noqa: ANN001
    return " ".join(str(app.screen.query_one("#duplicate-text", Static).render()).split())


async def test_use_that_customer_migrates_the_legacy_member_onto_them(settings, legacy: Legacy) -> None:  # noqa: ANN001
    """Jane's legacy phone is already Janet Smith's (a walk-up entered her under that name): Use that customer
    migrates Jane onto Janet's record, and no Jane Doe is created."""
    db = legacy.db
    janet = _existing(db, "Janet", "Smith", legacy.jane_phone, "janet.smith@example.com")
    count = _customers(db)
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_contact(pilot, legacy.jane_session)
        screen = app.screen
        await wait_until(pilot, lambda: app.focused is screen.query_one("#contact-email"), "the email field")
        await pilot.press(*"jane.doe@example.com")
        await pilot.press("f5")  # Confirm
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "the duplicate prompt")
        assert "Janet Smith already has this phone number." in _prompt_text(app)
        assert str(app.screen.query_one("#duplicate-use", Button).label) == "Use that customer · F5"
        assert _customers(db) == count  # nothing created while the attendant decides
        await pilot.press("f5")  # Use that customer
        await card_to_agree(pilot)
        await at(pilot, "confirmation")
        assert "membership is migrated" in text_of(app, "#confirm-title")
        await pilot.press("enter")
    assert _customers(db) == count  # one customer: Janet, no second record for Jane
    order = _migration_order(db, legacy)
    with db.read() as s:
        assert order.customer_id == janet
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
        assert (m.customer_id, m.source, m.status) == (janet, "migration", MembershipStatus.ACTIVE)
        assert s.get(LegacyMember, legacy.jane_id).migrated_customer_id == janet
        on_membership = s.exec(select(Vehicle).join(MembershipVehicle, MembershipVehicle.vehicle_id == Vehicle.id)
                               .where(MembershipVehicle.membership_id == m.id)).all()
        assert on_membership and {v.customer_id for v in on_membership} == {janet}
        assert validate_plate(legacy.jane_plate) in {v.plate_normalized for v in on_membership}
        kept = s.get(Customer, janet)
        assert (kept.first_name, kept.last_name, kept.email) == ("Janet", "Smith", "janet.smith@example.com")
    assert session_of(db, legacy.jane_session).customer_id == janet
    [used] = _audit(db, "migration.existing_customer_used")
    assert (used.entity, str(used.entity_id)) == ("sales_order", str(order.id))
    with db.read() as s:
        legacy_id = s.get(LegacyMember, legacy.jane_id).legacy_id
    assert (used.after["legacy_member_id"], used.after["legacy_id"], used.after["customer_id"]) == (
        legacy.jane_id, legacy_id, janet)
    assert _audit(db, "migration.account") == []  # no account was created


async def test_go_back_creates_nothing_and_keeps_what_was_typed(settings, legacy: Legacy) -> None:  # noqa: ANN001
    """The typed email is already Pat Lee's: Go back returns to the email, everything kept; corrected, Confirm
    goes on with a new customer for Jane."""
    db = legacy.db
    pat = _existing(db, "Pat", "Lee", "(512) 555-0177", "jane.doe@example.com")
    count = _customers(db)
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_contact(pilot, legacy.jane_session)
        screen = app.screen
        phone = screen.query_one("#contact-phone", Input).value
        await wait_until(pilot, lambda: app.focused is screen.query_one("#contact-email"), "the email field")
        await pilot.press(*"jane.doe@example.com")
        await pilot.press("f5")  # Confirm
        await wait_until(pilot, lambda: isinstance(app.screen, DuplicateCustomerPrompt), "the duplicate prompt")
        assert "Pat Lee already has this email address." in _prompt_text(app)
        await pilot.press("escape")  # Go back
        await wait_until(pilot, lambda: app.screen is screen and app.focused is screen.query_one("#contact-email"),
                         "back on the contact step, at the email")
        values = {name: screen.query_one(f"#contact-{name}", Input).value
                  for name in ("first_name", "last_name", "phone", "email")}
        assert values == {"first_name": "Jane", "last_name": "Doe", "phone": phone, "email": "jane.doe@example.com"}
        assert screen.query_one("#contact-email", Input).has_class("-invalid")
        assert "Pat Lee already has this email address." in text_of(app, "#contact-message")
        assert _customers(db) == count
        assert _migration_order(db, legacy).customer_id is None
        assert _audit(db, "migration.existing_customer_used") == []
        # Checked with the customer: another address, and the migration goes on with a new customer.
        screen.query_one("#contact-email", Input).value = ""
        await pilot.press(*"jane.d@example.com")
        await pilot.press("f5")
        await at(pilot, "migration-card")
    assert _customers(db) == count + 1
    order = _migration_order(db, legacy)
    with db.read() as s:
        jane = s.get(Customer, order.customer_id)
        assert (jane.first_name, jane.last_name, jane.email) == ("Jane", "Doe", "jane.d@example.com")
    assert order.customer_id != pat


def test_a_current_member_is_not_used_twice(legacy: Legacy) -> None:
    """Using a customer who already has a current membership would bill them twice: refused, nothing changed."""
    db = legacy.db
    with db.read() as s:
        member = s.exec(select(Customer).join(Membership, Membership.customer_id == Customer.id)
                        .where(Membership.status == MembershipStatus.ACTIVE, Customer.phone_e164.is_not(None))  # type: ignore[union-attr]
                        .order_by(Customer.id)).first()
        assert member is not None
        member_id, member_phone = member.id, member.phone_e164
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    form = svc.contact_form(view.id)
    form.phone, form.email = member_phone, "jane.doe@example.com"
    with pytest.raises(DuplicateCustomer) as found:
        svc.confirm_contact(view.id, form)
    assert found.value.duplicate.customer_id == member_id
    with pytest.raises(MigrationError, match="already has a .* membership: migrating onto them would bill them twice"):
        svc.use_existing_customer(view.id, member_id)
    assert svc.order(view.id).customer_id is None
    assert _audit(db, "migration.existing_customer_used") == []
