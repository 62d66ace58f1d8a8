"""The search and record screens through Pilot at 80x24: keys and clicks on every tab."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import Input, Select, Static

from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.customer_search import CustomerSearchScreen
from clarity_tui.services.customers import CustomerService
from clarity_tui.widgets.customer_forms import NOT_APPROVED, ConfirmDialog, FormDialog, NoticeDialog
from clarity_tui.widgets.manager_pin import ManagerPinModal
from db.models import AuditLog
from tests.helpers.actors import ATTENDANT, MANAGER, TECHNICIAN
from tests.helpers.ui import make_app, wait_until
from tests.helpers.customer_record_ui import open_record, record_screen, rows, to_tab


async def dialog(pilot) -> FormDialog:  # noqa: ANN001
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, FormDialog), "a form dialog")
    return pilot.app.screen


async def fill(pilot, d: FormDialog, **values) -> None:  # noqa: ANN001, ANN003
    for name, value in values.items():
        widget = d.query_one(f"#f-{name}")
        widget.value = value  # type: ignore[attr-defined]
    await pilot.pause()


async def save_dialog(pilot) -> None:  # noqa: ANN001
    await pilot.press("f2")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, FormDialog), "the dialog to close")


async def confirm(pilot) -> None:  # noqa: ANN001
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "a confirmation")
    await pilot.press("y")


async def test_search_opens_from_anywhere_and_enter_opens_the_record(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f7")
        assert isinstance(app.screen, CustomerSearchScreen)
        await pilot.press(*"zoom iv")
        await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.term == "zoom iv", "results")
        assert rows(app.screen, "results")[0][:2] == ["Ivana Zoom", "C100000"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None, "record")
        assert app.screen.query_one("#in-last_name", Input).value == "Zoom"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CustomerSearchScreen)
        await pilot.press("escape")
        # The palette command opens it too.
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Customers: search" in commands


async def test_general_create_edit_validation_keeps_input_and_delete(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=MANAGER)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f7")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen), "new record")
        screen = record_screen(app)
        await pilot.press(*"Grace")
        screen.query_one("#in-last_name", Input).value = "Hopper"
        screen.query_one("#in-phone", Input).value = "12345"
        await pilot.press("f2")
        await wait_until(pilot, lambda: "phone" in str(screen.query_one("#general-error", Static).render()), "phone error")
        assert screen.query_one("#in-first_name", Input).value == "Grace"  # typed input kept
        assert screen.query_one("#in-phone", Input).has_class("-invalid")
        screen.query_one("#in-phone", Input).value = "(512) 555-0199"
        await pilot.click("#general-save")
        await wait_until(pilot, lambda: screen.record is not None, "created")
        number = screen.record.customer.customer_number
        assert screen.record.customer.phone_e164 == "+15125550199"
        # Edit and answer a question prompt.
        # The created record re-fills the form and its answers (after a refresh); edit once that is done.
        await wait_until(pilot, lambda: len(screen.query("#prompt-grid #q-heard_from")) == 1
                         and not any(w.node is screen and w.is_running for w in app.workers), "the form re-filled")
        await pilot.pause()
        screen.query_one("#in-city", Input).value = "Round Rock"
        await pilot.pause()
        screen.query_one("#q-heard_from", Select).value = "Radio"
        await pilot.press("f2")
        # Saved, and the form re-filled from the save (the change feed's reload alone does not move the version).
        await wait_until(pilot, lambda: screen.record.customer.city == "Round Rock" and screen.form_version == 2, "saved")
        assert screen.record.customer.question_answers == {"heard_from": "Radio"}
        assert screen.record.customer.version == 2
        # Delete (manager).
        await pilot.press("f8")
        await confirm(pilot)
        await wait_until(pilot, lambda: not isinstance(app.screen, CustomerRecordScreen), "record closed")
    assert CustomerService(demo_db).find_by_number(number) is None


def save_city_elsewhere(db, customer_id: int):  # noqa: ANN001, ANN201
    """Another terminal (a manager) saves the customer's city as "Elsewhere"; returns the saved customer."""
    from clarity_tui.services.customers import ContactForm

    svc = CustomerService(db)
    rec = svc.record(customer_id)
    form = ContactForm.of(rec.customer)
    form.city = "Elsewhere"
    return svc.update_contact(MANAGER, customer_id, rec.customer.version, form)


