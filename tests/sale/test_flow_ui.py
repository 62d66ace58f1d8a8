"""The sale through Textual's Pilot at 80x24, with the simulated reader and pad, on SQLite."""

from __future__ import annotations

from sqlmodel import select

from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.services.board_view import Badge
from clarity_tui.services.sessions import SessionService
from db.models import AuditLog, Membership, MembershipVehicle, SalesOrder, Signature, SimGatewayObject
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of, wait_until


def succeeded_charges(db) -> list[dict]:  # noqa: ANN001
    with db.read() as s:
        return [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))
                if r.data.get("status") == "succeeded"]


def highlighted_option(app) -> str:  # noqa: ANN001
    options = app.screen.query_one("#pay-options")
    return str(options.get_option_at_index(options.highlighted).prompt)


def badge(db, session_id: int) -> Badge:  # noqa: ANN001
    return SessionService(db).detail(session_id).bubble.badge


async def test_returning_customer_buys_in_at_most_eight_keys(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.ivana)
        # The vehicle profile: plate, colour, make, model; the recognised customer.
        vehicle = text_of(app, "#vehicle")
        assert "Silver Toyota Camry" in vehicle and app.screen.detail.bubble.plate in vehicle
        assert "Ivana Zoom" in text_of(app, "#customer")
        await keys.press("f2")
        await at(pilot, "plan-select")
        await keys.press("2")  # Deluxe
        await at(pilot, "payment")
        assert highlighted_option(app).startswith("Visa •••• 4242, exp 04/29")
        await keys.press("enter")  # the saved default card is preselected
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "Deluxe Wash Club" in summary and "$29.99" in summary and "Dec 22, 2026" in summary
        await keys.press("enter")  # Checkout
        await at(pilot, "terms")
        await keys.press("f2")  # the attendant presented the terms
        await at(pilot, "signature")
        await signer_done(pilot)
        await keys.press("f5")  # Agree
        await at(pilot, "confirmation", "the confirmation")
        assert len(keys.presses) <= 8, keys.presses
        assert keys.typed == 0
        text = text_of(app, "#confirm-table")
        assert "Deluxe Wash Club" in text and "$29.99" in text
        assert badge(db, lanes.ivana) is Badge.MEMBER
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "back on the session")
        await wait_until(pilot, lambda: "MEMBER" in text_of(app, "#customer"),
                         "the session shows MEMBER")
    assert [c["amount"] for c in succeeded_charges(db)] == [2999]
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
        assert order.state == "completed"
        sig = s.exec(select(Signature).where(Signature.order_id == order.id)).one()
        assert len(sig.strokes) >= 4 and sig.svg.startswith("<svg") and sig.device.startswith("signature_pad simulated")
        assert s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == order.membership_id)).all()
        audited = {a.action for a in s.exec(select(AuditLog).where(AuditLog.entity_id == str(order.id)))}
    assert {"order.opened", "order.plan", "order.card", "order.reviewed", "order.checkout", "order.terms_accepted",
            "order.signed", "order.completed", "order.activated"} <= audited


async def test_new_customer_with_a_reader_card_in_eight_keys_plus_typing(settings, lanes: Lanes) -> None:  # noqa: ANN001
    """Simulator mode end to end: the simulated card reader saves the card, the simulated pad signs."""
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.unknown)
        await keys.press("f2")
        await at(pilot, "plan-select")
        await keys.press("1")  # Basic
        await at(pilot, "customer-quick")
        # Typing the fields; Enter moves to the next field (counted with the typing).
        for text in ("Dana", "Reyes", "(512) 555-2368"):
            await keys.type(text)
            await keys.next_field()
        await keys.type("dana@example.com")
        await keys.press("enter")  # the last field's Enter creates the customer
        await at(pilot, "payment")
        assert highlighted_option(app) == "New card from the reader · R"  # no saved card: the reader is preselected
        await keys.press("enter")
        await at(pilot, "checkout-summary", "the summary after the reader's card")
        assert "Visa •••• 4242, exp 12/30" in text_of(app, "#summary-table")
        await keys.press("enter")
        await at(pilot, "terms")
        await keys.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        await keys.press("f5")
        await at(pilot, "confirmation")
        assert len(keys.presses) <= 8, keys.presses
    assert [c["amount"] for c in succeeded_charges(db)] == [1999]
    assert badge(db, lanes.unknown) is Badge.MEMBER
    with db.read() as s:
        from db.models import Customer, Vehicle

        c = s.exec(select(Customer).where(Customer.last_name == "Reyes")).one()
        assert (c.phone_e164, c.email) == ("+15125552368", "dana@example.com")
        assert s.exec(select(Vehicle).where(Vehicle.plate_normalized == "NEW4821")).one().customer_id == c.id


