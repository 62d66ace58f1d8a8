"""Issue 14 item 3 in the migration flow (the same signature step as the sale): F5 before the signature
is finished does nothing, Clear makes the simulated pad sign again, and the migration stores exactly what
the customer drew after the last Clear. Pilot at 80x24, SQLite."""

from __future__ import annotations

from sqlmodel import select

from db.models import SalesOrder, Signature
from tests.helpers.lanes import Legacy
from tests.helpers.migration_ui import contact_by_sms, start
from tests.helpers.signature import agree_button_disabled, assert_same_drawing, held_signer
from tests.helpers.ui import at, make_app, text_of, wait_until


async def test_migration_stores_the_signature_drawn_after_clear(settings, legacy: Legacy) -> None:  # noqa: ANN001
    db = legacy.db
    settings.messaging.simulated_reply = "auto"  # type: ignore[assignment]
    settings.messaging.simulated_reply_after_seconds = 0.1
    settings.messaging.poll_interval_seconds = 1.0
    app = make_app(held_signer(settings, 10, seed=11), db, fixed_clock=True)  # each signer pauses 10 points in
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")  # That's Me
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f5")
        await at(pilot, "checkout-summary")
        await pilot.press("enter")
        await at(pilot, "terms")
        await pilot.press("f2")
        await at(pilot, "signature")
        screen = app.screen
        pad = app.devices.signature_pad
        await wait_until(pilot, lambda: pad.signer_held and len(screen.strokes) == 1, "the customer signing")
        await pilot.press("f5")  # too early: the pen is still down
        await pilot.pause()
        assert app.screen is screen and text_of(app, "#sign-message").startswith("Not yet.")
        assert agree_button_disabled(app)
        first = pad.signer_strokes
        await pilot.press("f3")  # Clear, mid-stroke
        await wait_until(pilot, lambda: screen.clears == 1, "the pad cleared")
        await wait_until(pilot, lambda: pad.signer_held and pad.signer_strokes != first, "the customer signs again")
        second = pad.signer_strokes
        pad.release_signer()
        await wait_until(pilot, lambda: screen.ready and pad.signer_finished, "the new signature finished", 30)
        await pilot.press("f5")
        await at(pilot, "confirmation")
        assert "membership is migrated" in text_of(app, "#confirm-title")
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == legacy.jane_session)).one()
        signatures = list(s.exec(select(Signature).where(Signature.order_id == order.id)))
    assert len(signatures) == 1
    assert_same_drawing(signatures[0].strokes, second, pad)