async def test_stale_save_is_refused_and_the_form_is_kept(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        save_city_elsewhere(demo_db, 1)  # another terminal saves first
        screen.query_one("#in-city", Input).value = "Mine"
        await pilot.press("f2")
        await wait_until(pilot, lambda: "another terminal" in str(screen.query_one("#general-error", Static).render()), "stale")
        assert "Morgan Manager" in str(screen.query_one("#general-error", Static).render())
        assert screen.query_one("#in-city", Input).value == "Mine"


async def test_a_change_feed_reload_does_not_swallow_the_refill_after_a_save(settings, demo_db) -> None:  # noqa: ANN001
    """A save asks for the form to be re-filled; the change feed's own reload of the same commit can arrive
    before that read starts. The refill must still happen, or the form keeps the old version and the next
    save is refused as "changed on another terminal" (CI15)."""
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        saved = save_city_elsewhere(demo_db, 1)
        # The save's refill, then the feed's reload, in the same tick (as under load).
        screen.load(refill=True)
        screen.load(refill=False)
        await wait_until(pilot, lambda: screen.record is not None and screen.record.customer.version == saved.version
                         and not any(w.group == "record-load" and w.is_running for w in app.workers), "reloaded")
        await pilot.pause()
        assert screen.form_version == saved.version
        assert screen.query_one("#in-city", Input).value == "Elsewhere"
        # So the next save is the attendant's, not refused as stale.
        screen.query_one("#in-city", Input).value = "Round Rock"
        await pilot.press("f2")
        await wait_until(pilot, lambda: screen.record.customer.city == "Round Rock", "saved")
        assert "another terminal" not in str(screen.query_one("#general-error", Static).render())


async def test_technician_is_refused_through_the_ui(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=TECHNICIAN)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        screen.query_one("#in-city", Input).value = "Hacked"
        await pilot.press("f2")
        await wait_until(pilot, lambda: "may not" in str(screen.query_one("#general-error", Static).render()), "refusal")
        assert "technician" in str(screen.query_one("#general-error", Static).render())
    assert CustomerService(demo_db).record(1).customer.city == "Austin"


async def test_related_tab_add_by_number_and_by_search_edit_delete(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        await to_tab(pilot, "tab-related")
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        await fill(pilot, d, other="C100003")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: len(rows(screen, "related-table")) == 1, "related row")
        assert rows(screen, "related-table")[0][:2] == ["Household", "C100003"]
        # Add by search: Search button -> pick mode -> the number fills in.
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        await fill(pilot, d, kind="business")
        await pilot.click("#form-extra-0")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerSearchScreen), "pick search")
        await pilot.press(*"C100005")
        await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.hits, "pick results")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog) and app.screen.values()["other"] == "C100005", "number filled")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: len(rows(screen, "related-table")) == 2, "second related row")
        # Edit the first: household -> contact.
        await pilot.press("f4")
        d = await dialog(pilot)
        await fill(pilot, d, kind="contact")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "related-table")[0][0] == "Contact", "edited")
        await pilot.press("f8")
        await confirm(pilot)
        await wait_until(pilot, lambda: len(rows(screen, "related-table")) == 1, "deleted")
    # Shown from the other side.
    assert [r.other_number for r in CustomerService(demo_db).record(6).related] == ["C100000"]