async def test_search_and_link_an_existing_customer(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.unknown)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("3")
        await at(pilot, "customer-quick")
        await pilot.press(*"Zoom", "f3")
        await at(pilot, "customer-pick")
        await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.hits, "search results")
        await pilot.press("enter")
        await at(pilot, "payment", "the payment step with the linked customer's card")
        assert highlighted_option(app).startswith("Visa •••• 4242, exp 04/29")
    with db.read() as s:
        from db.models import Vehicle, VehicleSession

        car = s.exec(select(Vehicle).where(Vehicle.plate_normalized == "NEW4821")).one()
        assert car.customer_id == lanes.ivana_customer_id
        assert s.get(VehicleSession, lanes.unknown).customer_id == lanes.ivana_customer_id


async def _sign_and_agree(pilot) -> None:  # noqa: ANN001
    await at(pilot, "terms")
    await pilot.press("f2")
    await at(pilot, "signature")
    await signer_done(pilot)
    await pilot.press("f5")


async def test_declined_card_then_another_card(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "payment")
        await pilot.press("k")  # a keyed card the bank declines
        await at(pilot, "manual-card")
        await pilot.press(*"4000 0000 0000 0002", "enter", *"12/30", "enter", *"123", "enter")
        await at(pilot, "checkout-summary")
        assert "Visa •••• 0002" in text_of(app, "#summary-table")
        await pilot.press("enter")
        await _sign_and_agree(pilot)
        await at(pilot, "payment", "back on the payment step after the decline")
        assert "Card declined by the bank. Ask for another card." in text_of(app, "#pay-message")
        assert badge(db, lanes.ivana) is Badge.NEW  # not a member (nor "past due") while another card is tried
        with db.read() as s:
            order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
            assert order.state == "payment_pending"
        # Another card: the saved Visa. The customer already signed, so it pays straight away.
        options = app.screen.query_one("#pay-options")
        options.highlighted = 0
        await pilot.press("enter")
        await at(pilot, "confirmation")
    charges = succeeded_charges(db)
    assert [(c["amount"], c["pm"]) for c in charges] == [(1999, "pm_sim_demo_0")]
    with db.read() as s:
        assert len(s.exec(select(Signature).where(Signature.order_id == order.id)).all()) == 1
        assert s.get(SalesOrder, order.id).state == "completed"


async def test_reader_timeout_then_retry(settings, lanes: Lanes) -> None:  # noqa: ANN001
    from hardware.card_reader.simulated import Outcome

    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("2")
        await at(pilot, "payment")
        app.devices.card_reader.set_outcome(Outcome.TIMEOUT)
        await pilot.press("r")
        await at(pilot, "device-error", "the reader timeout")
        assert "No card was presented in time" in text_of(app, "#device-error-message")
        app.devices.card_reader.set_outcome(Outcome.APPROVE)
        await pilot.press("r")  # Retry: the customer taps the card this time
        await at(pilot, "checkout-summary")
        assert "Visa •••• 4242, exp 12/30" in text_of(app, "#summary-table")
        # Cancel path: back to payment, the reader times out again and the attendant cancels.
        await pilot.press("escape")
        await at(pilot, "payment")
        app.devices.card_reader.set_outcome(Outcome.TIMEOUT)
        await pilot.press("r")
        await at(pilot, "device-error")
        await pilot.press("escape")
        await at(pilot, "payment", "the payment step after cancelling")
        assert "No card was presented in time" in text_of(app, "#pay-message")


