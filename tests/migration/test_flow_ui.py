"""The migration through Textual's Pilot at 80x24 (simulated reader, pad and SMS), SQLite.

Every error path of issue 6 is driven through the screens: no legacy match, several candidates,
an SMS never answered, an invalid email, a declined card when saving, a process killed after the
card was saved (it resumes without a second SetupIntent), a legacy billing date in the past, and
a second migration of the same member.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import select

from clarity_tui.services.board_view import Badge
from clarity_tui.services.sessions import SessionService
from db.models import LegacyMember, LegacyMemberPlate, Membership, SalesOrder, SimGatewayObject
from tests.helpers.lanes import NEXT_BILL, Legacy
from tests.helpers.clock import TODAY
from tests.helpers.migration import service, to_signed
from tests.helpers.sale_ui import Keys, open_session
from tests.helpers.ui import at, devices_ready, text_of, wait_until
from tests.helpers.migration_ui import contact_by_sms, migration_app, sign_and_agree, start


def gateway_objects(db, kind: str) -> list[dict]:  # noqa: ANN001
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind))]


def badge(db, session_id: int) -> Badge:  # noqa: ANN001
    return SessionService(db).detail(session_id).bubble.badge


async def test_happy_path_thats_me_sms_reader_no_charge_date_kept(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    assert badge(db, legacy.jane_session) is Badge.LEGACY
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        assert "Jane Doe" in text_of(app, "#match-list") and "plate matches" in text_of(app, "#match-list")
        await pilot.press("f5")  # That's Me
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        line = text_of(app, "#billing-line")
        assert f"No payment due today · next charge {NEXT_BILL:%b %d, %Y}" in line
        await pilot.press("r")  # the reader, recommended
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f5")
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "$0.00" in summary and "no charge today" in summary and f"{NEXT_BILL:%b %d, %Y}" in summary
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
        assert "membership is migrated" in text_of(app, "#confirm-title")
        await pilot.press("enter")
    assert gateway_objects(db, "payment_intent") == []
    assert len(gateway_objects(db, "setup_intent")) == 1
    with db.read() as s:
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
        assert (m.source, m.next_billing_on, m.status) == ("migration", NEXT_BILL, "active")
        assert s.get(LegacyMember, legacy.jane_id).migrated_at is not None
    assert badge(db, legacy.jane_session) is Badge.MEMBER


async def test_no_legacy_match_search_by_phone_and_not_me(settings, legacy: Legacy) -> None:  # noqa: ANN001
    app = migration_app(settings, legacy.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.stranger_session)
        assert "No legacy member matches" in text_of(app, "#match-message")
        await pilot.press(*legacy.jane_phone[2:], "enter")  # the attendant types the phone
        await wait_until(pilot, lambda: "Jane Doe" in text_of(app, "#match-list"), "Jane found by phone")
        assert "phone matches" in text_of(app, "#match-list")
        await pilot.press("f4")  # Not me: back to the search
        await wait_until(pilot, lambda: "Jane Doe" not in text_of(app, "#match-list"), "the candidate dropped")
        assert "search by the customer's phone" in text_of(app, "#match-message")
        assert app.focused is app.screen.query_one("#match-search")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.id == "session-detail", "back on the session")
    with legacy.db.read() as s:
        assert s.exec(select(SalesOrder)).all() == []


async def test_several_candidates_the_customer_picks_theirs(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    with db.write() as s:
        others = s.exec(select(LegacyMember).order_by(LegacyMember.id)).all()[2:4]
        for lm, plate in zip(others, ("BOS 5I2", "BO5 512X"), strict=True):
            p = s.exec(select(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == lm.id)).one()
            p.plate_raw, p.plate_normalized = plate, plate.replace(" ", "")
            s.add(p)
            lm.next_bill_on = NEXT_BILL
            s.add(lm)
        second_name = f"{others[0].first_name} {others[0].last_name}"
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.bo_session)
        await wait_until(pilot, lambda: len(app.screen.candidates) == 3, "three candidates")
        assert "3 possible members" in text_of(app, "#match-message")
        assert app.screen.candidates[0].id == legacy.bo_id or app.screen.candidates[0].score >= \
            app.screen.candidates[1].score
        names = [c.name for c in app.screen.candidates]
        await pilot.press("down")
        chosen = app.screen.candidates[1]
        await pilot.press("f5")
        await at(pilot, "migration-contact")
        assert app.screen.query_one("#contact-first_name").value == chosen.name.split()[0]
        assert second_name in names
        with db.read() as s:
            order = s.exec(select(SalesOrder).where(SalesOrder.session_id == legacy.bo_session)).one()
        assert (order.kind, order.legacy_member_id) == ("migration", chosen.id)


async def test_sms_never_answered_then_typed_and_invalid_email(settings, legacy: Legacy) -> None:  # noqa: ANN001
    app = migration_app(settings, legacy.db, reply="never", timeout=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await at(pilot, "migration-contact")
        await pilot.press("f2")
        await wait_until(pilot, lambda: "Waiting for the reply" in text_of(app, "#sms-countdown"), "a countdown")
        await wait_until(pilot, lambda: "No reply after 2 s" in text_of(app, "#contact-message"), "the timeout")
        assert app.focused is app.screen.query_one("#contact-email")
        await pilot.press(*"jane@@example", "f5")
        await wait_until(pilot, lambda: "not a valid email" in text_of(app, "#contact-message"), "invalid email")
        assert app.screen.id == "migration-contact"
        assert app.screen.query_one("#contact-email").has_class("-invalid")
        app.screen.query_one("#contact-email").value = ""
        await pilot.press(*"jane.doe@example.com", "f5")
        await at(pilot, "migration-card")
    with legacy.db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == legacy.jane_session)).one()
        from db.models import Customer

        assert s.get(Customer, order.customer_id).email == "jane.doe@example.com"


async def test_declined_card_when_saving_then_another_card(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        await pilot.press("k")  # keyed: a card the bank declines when it is saved
        await at(pilot, "manual-card")
        await pilot.press(*"4000 0000 0000 0002", "enter", *"12/30", "enter", *"123", "enter")
        await at(pilot, "migration-card")
        await wait_until(pilot, lambda: "0002" in text_of(app, "#card-current"), "the keyed card")
        await pilot.press("f5")
        await sign_and_agree(pilot)
        await at(pilot, "migration-card", "back on the card step after the decline")
        assert "declined" in text_of(app, "#card-message").lower()
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the new card")
        await pilot.press("f5")  # already signed: finishes straight away
        await at(pilot, "confirmation")
    assert gateway_objects(db, "payment_intent") == []
    assert len(gateway_objects(db, "subscription")) == 1


async def test_killed_after_the_card_was_saved_resumes_without_a_second_setup_intent(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    # The first terminal process dies right after the gateway saved the card (in-process stand-in
    # for a kill: nothing after that point runs; tests/migration/test_crash.py does a real SIGKILL).
    first = service(db)
    order_id = to_signed(first, legacy)

    class Killed(BaseException):
        pass

    def die(point: str, entry) -> None:  # noqa: ANN001
        if (entry.operation, point) == ("card.save", "after_done"):
            raise Killed

    first.billing.processor.observers.append(die)
    try:
        first.pay(order_id)
    except Killed:
        pass
    assert len(gateway_objects(db, "setup_intent")) == 1 and gateway_objects(db, "subscription") == []
    # The terminal restarts: start-up recovery replays the outbox (same keys) and activates the order;
    # the attendant sees the member on the session, and the card was saved once.
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await wait_until(pilot, lambda: badge(db, legacy.jane_session) is Badge.MEMBER, "the recovered migration")
        await open_session(pilot, Keys(pilot), legacy.jane_session)
        await wait_until(pilot, lambda: "(active)" in text_of(app, "#customer"), "the membership on the session")
        assert "Jane Doe" in text_of(app, "#customer") and f"{NEXT_BILL:%b %d, %Y}" in text_of(app, "#customer")
        await pilot.press("f3")  # migrating again is refused: this member is done
        await at(pilot, "migration-match")
        await wait_until(pilot, lambda: "ALREADY MIGRATED" in text_of(app, "#match-list"), "migrated already")
    assert len(gateway_objects(db, "setup_intent")) == 1 and len(gateway_objects(db, "subscription")) == 1
    with db.read() as s:
        assert s.get(SalesOrder, order_id).state == "completed"


async def start_resume(pilot, session_id: int) -> None:  # noqa: ANN001
    await devices_ready(pilot)
    await open_session(pilot, Keys(pilot), session_id)
    await pilot.press("f3")


async def test_billing_date_in_the_past_needs_a_manager_override(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    with db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.next_bill_on = TODAY - dt.timedelta(days=2)
        s.add(jane)
    chosen = TODAY + dt.timedelta(days=9)
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        assert "in the past" in text_of(app, "#billing-line") and "manager" in text_of(app, "#billing-line")
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f5")
        await wait_until(pilot, lambda: "in the past" in text_of(app, "#card-message"), "refused")
        assert app.screen.id == "migration-card"
        await pilot.press("f6")
        await at(pilot, "manager-override")
        await pilot.press(*chosen.isoformat(), "enter")
        # The manager approves in place: their name (the only manager here) and their PIN.
        await at(pilot, "manager-pin")
        await wait_until(pilot, lambda: "PIN for Morgan Manager" in text_of(app, "#manager-pin-who"), "the manager")
        await pilot.press(*"123456", "enter")  # a wrong PIN (an attendant's) counts toward Morgan's lockout
        await wait_until(pilot, lambda: "Wrong PIN for Morgan Manager: 4 tries left" in
                         text_of(app, "#manager-pin-message"), "PIN refused")
        await pilot.press(*"654321", "enter")
        await at(pilot, "migration-card")
        await wait_until(pilot, lambda: f"next charge {chosen:%b %d, %Y}" in text_of(app, "#billing-line"),
                         "the manager's date")
        await pilot.press("f5")
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
    with db.read() as s:
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
    assert m.next_billing_on == chosen


# Sunday Nov 22, 2026, 8:30 pm in Chicago: already Nov 23 in UTC.
CHICAGO_EVENING = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)


async def _evening_card_screen(settings, legacy: Legacy, next_bill: dt.date):  # noqa: ANN001, ANN202
    settings.site.timezone = "America/Chicago"
    with legacy.db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.next_bill_on = next_bill
        s.add(jane)
    return migration_app(settings, legacy.db, clock=lambda: CHICAGO_EVENING)


async def test_in_the_site_evening_a_billing_date_of_tomorrow_is_kept(settings, legacy: Legacy) -> None:  # noqa: ANN001
    tomorrow = dt.date(2026, 11, 23)  # "today" in UTC, tomorrow at the site
    app = await _evening_card_screen(settings, legacy, tomorrow)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")  # That's Me
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        assert "No payment due today · next charge Nov 23, 2026" in text_of(app, "#billing-line")
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f5")
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
    with legacy.db.read() as s:
        m = s.exec(select(Membership).where(Membership.legacy_member_id == legacy.jane_id)).one()
    assert m.next_billing_on == tomorrow
    assert gateway_objects(legacy.db, "payment_intent") == []


async def test_in_the_site_evening_todays_billing_date_needs_a_manager(settings, legacy: Legacy) -> None:  # noqa: ANN001
    app = await _evening_card_screen(settings, legacy, dt.date(2026, 11, 22))  # the site's today, UTC's yesterday
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        line = text_of(app, "#billing-line")
        assert "next billing date is today" in line and "manager" in line


async def test_second_migration_is_refused_with_who_and_when(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    first = service(db, "lane-9-term", name="Alex Attendant")
    assert first.pay(to_signed(first, legacy)).ok
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.stranger_session)
        await pilot.press(*legacy.jane_plate, "enter")
        await wait_until(pilot, lambda: "ALREADY MIGRATED" in text_of(app, "#match-list"), "the migrated member")
        await pilot.press("f5")
        await wait_until(pilot, lambda: "already migrated by Alex Attendant on terminal lane-9-term"
                         in text_of(app, "#match-message"), "who and when")
        assert app.screen.id == "migration-match"


async def test_migrate_from_the_command_palette(settings, legacy: Legacy) -> None:  # noqa: ANN001
    app = migration_app(settings, legacy.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), legacy.jane_session)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Migrate membership" in commands
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Migrate membership")
        command.callback()
        await at(pilot, "migration-match")
        assert "Jane Doe" in text_of(app, "#match-list")


async def test_purchase_on_a_vehicle_being_migrated_is_refused(settings, legacy: Legacy) -> None:  # noqa: ANN001
    """F2 on a session whose migration order is still open (left by an idle sign-out or a crash) must not
    turn that migration into a sale."""
    from tests.helpers.migration import service

    service(legacy.db).begin(legacy.jane_session, legacy.jane_id)  # "That's Me", then the terminal went idle
    app = migration_app(settings, legacy.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), legacy.jane_session)
        await pilot.press("f2")  # Purchase Membership
        await at(pilot, "legacy-purchase")  # a LEGACY bubble offers Migrate first (issue 14)
        await pilot.press("f2")  # Sell new anyway
        await wait_until(pilot, lambda: any("legacy migration is open" in n.message for n in app._notifications),
                         "the refusal")
        assert app.screen.id == "session-detail"
    with legacy.db.read() as s:
        orders = s.exec(select(SalesOrder)).all()
    assert [(o.kind, o.state, o.legacy_member_id) for o in orders] == [("migration", "draft", legacy.jane_id)]