async def test_membership_tab_expiry_manager_only_and_pause(settings, demo_db) -> None:  # noqa: ANN001
    from db.models import Membership, MembershipStatus

    with demo_db.read() as s:
        m = s.exec(select(Membership).where(Membership.status == MembershipStatus.ACTIVE)).first()
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, m.customer_id)
        await to_tab(pilot, "tab-membership")
        assert rows(screen, "membership-table")[0][1] == "active"
        await pilot.click("#membership-expiry")
        d = await dialog(pilot)
        await fill(pilot, d, expires_on="2027-05-01")
        await pilot.press("f2")  # managers only: a Manager PIN is asked in place (tests/site/test_manager_pin_in_place.py)
        await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal), "the Manager PIN")
        await pilot.press("escape")
        await wait_until(pilot, lambda: NOT_APPROVED in str(d.query_one("#form-error", Static).render()), "not approved")
        assert d.values()["expires_on"] == "2027-05-01"  # kept
        await pilot.press("escape")  # unsaved: asked first (widgets/unsaved_guard.py); Discard
        await wait_until(pilot, lambda: app.screen.id == "unsaved-changes", "the unsaved-changes prompt")
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen is screen, "back on the record")
        await pilot.click("#membership-pause")
        await confirm(pilot)
        await wait_until(pilot, lambda: rows(screen, "membership-table")[0][1] == "paused", "paused")
        assert str(screen.query_one("#membership-pause").label) == "Resume"
    app = make_app(settings, demo_db, actor=MANAGER)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, m.customer_id)
        await to_tab(pilot, "tab-membership")
        await pilot.click("#membership-expiry")
        d = await dialog(pilot)
        await fill(pilot, d, expires_on="2027-05-01")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "membership-table")[0][3] == "2027-05-01", "expiry shown")


async def test_web_login_tab_create_shows_password_once_then_remove(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        await to_tab(pilot, "tab-web")
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        assert d.values()["username"] == "ivana.zoom0@example.com"
        await save_dialog(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, NoticeDialog), "password shown")
        shown = str(app.screen.query_one("#notice-text", Static).render())
        password = shown.split("Password: ")[1].split()[0]
        assert CustomerService(demo_db).verify_web_password("ivana.zoom0@example.com", password)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Username: ivana.zoom0@example.com" in str(screen.query_one("#web-detail", Static).render()), "detail")
        assert password not in str(screen.query_one("#web-detail", Static).render())
        await pilot.press("f8")
        await confirm(pilot)
        await wait_until(pilot, lambda: "No web login" in str(screen.query_one("#web-detail", Static).render()), "removed")


async def test_touchpoints_tab_create_edit_delete(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        await to_tab(pilot, "tab-touch")
        await pilot.click("#touch-new")
        d = await dialog(pilot)
        await fill(pilot, d, title="Call about Ultimate", due_on="next week")
        await pilot.press("f2")
        await wait_until(pilot, lambda: "YYYY-MM-DD" in str(d.query_one("#form-error", Static).render()), "date error")
        assert d.values()["title"] == "Call about Ultimate"
        await fill(pilot, d, due_on="2026-12-01", assignee=2)
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "touch-table") == [["Call about Ultimate", "2026-12-01", "Morgan Manager", ""]], "row")
        await pilot.press("f4")
        d = await dialog(pilot)
        await fill(pilot, d, done=True)
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "touch-table")[0][3] == "✓", "done")
        await pilot.press("f8")
        await confirm(pilot)
        await wait_until(pilot, lambda: rows(screen, "touch-table") == [], "deleted")


async def test_benefits_tab_new_type_properties_remove(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=MANAGER)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        await to_tab(pilot, "tab-benefits")
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        await fill(pilot, d, kind="Free wash", description="Rain check", quantity="3", expires_on="2027-01-31")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "benefits-table") == [["Free wash", "Rain check", "3", "3", "2027-01-31"]], "row")
        await pilot.press("f4")
        d = await dialog(pilot)
        await fill(pilot, d, remaining="1")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "benefits-table")[0][3] == "1", "edited")
        await pilot.press("f8")
        await confirm(pilot)
        await wait_until(pilot, lambda: rows(screen, "benefits-table") == [], "removed")