async def test_pad_unplugged_mid_signature_then_retry(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("2")
        await at(pilot, "payment")
        await pilot.press("enter")
        await at(pilot, "checkout-summary")
        await pilot.press("enter")
        await at(pilot, "terms")
        await pilot.press("f2")
        await at(pilot, "signature")
        await wait_until(pilot, lambda: len(app.screen.strokes) >= 1, "the customer starts signing")
        app.devices.signature_pad.unplug()
        await at(pilot, "device-error", "the flow pauses with the pad's message")
        assert "Signature pad disconnected" in text_of(app, "#device-error-message")
        with db.read() as s:
            order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
            assert order.state == "terms"  # nothing lost: still at the signature step, terms accepted
        await pilot.press("r")  # plugged back in: Retry
        await at(pilot, "signature")
        await signer_done(pilot)
        await pilot.press("f5")
        await at(pilot, "confirmation")
    with db.read() as s:
        assert len(s.exec(select(Signature).where(Signature.order_id == order.id)).all()) == 1
    assert len(succeeded_charges(db)) == 1


async def test_promotion_codes_through_the_ui(settings, lanes: Lanes) -> None:  # noqa: ANN001
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "payment")
        expected = {"NOPE": "does not exist", "SUMMER25": "expired", "LAUNCH50": "used up",
                    "ULTIMATE10": "not valid for the BASIC plan"}
        promo = app.screen.query_one("#promo")
        for code, text in expected.items():
            promo.value = ""
            await pilot.press("f4", *code, "enter")
            await wait_until(pilot, lambda text=text: text in text_of(app, "#promo-note"), f"{code}: {text}")
            assert app.screen.view.discount_cents == 0 and "Due today $19.99" in text_of(app, "#pay-price")
        promo.value = ""
        await pilot.press("f4", *"firstmonth")  # live: no Enter needed
        await wait_until(pilot, lambda: "Due today $9.99" in text_of(app, "#pay-price"), "the discounted price")
        await pilot.press("enter", "enter")  # Enter applies the code and returns to the cards; Enter continues
        await at(pilot, "checkout-summary")
        assert "FIRSTMONTH" in text_of(app, "#summary-table")


async def test_customer_declines_the_terms(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("3")
        await at(pilot, "payment")
        await pilot.press("enter")
        await at(pilot, "checkout-summary")
        await pilot.press("enter")
        await at(pilot, "terms")
        await pilot.press("f5")  # not read to the end yet: refused with a message
        assert "has not reached the end" in text_of(app, "#terms-message")
        await pilot.press("end")
        await wait_until(pilot, lambda: app.screen.read_to_end, "the end of the terms")
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "back on the session")
        await wait_until(pilot, lambda: any("declined the terms" in n.message for n in app._notifications),
                         "the message that the customer declined")
    assert succeeded_charges(db) == []
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
        assert order.state == "cancelled" and order.membership_id is None
        assert s.exec(select(Membership).where(Membership.customer_id == lanes.ivana_customer_id)).all() == []
        assert s.exec(select(AuditLog).where(AuditLog.action == "order.terms_declined")).one()


async def test_terms_read_to_end_and_agree(settings, lanes: Lanes) -> None:  # noqa: ANN001
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "payment")
        await pilot.press("enter")
        await at(pilot, "checkout-summary")
        await pilot.press("enter")
        await at(pilot, "terms")
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        await wait_until(pilot, lambda: app.screen.read_to_end, "the end of the terms")
        await pilot.press("f5")
        await at(pilot, "signature")
        await wait_until(pilot, lambda: len(app.screen.strokes) >= 1, "the customer starts signing")
        await pilot.press("f3")  # Clear: the customer starts again
        await wait_until(pilot, lambda: app.screen.clears == 1, "the pad cleared its strokes")
        await pilot.press("escape")  # Back: the capture is cancelled, the terms show again
        await at(pilot, "terms")
    from db.models import OrderProgress

    with lanes.db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
        assert s.get(OrderProgress, order.id).terms_accepted_how == "read_to_end"


async def test_member_upgrade_through_the_ui(settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.member)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        current = next(c for c in app.screen.query("PlanCard") if c.plan.relation == "current")
        await pilot.press(str(current.number))
        assert "already on" in text_of(app, "#plans-message") and app.screen.id == "plan-select"
        target = next(c for c in app.screen.query("PlanCard") if c.plan.relation == "upgrade")
        await pilot.click(f"#{target.id}")  # one tap picks a plan
        await at(pilot, "payment")
        await pilot.press("f5")
        await at(pilot, "checkout-summary")
        assert "(upgrade from " in text_of(app, "#summary-table")
        await pilot.press("enter")
        await _sign_and_agree(pilot)
        await at(pilot, "confirmation")
        assert "is now on" in text_of(app, "#confirm-title")
    assert succeeded_charges(db) == []
    with db.read() as s:
        from db.models import Plan

        m = s.exec(select(Membership).where(Membership.customer_id == lanes.member_customer_id,
                                            Membership.status == "active")).first()
        assert s.get(Plan, m.plan_id).code == target.plan.code


