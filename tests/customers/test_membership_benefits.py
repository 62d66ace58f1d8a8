"""Extra benefits on a membership (issue 14, item 5; seed 002: staff "manually edit a member's expiration date
as well as additional member benefits"): on the record's Membership tab a manager adds them beside the plan's,
with quantity and expiry, and removes them; they are audited and shown on the session screen.

Through Pilot at 80x24 as an attendant works (a Manager PIN in place), and through the service, on SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert
from sqlmodel import select
from textual.widgets import Static

from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import CustomerError, NotFound, ValidationFailed
from clarity_tui.services.customers import CustomerService
from clarity_tui.services.member_benefits import MemberBenefits, of_membership
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.customer_forms import FormDialog
from clarity_tui.widgets.manager_pin import ManagerPinModal
from db.models import AccountBenefit, AuditLog, Membership, MembershipStatus, MembershipVehicle, Operator, Role, Vehicle
from hardware.plate_reader import PlateEvent
from db import migrate
from tests.helpers.signin import PINS, signin_settings
from tests.helpers.ui import make_app, wait_until

TODAY = dt.date(2026, 11, 22)


def _actor(db, name: str) -> Actor:  # noqa: ANN001
    with db.read() as s:
        op = s.exec(select(Operator).where(Operator.name == name)).one()
    return Actor(op.name, Role(op.role), "lane-1-term", op.id)


def _member(db) -> tuple[int, int, str]:  # noqa: ANN001
    """An active membership with a car: (membership id, customer id, plate)."""
    with db.read() as s:
        m, v = s.exec(select(Membership, Vehicle).join(MembershipVehicle, MembershipVehicle.membership_id == Membership.id)
                      .join(Vehicle, Vehicle.id == MembershipVehicle.vehicle_id)
                      .where(Membership.status == MembershipStatus.ACTIVE).order_by(Membership.id)).first()
        return m.id, m.customer_id, v.plate


def _audit(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _text(widget) -> str:  # noqa: ANN001
    return " ".join(str(widget.render()).split())


def test_the_service_grants_and_removes_extras_for_managers_only(demo_db) -> None:  # noqa: ANN001
    mid, cid, _plate = _member(demo_db)
    svc = MemberBenefits(demo_db, today=lambda: TODAY)
    manager, attendant = _actor(demo_db, "Morgan Manager"), _actor(demo_db, "Alex Attendant")
    with pytest.raises(PermissionDenied):
        svc.add(attendant, mid, "Free wash", quantity=2)
    with pytest.raises(ValidationFailed, match="passed"):
        svc.add(manager, mid, "Free wash", expires_on=TODAY - dt.timedelta(days=1))
    with pytest.raises(ValidationFailed):
        svc.add(manager, mid, "Gold bars")
    first = svc.add(manager, mid, "Free wash", "birthday", 3, TODAY + dt.timedelta(days=30))
    second = svc.add(manager, mid, "Vacuum token", quantity="2")
    assert [e.label for e in svc.extras(mid)] == ["Free wash (birthday) 3 left, until 2026-12-22", "Vacuum token 2 left"]
    # An used-up or expired benefit is not an extra any more.
    with demo_db.write() as s:
        s.get(AccountBenefit, second).remaining = 0
    assert [e.id for e in svc.extras(mid)] == [first]
    assert MemberBenefits(demo_db, today=lambda: TODAY + dt.timedelta(days=31)).extras(mid) == []
    with pytest.raises(PermissionDenied):
        svc.remove(attendant, mid, first)
    svc.remove(manager, mid, first)
    with pytest.raises(NotFound):
        svc.remove(manager, mid, first)
    [added, _] = _audit(demo_db, "membership.benefit_added")
    assert (added.actor, added.entity, added.entity_id) == ("Morgan Manager", "membership", str(mid))
    assert added.after["kind"] == "Free wash" and added.after["quantity"] == 3 and added.after["customer_id"] == cid
    assert added.after["membership_id"] == mid
    [removed] = _audit(demo_db, "membership.benefit_removed")
    assert removed.before["id"] == first and removed.actor == "Morgan Manager"
    with demo_db.write() as s:
        s.get(Membership, mid).status = MembershipStatus.CANCELLED
    with pytest.raises(CustomerError, match="current membership"):
        svc.add(manager, mid, "Free wash")


def _ids(extras) -> list[int]:  # noqa: ANN001
    return [e.id for e in extras]


def test_an_extra_belongs_to_its_membership_and_ends_with_it(demo_db) -> None:  # noqa: ANN001
    """Migration 0011: the extra is the membership's. Another membership of the same customer does not show
    it, and it is not usable once its membership has ended; an account benefit (no membership) shows with
    either, as before."""
    mid, cid, plate = _member(demo_db)
    svc = MemberBenefits(demo_db, today=lambda: TODAY)
    manager = _actor(demo_db, "Morgan Manager")
    account = CustomerService(demo_db).add_benefit(manager, cid, "Gift credit", "loyalty")
    first = svc.add(manager, mid, "Vacuum token", "first membership", 2)
    with demo_db.read() as s:
        assert s.get(AccountBenefit, first).membership_id == mid
        assert s.get(AccountBenefit, account).membership_id is None
    assert _ids(svc.extras(mid)) == [account, first]
    assert svc.extras(None) == []
    # The session screen asks for the car's membership.
    session_id = SessionService(demo_db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("camera"))
    car = SessionService(demo_db).detail(session_id).membership
    assert car is not None and car.membership_id == mid and _ids(svc.extras(car.membership_id)) == [account, first]

    # The membership ends: its extra is no longer usable, on the session screen or the record.
    with demo_db.write() as s:
        old = s.get(Membership, mid)
        old.status = MembershipStatus.CANCELLED
        plan_id = old.plan_id
        link = s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == mid)).first()
        vehicle_id = link.vehicle_id
        s.delete(link)
    assert _ids(svc.extras(mid)) == [account]
    record = CustomerService(demo_db).record(cid)
    assert _ids(of_membership(record.benefits, mid, MembershipStatus.CANCELLED, TODAY)) == [account]
    assert _ids(of_membership(record.benefits, mid, MembershipStatus.ACTIVE, TODAY)) == [account, first]

    # A second membership of the same customer, for the same car, does not show the first one's extra.
    with demo_db.write() as s:
        second_m = Membership(customer_id=cid, plan_id=plan_id, status=MembershipStatus.ACTIVE, started_on=TODAY)
        s.add(second_m)
        s.flush()
        second = second_m.id
        s.add(MembershipVehicle(membership_id=second, vehicle_id=vehicle_id))
    assert _ids(svc.extras(second)) == [account]
    own = svc.add(manager, second, "Free wash", "second membership")
    assert _ids(svc.extras(second)) == [account, own]
    assert _ids(svc.extras(mid)) == [account]
    car = SessionService(demo_db).detail(session_id).membership
    assert car is not None and car.membership_id == second and _ids(svc.extras(car.membership_id)) == [account, own]
    record = CustomerService(demo_db).record(cid)
    assert _ids(of_membership(record.benefits, second, MembershipStatus.ACTIVE, TODAY)) == [account, own]
    # ...nor can its extra be removed from the other membership.
    with pytest.raises(NotFound):
        svc.remove(manager, second, first)
    with pytest.raises(NotFound):
        svc.remove(manager, mid, own)
    svc.remove(manager, second, own)
    assert _ids(svc.extras(second)) == [account]
    [removed] = _audit(demo_db, "membership.benefit_removed")
    assert removed.entity_id == str(second) and removed.before["membership_id"] == second


def test_rows_from_before_migration_0011_stay_and_show_with_the_membership(demo_db) -> None:  # noqa: ANN001
    """A site upgraded from 0010: its benefit rows stay, with no membership, and show as before."""
    mid, cid, _plate = _member(demo_db)
    engine = demo_db.engine
    migrate.downgrade(engine, "0010")
    with engine.begin() as conn:
        old = conn.execute(insert(AccountBenefit.__table__).values(  # membership_id: not a column at 0010
            customer_id=cid, kind="Free wash", description="from 0010", quantity=3, remaining=2)).inserted_primary_key[0]
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with demo_db.read() as s:
        row = s.get(AccountBenefit, old)
        assert (row.customer_id, row.membership_id, row.kind, row.quantity, row.remaining) == (cid, None, "Free wash", 3, 2)
    svc = MemberBenefits(demo_db, today=lambda: TODAY)
    assert [e.label for e in svc.extras(mid)] == ["Free wash (from 0010) 2 of 3 left"]
    # It can still be removed from the membership's tab, audited as before.
    svc.remove(_actor(demo_db, "Morgan Manager"), mid, old)
    assert svc.extras(mid) == []
    [removed] = _audit(demo_db, "membership.benefit_removed")
    assert removed.before["id"] == old and removed.before["membership_id"] is None


async def _pin(pilot, name: str = "Morgan Manager") -> None:  # noqa: ANN001
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal) and bool(app.screen._managers)
                     and app.screen.focused is app.screen.query_one("#manager-pin-input"), "the Manager PIN modal")
    await wait_until(pilot, lambda: f"PIN for {name}" in _text(app.screen.query_one("#manager-pin-who")), name)
    await pilot.press(*PINS[name], "enter")


async def test_an_attendant_adds_an_extra_benefit_on_the_membership_tab_with_a_managers_pin(demo_db, settings) -> None:  # noqa: ANN001
    mid, cid, plate = _member(demo_db)
    session_id = SessionService(demo_db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("camera"))
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        expires = (app.today() + dt.timedelta(days=30)).isoformat()
        app.push_screen(CustomerRecordScreen(cid))
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None,
                         "the record")
        record = app.screen
        record.show_tab("tab-membership")
        detail = record.query_one("#membership-detail", Static)
        await wait_until(pilot, lambda: "Extra benefits: none" in _text(detail), "no extras yet")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog) and bool(app.screen.query("#f-expires_on"))
                         and app.screen.query_one("#f-kind").is_mounted, "the extra benefit form")
        form = app.screen
        form.query_one("#f-kind").value = "Courtesy rewash"
        form.query_one("#f-description").value = "spots left"
        form.query_one("#f-quantity").value = "2"
        form.query_one("#f-expires_on").value = expires
        await pilot.press("f2")
        await _pin(pilot)
        line = f"Extra benefits: Courtesy rewash (spots left) 2 left, until {expires}"
        await wait_until(pilot, lambda: app.screen is record and line in _text(detail), "the extra shown on the tab")
        assert "Benefits: " in _text(detail)  # the plan's own, beside it
        [added] = _audit(demo_db, "membership.benefit_added")
        assert added.actor == "Morgan Manager" and added.entity_id == str(mid)
        # The session screen shows it.
        app.push_screen(SessionDetailScreen(session_id))
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None
                         and "Courtesy rewash" in _text(app.screen.query_one("#session-benefits")), "shown on the session")
        assert app.screen.query_one("#session-benefits").display
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is record, "back on the record")
        # F8 removes one, with a manager's PIN again.
        record.show_tab("tab-membership")
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog) and bool(app.screen.query("#f-benefit")),
                         "the remove form")
        await pilot.press("f2")
        await _pin(pilot)
        await wait_until(pilot, lambda: app.screen is record and "Extra benefits: none" in _text(detail), "removed")
    with demo_db.read() as s:
        assert s.exec(select(AccountBenefit).where(AccountBenefit.customer_id == cid)).all() == []
    [removed] = _audit(demo_db, "membership.benefit_removed")
    assert removed.actor == "Morgan Manager" and removed.before["kind"] == "Courtesy rewash"
    assert [a.after["requested_by"] for a in _audit(demo_db, "operator.approved")] == ["Alex Attendant"] * 2