async def test_notes_tab_and_operator_notice_pops_up_on_open(settings, demo_db) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db, actor=MANAGER)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_record(pilot, 1)
        assert not isinstance(app.screen, NoticeDialog)
        await to_tab(pilot, "tab-notes")
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        await fill(pilot, d, body="Board member: please pay special attention", operator_notice=True)
        await save_dialog(pilot)
        await wait_until(pilot, lambda: len(rows(screen, "notes-table")) == 1, "note row")
        await pilot.press("ctrl+n")
        d = await dialog(pilot)
        await fill(pilot, d, body="Likes the tire shine")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: len(rows(screen, "notes-table")) == 2, "second note")
        await pilot.press("f4")  # cursor is on the first row
        d = await dialog(pilot)
        await fill(pilot, d, body="Board member: VIP")
        await save_dialog(pilot)
        await wait_until(pilot, lambda: rows(screen, "notes-table")[0][0] == "Board member: VIP", "edited")
    # Any terminal opening the record gets the popup (here: a second app on the same database).
    app2 = make_app(settings, demo_db, actor=ATTENDANT)
    async with app2.run_test(size=(80, 24)) as pilot:
        app2.push_screen(CustomerRecordScreen(1))
        await wait_until(pilot, lambda: isinstance(app2.screen, NoticeDialog) and bool(app2.screen.query("#notice-text")),
                         "operator notice popup, drawn")
        assert app2.screen.id == "operator-notice"
        assert "Board member: VIP" in str(app2.screen.query_one("#notice-text", Static).render())
        assert "tire shine" not in str(app2.screen.query_one("#notice-text", Static).render())
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app2.screen, CustomerRecordScreen), "back to the record")
        screen = app2.screen
        await to_tab(pilot, "tab-notes")
        await pilot.press("f8")  # attendants may not delete a notice
        await confirm(pilot)
        await wait_until(pilot, lambda: any(n.title == "Not done" for n in app2._notifications), "the refusal")
        assert len(rows(screen, "notes-table")) == 2
    with demo_db.read() as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity == "customer", AuditLog.entity_id == "1"))]
    assert actions.count("note.added") == 2 and "note.updated" in actions and "note.removed" not in actions


async def test_session_customer_button_opens_the_record(settings, demo_db) -> None:  # noqa: ANN001
    from clarity_tui.screens.session_detail import SessionDetailScreen
    from clarity_tui.services.sessions import SessionService
    from db.models import Vehicle
    from hardware.plate_reader import PlateEvent
    from clarity_tui.services.actor import Actor

    with demo_db.read() as s:
        plate = s.exec(select(Vehicle.plate).where(Vehicle.customer_id == 1)).first()
    sid = SessionService(demo_db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("test"))
    unknown = SessionService(demo_db).record_plate_read(PlateEvent(plate="ZZZ 999", lane="Lane 2"), Actor.system("test"))
    app = make_app(settings, demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(SessionDetailScreen(sid))
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None, "session")
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None, "record")
        assert app.screen.record.customer.id == 1
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("escape")
        app.push_screen(SessionDetailScreen(unknown))
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None, "session 2")
        await pilot.press("f4")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerSearchScreen), "search")
        assert app.screen.query_one("#search-box", Input).value == "ZZZ 999"


