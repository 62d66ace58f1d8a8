"""The board follows the billing engine (issue 13 items 2 and 8), through Pilot."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from clarity_tui.services.actor import Actor
from clarity_tui.services.billing_sync import BillingSync
from clarity_tui.services.sessions import SessionService
from clarity_tui.widgets.bubble import SessionBubble
from db.models import Membership
from db.models_billing import BillingSync as SyncRow
from hardware.plate_reader import PlateEvent
from tests.helpers import forked
from tests.helpers.billing import make_member
from tests.helpers.ui import make_app, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _bubble(app, session_id: int) -> SessionBubble | None:  # noqa: ANN001
    found = app.screen.query(f"#session-{session_id}")
    return found.first() if found else None


async def test_a_bubble_turns_past_due_when_the_clock_is_advanced_in_another_process(db, gw, settings, db_url) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1))
    session_id = SessionService(db).record_plate_read(PlateEvent(plate=member.plate, lane="Lane 1"), Actor.system("t"))
    with db.write() as s:  # the camera's read, matched to the customer's car
        from db.models import VehicleSession

        row = s.get(VehicleSession, session_id)
        row.customer_id, row.vehicle_id = member.customer_id, member.vehicle_id
    BillingSync(db, gw, settings).run_once()  # the cursor, before the app starts
    fast = settings.model_copy(update={"billing": settings.billing.model_copy(update={"sync_every_seconds": 0.2})})
    app = make_app(fast, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: (b := _bubble(app, session_id)) is not None and b.border_title == "MEMBER",
                         "the member's bubble")
        # Another process (a technician's shell) moves the simulated gateway's clock: the renewal fails.
        done = forked.run(["-m", "clarity_tui", "--db", db_url, "payments", "clock", "advance", "2"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "CLARITY_BILLING__SIMULATED_FAILURE_RATE": "1"})
        assert done.returncode == 0, done.stderr
        await wait_until(pilot, lambda: _bubble(app, session_id).border_title.startswith("PAST DUE"),
                         "the bubble to turn PAST DUE", timeout=60)
    with db.read() as s:
        assert s.get(Membership, member.membership_id).gateway_status == "past_due"


async def test_a_stale_sync_shows_a_banner_and_the_lane_can_still_sell(db, gw, settings) -> None:  # noqa: ANN001
    member = make_member(db, gw, first_billing=dt.date.today() - dt.timedelta(days=5))
    session_id = SessionService(db).record_plate_read(PlateEvent(plate=member.plate, lane="Lane 1"), Actor.system("t"))
    with db.write() as s:
        from db.models import VehicleSession

        row = s.get(VehicleSession, session_id)
        row.customer_id, row.vehicle_id = member.customer_id, member.vehicle_id
        s.add(SyncRow(name="events", cursor="evt_x", last_success_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=9),
                      last_error="Cannot reach the payment gateway."))
    # The gateway cannot be reached (nothing listens on port 9): every sync pass fails.
    offline = settings.model_copy(update={"payments": settings.payments.model_copy(update={
        "gateway": "stripe", "stripe": settings.payments.stripe.model_copy(
            update={"api_key": "sk_test_offline", "api_base": "http://127.0.0.1:9", "timeout_seconds": 2})})})
    app = make_app(offline, db)
    started = dt.datetime.now(dt.UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.screen.query_one("#billing-banner")
        await wait_until(pilot, lambda: banner.display and "not synced" in str(banner.render()), "the banner")
        # Paid through 5 days ago, grace 3: fails closed.
        await wait_until(pilot, lambda: (b := _bubble(app, session_id)) is not None
                         and b.border_title.startswith("PAST DUE 5d"), "PAST DUE 5d")
        await wait_until(pilot, lambda: _sync_attempted_since(db, started), "a failed sync pass")
        assert banner.display  # still: nothing succeeded
        # The attendant can still open the session and start a sale.
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.id == "session-detail" or "Session" in str(app.screen.sub_title),
                         "the session screen")
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.screen.__class__.__name__ != "SessionDetailScreen", "the sale's first screen")


def _sync_attempted_since(db, when: dt.datetime) -> bool:  # noqa: ANN001
    with db.read() as s:
        row = s.get(SyncRow, "events")
        attempt = row.last_attempt_at if row else None
        if attempt is not None and attempt.tzinfo is None:
            attempt = attempt.replace(tzinfo=dt.UTC)
        return attempt is not None and attempt >= when and row.last_success_at is not None \
            and (row.last_success_at if row.last_success_at.tzinfo else row.last_success_at.replace(tzinfo=dt.UTC)) < when


async def test_a_renewal_the_clock_failed_is_recovered_at_the_lane_with_update_card(db, gw, settings) -> None:  # noqa: ANN001
    """The whole path: the billing clock fails a renewal, the sync makes the bubble PAST DUE, Update card at
    the lane pays the open invoice on the card reader, and the bubble turns MEMBER."""
    from clarity_tui.screens.session_detail import SessionDetailScreen
    from db.models import VehicleSession
    from db.models_billing import PaymentKind
    from db.models import Role
    from tests.helpers.sale import fast_devices
    from tests.helpers.ui import devices_ready, tap_bubble

    member = make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1))
    session_id = SessionService(db).record_plate_read(PlateEvent(plate=member.plate, lane="Lane 1"), Actor.system("t"))
    with db.write() as s:
        row = s.get(VehicleSession, session_id)
        row.customer_id, row.vehicle_id = member.customer_id, member.vehicle_id
    BillingSync(db, gw, settings).run_once()
    assert gw.advance_clock(2, failure_rate=1.0).failures == 1
    fast = fast_devices(settings).model_copy(update={"billing": settings.billing.model_copy(
        update={"sync_every_seconds": 0.2})})
    app = make_app(fast, db, actor=Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: (b := _bubble(app, session_id)) is not None
                         and b.border_title.startswith("PAST DUE"), "the sync turns the bubble PAST DUE")
        await devices_ready(pilot)
        await tap_bubble(pilot, session_id)
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.past_due is not None,
                         "the past-due session")
        screen = app.screen
        await pilot.press("f8")  # the simulated reader reads a good card
        await wait_until(pilot, lambda: screen.lane_result is not None, "the card's answer")
        assert screen.lane_result.status == "paid", screen.lane_result.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: (b := _bubble(app, session_id)) is not None and b.border_title == "MEMBER",
                         "the bubble turns MEMBER")
        # The next sync pass records the recovered payment from the gateway's invoice.paid.
        await wait_until(pilot, lambda: _kinds(db, member.membership_id) == [PaymentKind.RENEWAL_FAILED,
                                                                             PaymentKind.RECOVERED],
                         "the recovered payment row", timeout=60)
    assert gw.open_invoices(member.subscription_id) == []
    with db.read() as s:
        assert s.get(Membership, member.membership_id).status == "active"


def _kinds(db, membership_id: int) -> list[str]:  # noqa: ANN001
    from sqlmodel import select

    from db.models_billing import MembershipPayment

    with db.read() as s:
        return [p.kind for p in s.exec(select(MembershipPayment).where(MembershipPayment.membership_id == membership_id)
                                       .order_by(MembershipPayment.id))]


async def test_the_simulator_runs_the_billing_clock_while_the_demo_plays(db, gw, settings) -> None:  # noqa: ANN001
    """A scenario's billing_days_per_minute moves the simulated gateway's clock a day at a time; the
    palette offers the same by hand in simulator mode."""
    from clarity_tui.simulator.scenario import Scenario

    member = make_member(db, gw, first_billing=dt.date.today() + dt.timedelta(days=1))
    BillingSync(db, gw, settings).run_once()
    start = gw.clock_now()
    scenario = Scenario(billing_days_per_minute=600, initial_vehicles=0, arrivals={"per_minute": 0})
    sim = settings.model_copy(update={"simulate": True})
    app = make_app(sim, db, scenario=scenario)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: gw.clock_now() - start >= dt.timedelta(days=2), "two simulated days")
        titles = [c.title for c in app.billing_commands()]
        assert titles == ["Billing clock: advance 1 day", "Billing clock: advance 7 days"]
        await wait_until(pilot, lambda: membership_paid_through(db, member.membership_id)
                         > dt.date.today() + dt.timedelta(days=20), "the renewal synced")


def membership_paid_through(db, membership_id: int) -> dt.date:  # noqa: ANN001
    with db.read() as s:
        return s.get(Membership, membership_id).paid_through


async def test_while_the_sync_is_stale_a_sale_is_completed_and_its_card_charged(settings, lanes) -> None:  # noqa: ANN001
    """The Events API cannot be reached (every billing pass fails, the banner shows), but the lane still
    sells: the returning customer's Deluxe membership goes through the whole flow and their card is charged."""
    from sqlmodel import select

    from clarity_tui.payments.errors import GatewayUnavailable
    from clarity_tui.payments.simulated import SimulatedGateway
    from db.models import SalesOrder, SimGatewayObject
    from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
    from tests.helpers.ui import at, devices_ready
    from tests.helpers.clock import FIXED_NOW

    db = lanes.db

    class EventsUnreachable(SimulatedGateway):
        def list_events(self, **kw):  # noqa: ANN003, ANN201
            raise GatewayUnavailable("Cannot reach the payment gateway's events.")

        def latest_event_id(self):  # noqa: ANN201
            raise GatewayUnavailable("Cannot reach the payment gateway's events.")

    with db.write() as s:  # the last success was 9 hours before the app's (fixed) now
        s.add(SyncRow(name="events", cursor="evt_x", last_success_at=FIXED_NOW - dt.timedelta(hours=9),
                      last_error="Cannot reach the payment gateway."))
    # The app's start-up pass is the failed pass waited for below. No fast sync interval: a failing pass every
    # 0.2 s commits each time, and each commit reloads the board and the session screen under the sale (about
    # 25 passes and 2.5 times the session reloads in this test), the likely cause of its 53 s on a loaded machine.
    app = sale_app(settings, db, gateway=EventsUnreachable(db))  # the terminal's gateway: its events are unreachable
    started = dt.datetime.now(dt.UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.screen.query_one("#billing-banner")
        await wait_until(pilot, lambda: banner.display and "not synced" in str(banner.render()), "the banner")
        await wait_until(pilot, lambda: _sync_attempted_since(db, started), "a failed sync pass")
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.ivana)
        await keys.press("f2")
        await at(pilot, "plan-select")
        await keys.press("2")  # Deluxe
        await at(pilot, "payment")
        await keys.press("enter")  # the saved Visa
        await at(pilot, "checkout-summary")
        await keys.press("enter")
        await at(pilot, "terms")
        await keys.press("f2")
        await at(pilot, "signature")
        await signer_done(pilot)
        await keys.press("f5")  # Agree: the card is charged
        await at(pilot, "confirmation", "the confirmation")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.id != "confirmation", "back from the confirmation")
        with db.read() as s:
            row = s.get(SyncRow, "events")
            assert row.last_error and "events" in row.last_error  # still failing: nothing succeeded
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == lanes.ivana)).one()
        charges = [r.data for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))
                   if r.data.get("status") == "succeeded"]
    assert order.state == "completed"
    assert [c["amount"] for c in charges] == [2999]
