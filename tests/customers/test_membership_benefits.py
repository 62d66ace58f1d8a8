"""Extra benefits on a membership (issue 14, item 5; seed 002: staff "manually edit a member's expiration date
as well as additional member benefits"): on the record's Membership tab a manager adds them beside the plan's,
with quantity and expiry, and removes them; they are audited and shown on the session screen.

Through Pilot at 80x24 as an attendant works (a Manager PIN in place), and through the service, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select
from textual.widgets import Static

from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import CustomerError, NotFound, ValidationFailed
from clarity_tui.services.member_benefits import MemberBenefits
from clarity_tui.services.permissions import PermissionDenied
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.customer_forms import FormDialog
from clarity_tui.widgets.manager_pin import ManagerPinModal
from db.models import AccountBenefit, AuditLog, Membership, MembershipStatus, MembershipVehicle, Operator, Role, Vehicle
from hardware.plate_reader import PlateEvent
from tests.site.helpers import PINS, signin_settings
from tests.uihelpers import make_app, wait_until

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
    assert [e.label for e in svc.extras(cid)] == ["Free wash (birthday) 3 left, until 2026-12-22", "Vacuum token 2 left"]
    # An used-up or expired benefit is not an extra any more.
    with demo_db.write() as s:
        s.get(AccountBenefit, second).remaining = 0
    assert [e.id for e in svc.extras(cid)] == [first]
    assert MemberBenefits(demo_db, today=lambda: TODAY + dt.timedelta(days=31)).extras(cid) == []
    with pytest.raises(PermissionDenied):
        svc.remove(attendant, mid, first)
    svc.remove(manager, mid, first)
    with pytest.raises(NotFound):
        svc.remove(manager, mid, first)
    [added, _] = _audit(demo_db, "membership.benefit_added")
    assert (added.actor, added.entity, added.entity_id) == ("Morgan Manager", "membership", str(mid))
    assert added.after["kind"] == "Free wash" and added.after["quantity"] == 3 and added.after["customer_id"] == cid
    [removed] = _audit(demo_db, "membership.benefit_removed")
    assert removed.before["id"] == first and removed.actor == "Morgan Manager"
    with demo_db.write() as s:
        s.get(Membership, mid).status = MembershipStatus.CANCELLED
    with pytest.raises(CustomerError, match="current membership"):
        svc.add(manager, mid, "Free wash")


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
