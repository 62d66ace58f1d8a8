"""The right customer, legacy side (issue 14 item 4), on SQLite with the demo site:

- Purchase on a LEGACY bubble offers Migrate first (Migrate / Sell new anyway / Back);
- the legacy status and last billing are shown on the match screen and by `legacy find`;
- a cancelled or terminated legacy member needs a manager's PIN and a reason, enforced by the service,
  the audit row naming the manager and the reason;
- a migration abandoned after Confirm (a declined card, a refusal) leaves a customer that the retry
  reuses: one customer, not two.
"""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from clarity_tui.services.actor import Actor
from clarity_tui.services.migration import InactiveLegacyMember, MigrationError
from clarity_tui.services.permissions import PermissionDenied
from db.models import AuditLog, Customer, LegacyMember, Operator, Role, SalesOrder
from tests.helpers.lanes import Legacy
from tests.helpers.migration import service
from tests.helpers.migration_ui import migration_app
from tests.helpers.cards import card
from tests.helpers.sale_ui import Keys, open_session
from tests.helpers.ui import at, devices_ready, text_of, wait_until
from tests.helpers.signin import PINS
from tests.helpers.cli import run_cli


def _actor(db, name: str) -> Actor:
    with db.read() as s:
        op = s.exec(select(Operator).where(Operator.name == name)).one()
    return Actor(op.name, Role(op.role), "lane-1-term", op.id)


def _cancel_jane(db, legacy: Legacy, status: str = "cancelled") -> None:
    with db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.status = status
        jane.raw = {**(jane.raw or {}), "Last Recharge": "10/03/2026"}
        s.add(jane)


def _orders(db) -> list[SalesOrder]:
    with db.read() as s:
        return list(s.exec(select(SalesOrder)))


def _audit(db, action: str) -> list[AuditLog]:
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


# --- the service -----------------------------------------------------------------------------------------


def test_status_and_last_billing_are_on_every_candidate(legacy: Legacy) -> None:
    db = legacy.db
    svc = service(db)
    [bo] = [c for c in svc.candidates_for_session(legacy.bo_session) if c.id == legacy.bo_id]
    assert bo.standing == "status active · last billed not in the export"
    _cancel_jane(db, legacy)
    jane = svc.candidates_for_session(legacy.jane_session)[0]
    assert jane.id == legacy.jane_id
    assert jane.standing == "status CANCELLED · last billed Oct 03, 2026"


@pytest.mark.parametrize("status", ["cancelled", "terminated"])
def test_a_cancelled_or_terminated_member_needs_a_manager_and_a_reason(legacy: Legacy, status: str) -> None:
    db = legacy.db
    _cancel_jane(db, legacy, status)
    svc = service(db)
    with pytest.raises(InactiveLegacyMember, match=rf"Jane Doe's legacy membership is {status}, last billed "
                                                   r"Oct 03, 2026: migrating them needs a manager's approval"):
        svc.begin(legacy.jane_session, legacy.jane_id)
    # An attendant cannot approve it, nor a manager without a reason, nor a manager's name without their row.
    with pytest.raises(PermissionDenied):
        svc.begin(legacy.jane_session, legacy.jane_id, _actor(db, "Alex Attendant"), "came back")
    with pytest.raises(PermissionDenied):
        svc.begin(legacy.jane_session, legacy.jane_id, Actor("Fake Manager", Role.MANAGER, "lane-1-term", None),
                  "came back")
    with pytest.raises(MigrationError, match="Say why"):
        svc.begin(legacy.jane_session, legacy.jane_id, _actor(db, "Morgan Manager"), "   ")
    assert _orders(db) == []  # every refusal left nothing behind
    view = svc.begin(legacy.jane_session, legacy.jane_id, _actor(db, "Morgan Manager"), "Rejoined  at the lane")
    assert (view.kind, view.legacy_member_id) == ("migration", legacy.jane_id)
    [approved] = _audit(db, "migration.inactive_approved")
    assert approved.entity_id == str(view.id)
    assert (approved.after["manager"], approved.after["reason"], approved.after["legacy_status"]) == (
        "Morgan Manager", "Rejoined at the lane", status)
    assert approved.after["manager_operator_id"] == _actor(db, "Morgan Manager").operator_id


def test_an_active_member_needs_no_approval(legacy: Legacy) -> None:
    view = service(legacy.db).begin(legacy.jane_session, legacy.jane_id)
    assert view.kind == "migration" and _audit(legacy.db, "migration.inactive_approved") == []


def _customers_named(db, first: str, last: str) -> int:
    with db.read() as s:
        return s.exec(select(func.count()).select_from(Customer).where(
            Customer.first_name == first, Customer.last_name == last)).one()