async def test_past_due_member_pays_with_a_new_card_on_the_reader(settings, demo_db) -> None:  # noqa: ANN001
    """At the lane the new card comes from the reader (tapped, as a finger would); a reader decline
    leaves everything as it was, and the next card is charged and reactivates the membership."""
    from db.models import Membership, MembershipStatus, PaymentMethod
    from tests.helpers.sale import fast_devices
    from tests.helpers.ui import devices_ready

    from clarity_tui.payments.simulated import SimulatedGateway
    from tests.helpers.customers import billed_membership

    gw = SimulatedGateway(demo_db)
    m, sub = billed_membership(demo_db, gw, MembershipStatus.PAST_DUE)
    invoice = gw.open_invoice(sub, 1999)  # the renewal Stripe could not collect
    with demo_db.read() as s:
        cards_before = len(s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == m.customer_id)).all())
    app = make_app(fast_devices(settings), demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        screen = await open_record(pilot, m.customer_id)
        await to_tab(pilot, "tab-membership")
        assert rows(screen, "membership-table")[0][1] == "past due"
        app.devices.card_reader.set_outcome("insufficient_funds")
        await pilot.click("#membership-reader")
        await wait_until(pilot, lambda: app.screen.id == "device-error", "the reader's decline")
        assert "insufficient funds" in str(app.screen.query_one("#device-error-message", Static).render()).lower()
        await pilot.press("escape")  # the customer has no other card on them right now
        await wait_until(pilot, lambda: any("Try the reader again" in n.message for n in app._notifications),
                         "what to do next")
        assert rows(screen, "membership-table")[0][1] == "past due"
        app.devices.card_reader.set_outcome("approve")
        await pilot.click("#membership-reader")
        await wait_until(pilot, lambda: rows(screen, "membership-table")[0][1] == "active", "reactivated")
        await wait_until(pilot, lambda: any(n.message.startswith("Card saved: ") for n in app._notifications),
                         "the card-saved notice")
    with demo_db.read() as s:
        cards = s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == m.customer_id)).all()
        assert len(cards) == cards_before + 1 and [c.is_default for c in cards].count(True) == 1
        assert s.get(Membership, m.id).status == MembershipStatus.ACTIVE
    assert gw.counts("payment_intent") == 1  # the open invoice, paid once: no separate charge
    with demo_db.read() as s:
        from db.models import SimGatewayObject

        assert s.get(SimGatewayObject, invoice).data["status"] == "paid"


async def test_a_manager_refunds_from_the_record_and_an_attendant_cannot(settings, demo_db) -> None:  # noqa: ANN001
    """Refund (ctrl+g or the button) on the Membership tab: the manager's goes to the gateway with its
    own key; more than was paid is refused with the amount left; an attendant is told no."""
    from clarity_tui.payments.cards import CardToken
    from clarity_tui.payments.simulated import SimulatedGateway, sim_token
    from clarity_tui.services.billing import BillingService
    from db.models import SalesOrder, SimGatewayObject
    from tests.helpers.orders import new_order

    billing = BillingService(demo_db, SimulatedGateway(demo_db))
    order_id = new_order(demo_db, "BASIC", customer_number="C100000")
    billing.attach_card_token(order_id, CardToken(sim_token("ok"), "visa", "4242", 12, 2030))
    assert billing.start_sale(order_id).completed
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
        customer_id, paid = order.customer_id, order.due_today_cents
    for actor in (ATTENDANT, MANAGER):
        app = make_app(settings, demo_db, actor=actor)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_record(pilot, customer_id)
            await to_tab(pilot, "tab-membership")
            await pilot.press("ctrl+g")
            d = await dialog(pilot)
            if actor is ATTENDANT:
                await fill(pilot, d, amount="1.00")
                await pilot.press("f2")  # managers only: a Manager PIN is asked in place; cancelled, nothing is sent
                await wait_until(pilot, lambda: isinstance(app.screen, ManagerPinModal), "the Manager PIN")
                await pilot.press("escape")
                await wait_until(pilot, lambda: NOT_APPROVED in str(d.query_one("#form-error", Static).render()),
                                 "not approved")
                continue
            await fill(pilot, d, amount=f"{paid / 100 + 1:.2f}")
            await pilot.press("f2")
            await wait_until(pilot, lambda: "more than was paid" in str(d.query_one("#form-error", Static).render()),
                             "more than was paid")
            await fill(pilot, d, amount="5.00")
            await save_dialog(pilot)
            await wait_until(pilot, lambda: any("Refund sent" in n.message for n in app._notifications), "sent")
            assert screen.is_attached
    with demo_db.read() as s:
        order = s.get(SalesOrder, order_id)
        assert order.refunded_cents == 500
        assert s.get(SimGatewayObject, order.gateway_payment_id).data["refunded"] == 500
