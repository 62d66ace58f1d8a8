"""Recovery at the lane (issue 13 item 4): a past-due member's session, "Update card" in one key (F8 / u).

Pilot at 80x24 with the simulated card reader and the simulated gateway: the open invoice is paid on
the card read at the lane and the bubble turns MEMBER; a declining card leaves the member PAST DUE with
the decline in words; an offline gateway queues it (pending sync); a technician may not. Plus snapshots
of the past-due session screen.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingService
from clarity_tui.services.board_view import Badge
from clarity_tui.services.sessions import SessionService
from db.models import Membership, MembershipStatus, MembershipVehicle, SimGatewayObject, Vehicle
from db.models_billing import MembershipPayment
from hardware.plate_reader import PlateEvent
from tests.helpers.actors import ATTENDANT, TECHNICIAN
from tests.helpers.customers import billed_membership
from tests.helpers.sale import fast_devices
from tests.helpers.ui import devices_ready, make_app, tap_bubble, text_of, wait_until
from tests.helpers.clock import FIXED_NOW

REASON = "Your card has insufficient funds."


def past_due_at_lane(db, *, today: dt.date, gw: SimulatedGateway | None, days: int = 5,  # noqa: ANN001
                     amount: int = 2345, paid_through: bool = True) -> tuple[int, int, str | None]:
    """A member's car waiting in Lane 1 whose renewal failed `days` ago: PAST_DUE, paid through then, the
    failed renewal's row (as the billing sync writes it), and with `gw` an open invoice at the gateway
    (without: a membership no gateway bills).
    Returns (session id, membership id, invoice id)."""
    with db.read() as s:
        m, mv = s.exec(select(Membership, MembershipVehicle)
                       .join(MembershipVehicle, MembershipVehicle.membership_id == Membership.id)
                       .where(Membership.status == MembershipStatus.ACTIVE).order_by(Membership.id)).first()
        plate = s.get(Vehicle, mv.vehicle_id).plate
    invoice = None
    if gw is not None:
        _, sub = billed_membership(db, gw, membership=m)
        invoice = gw.open_invoice(sub, amount)
    failed_at = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(9, 30), tzinfo=dt.UTC)
    with db.write() as s:
        row = s.get(Membership, m.id)
        row.status, row.paid_through = MembershipStatus.PAST_DUE, today - dt.timedelta(days=days) if paid_through else None
        row.next_billing_on = today + dt.timedelta(days=30 - days)
        if gw is None:  # a membership no gateway bills: the billing sync leaves it as it is
            row.gateway_subscription_id = None
        s.add(MembershipPayment(membership_id=m.id, customer_id=m.customer_id, kind="renewal_failed",
                                gateway_object_id=f"{invoice or 'in_local'}#1", invoice_id=invoice or "in_local",
                                amount_cents=amount, status="failed", reason=REASON, attempt=1, occurred_at=failed_at))
    sid = SessionService(db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1", region="US-TX", confidence=0.95,
                                                          make="Toyota", model="Camry", colour="Silver"),
                                               Actor.system("test"))
    return sid, m.id, invoice


async def open_past_due(pilot, sid: int) -> SessionDetailScreen:  # noqa: ANN001
    await devices_ready(pilot)
    await tap_bubble(pilot, sid)
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.past_due is not None
                     and app.screen.query_one("#update-card").region.area > 0, "the past-due session and its button")
    await pilot.pause()  # laid out: a click lands on the button
    return app.screen


def bubble_view(app, sid: int):  # noqa: ANN001, ANN201
    return app.screen.query_one(f"#session-{sid}").view


async def test_update_card_pays_the_open_invoice_and_the_bubble_turns_member(settings, demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    today = dt.datetime.now(dt.UTC).date()
    sid, mid, invoice = past_due_at_lane(demo_db, today=today, gw=gw)
    app = make_app(fast_devices(settings), demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_past_due(pilot, sid)
        info = text_of(app, "#recovery-info")
        assert screen.past_due.summary in info and "overdue · $23.45 due" in info and REASON in info
        assert screen.query_one("#recovery").display
        reader = app.devices.card_reader
        # 1. A card the bank declines when it is charged: the decline in words, still PAST DUE.
        reader.tokenize = lambda card: sim_token("charge_decline")
        await pilot.press("f8")
        await wait_until(pilot, lambda: screen.lane_result is not None, "the first card's answer")
        assert screen.lane_result.status == "declined"
        assert "Card declined by the bank. Ask for another card." in screen.lane_result.message
        assert "still past due" in screen.lane_result.message
        await wait_until(pilot, lambda: "Card declined by the bank" in text_of(app, "#recovery-info"), "shown")
        with demo_db.read() as s:
            assert s.get(Membership, mid).status == MembershipStatus.PAST_DUE
            assert s.get(SimGatewayObject, invoice).data["status"] == "open"
        # 2. Another card, read with one key: the open invoice is paid on it.
        reader.tokenize = None
        await pilot.press("u")
        await wait_until(pilot, lambda: screen.lane_result.status != "declined", "the second card's answer")
        assert screen.lane_result.status == "paid" and screen.lane_result.message.startswith("Paid $23.45 on Visa")
        await wait_until(pilot, lambda: screen.past_due is None, "no longer past due")
        assert not screen.query_one("#recovery").display  # hidden with the past due
        assert "Paid $23.45" in text_of(app, "#recovery-info")
        await pilot.press("escape")
        await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{sid}")), "the board")
        await wait_until(pilot, lambda: bubble_view(app, sid).badge == Badge.MEMBER, "the bubble turns MEMBER")
    with demo_db.read() as s:
        m = s.get(Membership, mid)
        assert (m.status, m.pending_sync) == (MembershipStatus.ACTIVE, False)
        assert s.get(SimGatewayObject, invoice).data["status"] == "paid"
        sub = m.gateway_subscription_id
    assert m.paid_through == gw.retrieve_subscription(sub).current_period_end.date() > today  # the paid period's end
    with demo_db.read() as s:
        paid = [o.data for o in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent"))
                if o.data.get("invoice") == invoice and o.data.get("status") == "succeeded"]
    assert [p["amount"] for p in paid] == [2345]  # paid once, on the invoice: no separate charge


async def test_offline_the_card_is_queued_and_the_bubble_shows_pending_sync(settings, demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    today = dt.datetime.now(dt.UTC).date()
    sid, mid, invoice = past_due_at_lane(demo_db, today=today, gw=gw)
    app = make_app(fast_devices(settings), demo_db, actor=ATTENDANT, gateway=gw)  # its network is about to drop
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_past_due(pilot, sid)
        gw.online = False
        await pilot.press("f8")
        await wait_until(pilot, lambda: screen.lane_result is not None, "the answer")
        assert screen.lane_result.status == "queued" and "cannot be reached" in screen.lane_result.message
        await wait_until(pilot, lambda: "pending sync" in text_of(app, "#recovery-info"), "pending sync on the session")
        await pilot.press("escape")
        await wait_until(pilot, lambda: bool(app.screen.query(f"#session-{sid}")), "the board")
        await wait_until(pilot, lambda: bubble_view(app, sid).pending_sync, "⟳SYNC on the bubble")
        assert bubble_view(app, sid).badge == Badge.PAST_DUE
        with demo_db.read() as s:
            assert s.get(SimGatewayObject, invoice).data["status"] == "open"
        gw.online = True
        results = BillingService(demo_db, gw).processor.replay_pending()  # the app's replay timer, once
        assert [r.status for r in results] == ["synced"]
        await wait_until(pilot, lambda: bubble_view(app, sid).badge == Badge.MEMBER
                         and not bubble_view(app, sid).pending_sync, "MEMBER once the network is back")
    with demo_db.read() as s:
        assert s.get(Membership, mid).status == MembershipStatus.ACTIVE
        assert s.get(SimGatewayObject, invoice).data["status"] == "paid"


async def test_a_technician_may_not_update_the_card_and_the_reader_is_not_used(settings, demo_db) -> None:  # noqa: ANN001
    gw = SimulatedGateway(demo_db)
    today = dt.datetime.now(dt.UTC).date()
    sid, mid, _ = past_due_at_lane(demo_db, today=today, gw=gw)
    app = make_app(fast_devices(settings), demo_db, actor=TECHNICIAN)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_past_due(pilot, sid)
        actions = app.devices.card_reader.actions
        await pilot.click("#update-card")  # the button runs the same action as F8
        await wait_until(pilot, lambda: any(n.title == "Not allowed" for n in app._notifications), "the refusal")
        assert app.devices.card_reader.actions == actions and isinstance(app.screen, SessionDetailScreen)
    with demo_db.read() as s:
        assert s.get(Membership, mid).status == MembershipStatus.PAST_DUE


async def test_update_card_is_only_offered_to_a_past_due_member(settings, demo_db) -> None:  # noqa: ANN001
    with demo_db.read() as s:
        mv = s.exec(select(MembershipVehicle).join(Membership, Membership.id == MembershipVehicle.membership_id)
                    .where(Membership.status == MembershipStatus.ACTIVE).order_by(Membership.id)).first()
        plate = s.get(Vehicle, mv.vehicle_id).plate
    sid = SessionService(demo_db).record_plate_read(PlateEvent(plate=plate, lane="Lane 1"), Actor.system("test"))
    app = make_app(fast_devices(settings), demo_db, actor=ATTENDANT)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await tap_bubble(pilot, sid)
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None,
                         "the session")
        await pilot.pause()
        screen = app.screen
        assert screen.past_due is None and not screen.query_one("#recovery").display
        actions = app.devices.card_reader.actions
        await pilot.press("f8")
        await pilot.pause()
        assert app.screen is screen and app.devices.card_reader.actions == actions  # F8 does nothing here


# --- snapshots -----------------------------------------------------------------------------------------


@pytest.fixture
def snap_url(tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path / 'snap.db'}"


@pytest.mark.parametrize("colours", ["full", "sixteen"])
def test_past_due_session_snapshot_80x24(snap_compare, snap_url, monkeypatch, colours) -> None:  # noqa: ANN001
    """Pixels, not backends: SQLite, fixed demo data and clock; a membership no gateway bills, so no sync
    changes it while the screen is drawn."""
    from sqlalchemy import update

    from clarity_tui.config import Settings
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo
    from db.models import VehicleSession

    if colours == "sixteen":
        monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    settings = Settings(database_url=snap_url, terminal_id="snap-term", site={"timezone": "UTC"})
    db = open_database(settings)
    seed_demo(db, customers=40, legacy=20)
    # No paid_through: the badge's own day count would follow the real clock (the session reads the board
    # model at the real now); the recovery line counts from the first failed renewal, on the app's clock.
    sid, _, _ = past_due_at_lane(db, today=FIXED_NOW.date(), gw=None, days=12, amount=3499, paid_through=False)
    with db.write() as s:
        s.exec(update(VehicleSession).where(VehicleSession.id == sid).values(arrived_at=FIXED_NOW - dt.timedelta(minutes=4)))
    app = make_app(fast_devices(settings), db, fixed_clock=True, actor=ATTENDANT)

    async def open_it(pilot) -> None:  # noqa: ANN001
        app.push_screen(SessionDetailScreen(sid))
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.past_due is not None
                         and app.screen.detail is not None, "the past-due session")
        await pilot.pause()
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=open_it)
    finally:
        db.dispose()