async def test_another_terminal_selling_to_the_same_vehicle_is_told_clearly(settings, lanes: Lanes) -> None:  # noqa: ANN001
    from tests.helpers.sale import sale_service

    other = sale_service(lanes.db, "lane-2-term")
    other.open_for_session(lanes.ivana)  # the other terminal got there first
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await wait_until(pilot, lambda: any("lane-2-term" in n.message for n in app._notifications), "the refusal")
        message = next(n.message for n in app._notifications if "lane-2-term" in n.message)
        assert "is already selling a membership to" in message and "Only one sale per vehicle" in message
        assert isinstance(app.screen, SessionDetailScreen)
    with lanes.db.read() as s:
        assert len(s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).all()) == 1


def kill_after_charge(db_url: str, session_id: int) -> None:
    """Run the sale in a real process that SIGKILLs itself right after the charge commits."""
    import os
    import signal
    from pathlib import Path

    from tests.helpers import forked

    root = Path(__file__).resolve().parents[2]
    run = forked.run(["-m", "tests.sale.crashsale", db_url, str(session_id), "lane-1-term"],
                     cwd=root, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert "not killed" not in run.stdout


async def test_killed_after_the_charge_completes_at_restart_without_charging_twice(settings, lanes: Lanes,  # noqa: ANN001
                                                                                    db_url: str) -> None:
    """A real process is SIGKILLed right after the charge commits (before the subscription and activation);
    a fresh app on the same database finishes it at start-up: one charge, one subscription, session MEMBER."""
    kill_after_charge(db_url, lanes.ivana)
    db = lanes.db
    assert len(succeeded_charges(db)) == 1
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
        assert order.state == "payment_pending" and order.gateway_subscription_id is None
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: badge(db, lanes.ivana) is Badge.MEMBER, "the sale finished at start-up")
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        assert "Ultimate Wash Club" in text_of(app, "#customer") and "MEMBER" in text_of(app, "#customer")
    assert [c["amount"] for c in succeeded_charges(db)] == [3999]
    with db.read() as s:
        order = s.get(SalesOrder, order.id)
        assert order.state == "completed" and order.gateway_subscription_id
        assert len(s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "subscription")).all()) == 1
        assert s.exec(select(MembershipVehicle).where(MembershipVehicle.membership_id == order.membership_id)).all()


async def test_killed_after_the_charge_resumes_when_the_sale_is_reopened(settings, lanes: Lanes,  # noqa: ANN001
                                                                         db_url: str) -> None:
    """Same crash; this time the attendant reopens the sale before any replay: the flow resumes at the
    payment step, the charge is not repeated (same idempotency keys), and the confirmation shows."""
    kill_after_charge(db_url, lanes.ivana)
    db = lanes.db
    app = sale_app(settings, db)
    app.replay_outbox = lambda: None  # type: ignore[method-assign] - only the reopened flow may finish it here
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "confirmation", "the resumed sale's confirmation")
        assert "Ultimate Wash Club" in text_of(app, "#confirm-title")
    assert [c["amount"] for c in succeeded_charges(db)] == [3999]
    with db.read() as s:
        assert len(s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "subscription")).all()) == 1
    assert badge(db, lanes.ivana) is Badge.MEMBER


async def test_purchase_from_the_command_palette(settings, lanes: Lanes) -> None:  # noqa: ANN001
    from textual.command import CommandList, CommandPalette

    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Purchase membership", "Migrate membership", "Customer record", "Mark done", "Single wash",
                "Send to tunnel"} <= titles
        await pilot.press("f10")  # Menu
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
        await pilot.press(*"purchase")
        commands = app.screen.query_one(CommandList)
        await wait_until(pilot, lambda: commands.option_count > 0 and "Purchase membership" in str(
            commands.get_option_at_index(0).prompt), "the Purchase command found")
        await pilot.press("down", "enter")
        await at(pilot, "plan-select")
