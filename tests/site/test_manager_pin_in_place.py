"""Manager-only actions offer "Manager PIN" in place (issue 15, item 3), through Pilot at 80x24: an
attendant fills the form, a manager types their PIN where the action is, and the service runs as that
manager. Wrong PIN or cancel: nothing changes."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable, Static

from clarity_tui.screens.audit import AuditScreen
from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.report import ReportScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import ContactForm, CustomerService
from clarity_tui.widgets.customer_forms import NOT_APPROVED, ConfirmDialog, FormDialog
from clarity_tui.widgets.manager_pin import ManagerPinModal
from db.models import AuditLog, Membership, MembershipStatus, Operator, Role
from tests.helpers.signin import PINS, signin_settings
from tests.helpers.ui import make_app, wait_until


def _actor(db, name: str) -> Actor:  # noqa: ANN001
    with db.read() as s:
        op = s.exec(select(Operator).where(Operator.name == name)).one()
    return Actor(op.name, Role(op.role), "lane-1-term", op.id)


def _audit(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _text(widget) -> str:  # noqa: ANN001
    return " ".join(str(widget.render()).split())


def _expires(db, membership_id: int):  # noqa: ANN001, ANN202
    with db.read() as s:
        return s.get(Membership, membership_id).expires_on


async def _open_record(pilot, customer_id: int) -> CustomerRecordScreen:  # noqa: ANN001
    pilot.app.push_screen(CustomerRecordScreen(customer_id))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CustomerRecordScreen)
                     and pilot.app.screen.record is not None, "the record loaded")
    return pilot.app.screen


async def _modal(pilot) -> ManagerPinModal:  # noqa: ANN001
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal) and bool(app.screen._managers)
                     and app.screen.focused is app.screen.query_one("#manager-pin-input"), "the Manager PIN modal")
    await wait_until(pilot, lambda: "PIN for Morgan Manager" in _text(app.screen.query_one("#manager-pin-who")),
                     "Morgan Manager chosen")
    return app.screen  # type: ignore[return-value]


async def test_an_attendant_changes_an_expiration_date_with_a_managers_pin_in_place(demo_db, settings) -> None:  # noqa: ANN001
    with demo_db.read() as s:
        m = s.exec(select(Membership).where(Membership.status == MembershipStatus.ACTIVE)).first()
    before = m.expires_on
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, m.customer_id)
        screen.show_tab("tab-membership")
        await wait_until(pilot, lambda: screen.query_one("#membership-expiry").region.area > 0
                         and screen.query_one("#membership-table", DataTable).row_count > 0, "the Membership tab")
        await pilot.click("#membership-expiry")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog), "the expiration form")
        form = app.screen

        # The form is validated before a manager is asked.
        form.query_one("#f-expires_on").value = "2027-13-01"
        await pilot.press("f2")
        await wait_until(pilot, lambda: "is not a date" in _text(form.query_one("#form-error")), "a bad date refused")
        assert app.screen is form

        # A wrong PIN: refused in the modal, nothing changed.
        form.query_one("#f-expires_on").value = "2027-05-01"
        await pilot.press("f2")
        await _modal(pilot)
        await pilot.press(*"000000", "enter")
        await wait_until(pilot, lambda: "Wrong PIN for Morgan Manager" in _text(app.screen.query_one("#manager-pin-message")),
                         "the wrong PIN refused")
        assert _expires(demo_db, m.id) == before

        # Cancel: back to the form, values kept, a calm notice, nothing changed.
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is form and NOT_APPROVED in _text(form.query_one("#form-error")),
                         "not approved")
        assert form.values()["expires_on"] == "2027-05-01"
        assert any(NOT_APPROVED in n.message and n.severity == "information" for n in app._notifications)
        assert _expires(demo_db, m.id) == before

        # Morgan Manager's PIN: saved, as Morgan.
        await pilot.press("f2")
        await _modal(pilot)
        await pilot.press(*PINS["Morgan Manager"], "enter")
        await wait_until(pilot, lambda: app.screen is screen, "the form closed")
        await wait_until(pilot, lambda: any(c == "2027-05-01" for c in screen.query_one("#membership-table", DataTable)
                                            .get_row_at(0)), "the date shown")
        assert app.actor.name == "Alex Attendant"  # still signed in as the attendant
    assert str(_expires(demo_db, m.id)) == "2027-05-01"
    [changed] = _audit(demo_db, "membership.expiration_set")
    assert changed.actor == "Morgan Manager" and changed.entity_id == str(m.id)
    [approved] = _audit(demo_db, "operator.approved")
    assert (approved.actor, approved.after["for"], approved.after["requested_by"]) == (
        "Morgan Manager", "membership.expiration_set", "Alex Attendant")
    assert len(_audit(demo_db, "operator.approval_failed")) == 1


async def test_an_attendant_deletes_a_customer_with_a_managers_pin_and_cancel_keeps_it(demo_db, settings) -> None:  # noqa: ANN001
    svc = CustomerService(demo_db, phone_region="US")
    c = svc.create_customer(_actor(demo_db, "Morgan Manager"), ContactForm(first_name="Dee", last_name="Leted"))
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, c.id)
        screen.show_tab("tab-general")
        for pin, kept in (("cancel", True), (PINS["Morgan Manager"], False)):
            await pilot.press("f8")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            await pilot.press("y")
            await _modal(pilot)
            if pin == "cancel":
                await pilot.press("escape")
                await wait_until(pilot, lambda: app.screen is screen and any(NOT_APPROVED in n.message
                                                                             for n in app._notifications), "not approved")
            else:
                await pilot.press(*pin, "enter")
                await wait_until(pilot, lambda: not screen.is_attached, "the record closed")
            assert (svc.find_by_number(c.customer_number) is not None) is kept
    [deleted] = _audit(demo_db, "customer.deleted")
    assert deleted.actor == "Morgan Manager" and deleted.entity_id == str(c.id)


async def test_an_attendant_opens_the_audit_trail_and_the_days_report_with_a_managers_pin(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        audit = app.screen
        await wait_until(pilot, lambda: bool(audit.query("#audit-manager-pin"))
                         and audit.query_one("#audit-manager-pin").region.area > 0, "the Manager PIN button")
        button = audit.query_one("#audit-manager-pin")
        assert "may not view the audit trail" in _text(audit.query_one("#audit-detail", Static))
        assert audit.query_one(DataTable).row_count == 0
        await pilot.click("#audit-manager-pin")
        await _modal(pilot)
        await pilot.press("escape")  # cancelled: still closed
        await wait_until(pilot, lambda: app.screen is audit, "back on the refused trail")
        assert audit.query_one(DataTable).row_count == 0 and audit.viewer is None
        await pilot.click("#audit-manager-pin")
        await _modal(pilot)
        await pilot.press(*PINS["Morgan Manager"], "enter")
        await wait_until(pilot, lambda: app.screen is audit and audit.query_one(DataTable).row_count > 0, "the trail")
        assert audit.viewer.name == "Morgan Manager" and not button.display
        assert "approved by Morgan Manager" in audit.sub_title
        await pilot.press("escape")

        # The day's report: F6 (the binding) asks in place too.
        await pilot.press("ctrl+e")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen), "the report screen")
        report = app.screen
        await wait_until(pilot, lambda: bool(report.query("#report-manager-pin")), "the report composed")
        await pilot.press("f3")  # today, every terminal: report.view
        await wait_until(pilot, lambda: report.scope == "day" and report.report is None
                         and report.query_one("#report-manager-pin").display, "the Manager PIN button")
        await pilot.press("f6")
        await _modal(pilot)
        await pilot.press(*PINS["Morgan Manager"], "enter")
        await wait_until(pilot, lambda: app.screen is report and report.report is not None, "the day's report")
        assert report.viewer.name == "Morgan Manager" and report.scope == "day"
    assert [r.after["for"] for r in _audit(demo_db, "operator.approved")] == ["audit.view", "report.view"]


async def test_an_attendant_adds_and_removes_an_account_benefit_with_a_managers_pin(demo_db, settings) -> None:  # noqa: ANN001
    from db.models import AccountBenefit

    svc = CustomerService(demo_db, phone_region="US")
    c = svc.create_customer(_actor(demo_db, "Morgan Manager"), ContactForm(first_name="Ben", last_name="Efit"))

    def benefits() -> list:  # noqa: ANN202
        with demo_db.read() as s:
            return list(s.exec(select(AccountBenefit).where(AccountBenefit.customer_id == c.id)))

    app = make_app(signin_settings(settings), demo_db, actor=_actor(demo_db, "Alex Attendant"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, c.id)
        screen.show_tab("tab-benefits")
        await pilot.press("ctrl+n")
        # A Select set before it is mounted raises (seen under load): wait for both fields, mounted.
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog) and [
            w.is_mounted for w in app.screen.query("#f-kind, #f-quantity")] == [True, True], "the benefit form")
        form = app.screen
        form.query_one("#f-kind").value = "Free wash"
        form.query_one("#f-quantity").value = "2"
        await pilot.press("f2")
        await _modal(pilot)
        await pilot.press(*PINS["Morgan Manager"], "enter")
        await wait_until(pilot, lambda: app.screen is screen
                         and screen.query_one("#benefits-table", DataTable).row_count == 1, "the benefit shown")
        assert [(b.kind, b.quantity) for b in benefits()] == [("Free wash", 2)]
        # Remove it: confirm, then cancel the PIN (kept), then Morgan's PIN (removed).
        screen.query_one("#benefits-table", DataTable).focus()
        for pin in ("cancel", PINS["Morgan Manager"]):
            await pilot.press("f8")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            await pilot.press("y")
            await _modal(pilot)
            if pin == "cancel":
                await pilot.press("escape")
                await wait_until(pilot, lambda: app.screen is screen, "back on the record")
                assert len(benefits()) == 1
            else:
                await pilot.press(*pin, "enter")
                await wait_until(pilot, lambda: screen.query_one("#benefits-table", DataTable).row_count == 0,
                                 "the benefit gone")
    assert benefits() == []
    [added] = _audit(demo_db, "benefit.added")
    assert added.actor == "Morgan Manager"
    assert [a.after["requested_by"] for a in _audit(demo_db, "operator.approved")] == ["Alex Attendant"] * 2