def test_a_retry_after_a_blocked_migration_reuses_the_customer(legacy: Legacy) -> None:
    """Confirm created Jane; the card was declined and the attendant abandoned the migration (Back to the
    match); the retry confirms again: still one Jane, on the new order."""
    db = legacy.db
    svc = service(db)
    view = svc.begin(legacy.jane_session, legacy.jane_id)
    form = svc.contact_form(view.id)
    form.email = "jane.doe@example.com"
    first = svc.confirm_contact(view.id, form)
    svc.attach_reader_card(view.id, card("generic_decline"))
    svc.cancel(view.id)  # blocked: the attendant leaves the migration
    assert _customers_named(db, "Jane", "Doe") == 1

    retry = svc.begin(legacy.jane_session, legacy.jane_id)
    assert retry.customer_id is None
    form = svc.contact_form(retry.id)
    form.email = "jane.d@example.com"  # corrected on the retry
    again = svc.confirm_contact(retry.id, form)
    assert again.customer_id == first.customer_id
    assert _customers_named(db, "Jane", "Doe") == 1
    with db.read() as s:
        assert s.get(Customer, first.customer_id).email == "jane.d@example.com"
    [reused] = _audit(db, "customer.reused")
    assert reused.after["legacy_member_id"] == legacy.jane_id
    # And the retry finishes the migration on that one customer.
    svc.attach_reader_card(retry.id, card())
    assert svc.order(retry.id).customer_id == first.customer_id


# --- the CLI ------------------------------------------------------------------------------------------------


def test_legacy_find_shows_status_and_last_billing(legacy: Legacy, settings) -> None:
    _cancel_jane(legacy.db, legacy)
    found = run_cli("--db", settings.database_url, "legacy", "find", legacy.jane_plate)
    assert found.returncode == 0, found.stderr
    line = next(x for x in found.stdout.splitlines() if "Jane Doe" in x)
    assert "status CANCELLED · last billed Oct 03, 2026" in line


# --- the screens (Pilot, 80x24) -------------------------------------------------------------------------------


async def test_purchase_on_a_legacy_bubble_offers_migrate_first(settings, legacy: Legacy) -> None:
    db = legacy.db
    _cancel_jane(db, legacy, "active")
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), legacy.jane_session)
        await pilot.press("f2")  # Purchase Membership
        await at(pilot, "legacy-purchase")
        question = text_of(app, "#legacy-purchase-text")
        assert "This car belongs to legacy member Jane Doe (active, last billed Oct 03, 2026)." in question
        assert "Migrate them instead?" in question
        await pilot.press("escape")  # Back: nothing started
        await at(pilot, "session-detail")
        assert _orders(db) == []
        await pilot.press("f2")
        await at(pilot, "legacy-purchase")
        await pilot.press("f3")  # Migrate
        await at(pilot, "migration-match")
        assert "Jane Doe" in text_of(app, "#match-list")
        await pilot.press("escape")
        await at(pilot, "session-detail")
        await pilot.press("f2")
        await at(pilot, "legacy-purchase")
        await pilot.press("f2")  # Sell new anyway
        await at(pilot, "plan-select")
    assert [o.kind for o in _orders(db)] == ["sale"]


async def test_a_cancelled_member_is_migrated_with_a_reason_and_a_managers_pin(settings, legacy: Legacy) -> None:
    from clarity_tui.widgets.manager_pin import ManagerPinModal

    db = legacy.db
    _cancel_jane(db, legacy)
    app = migration_app(settings, db, actor=_actor(db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), legacy.jane_session)
        await pilot.press("f3")  # Migrate Membership
        await at(pilot, "migration-match")
        listed = text_of(app, "#match-list")
        assert "status CANCELLED · last billed Oct 03, 2026" in listed and "MANAGER APPROVAL" in listed
        await pilot.press("f5")  # That's Me
        await at(pilot, "inactive-reason")
        assert "legacy membership is cancelled" in text_of(app, "#inactive-reason-text")
        await pilot.press("enter")  # no reason yet: refused
        await wait_until(pilot, lambda: "Type the reason" in text_of(app, "#inactive-reason-error"), "a reason asked")
        await pilot.press(*"Rejoined", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal) and bool(app.screen._managers)
                         and "PIN for Morgan Manager" in text_of(app, "#manager-pin-who"), "the Manager PIN modal")
        await pilot.press("escape")  # the manager is not there: nothing is migrated
        await at(pilot, "migration-match")
        assert "needs a manager's approval" in text_of(app, "#match-message")
        assert _orders(db) == []
        await pilot.press("f5")
        await at(pilot, "inactive-reason")
        await pilot.press(*"Rejoined", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal) and bool(app.screen._managers)
                         and "PIN for Morgan Manager" in text_of(app, "#manager-pin-who"), "the Manager PIN modal")
        await pilot.press(*PINS["Morgan Manager"], "enter")
        await at(pilot, "migration-contact")
    [approved] = _audit(db, "migration.inactive_approved")
    assert (approved.actor, approved.after["manager"], approved.after["reason"]) == (
        "Alex Attendant", "Morgan Manager", "Rejoined")
