"""Issue 14 item 3 through Pilot at 80x24, as the attendant works: Agree takes a signature only once
it is finished (real ink, the pen lifted for a moment), Clear makes the simulated pad sign again, and
the stored signature is exactly what the customer drew after the last Clear. SQLite."""

from __future__ import annotations

from sqlmodel import select

from clarity_tui.app import ClarityApp
from db.models import SalesOrder, Signature
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session
from tests.helpers.ui import at, devices_ready, make_app, text_of, wait_until
from tests.helpers.signature import agree_button_disabled, assert_same_drawing, held_signer


def held_app(settings, db, hold_after_points: int, seed: int = 3) -> ClarityApp:  # noqa: ANN001
    return make_app(held_signer(settings, hold_after_points, seed), db, fixed_clock=True)


async def to_signature(pilot, keys: Keys, lanes: Lanes) -> None:  # noqa: ANN001
    await devices_ready(pilot)
    await open_session(pilot, keys, lanes.ivana)
    await keys.press("f2")
    await at(pilot, "plan-select")
    await keys.press("2")
    await at(pilot, "payment")
    await keys.press("enter")
    await at(pilot, "checkout-summary")
    await keys.press("enter")
    await at(pilot, "terms")
    await keys.press("f2")
    await at(pilot, "signature")


def stored_signature(db, session_id: int) -> tuple[SalesOrder, list[Signature]]:  # noqa: ANN001
    with db.read() as s:
        order = s.exec(select(SalesOrder).where(SalesOrder.session_id == session_id)).one()
        return order, list(s.exec(select(Signature).where(Signature.order_id == order.id)))


async def test_f5_while_signing_does_nothing_and_says_why_then_agree_takes_the_finished_signature(
        settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    # The first stroke of seed 3 has 38 points: the customer pauses 12 points into the second one.
    app = held_app(settings, db, 38 + 12)
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_signature(pilot, keys, lanes)
        screen = app.screen
        pad = app.devices.signature_pad
        # The customer is on the second stroke (the first one is real ink, lifted only briefly).
        await wait_until(pilot, lambda: pad.signer_held and len(screen.strokes) == 2 and len(screen.strokes[1].points)
                         == 12, "the second stroke under way")
        assert len(screen.strokes[0].points) == 38 and screen.pen_down
        assert agree_button_disabled(app) and not screen.ready, text_of(app, "#sign-message")
        assert "lift" in text_of(app, "#sign-message")
        await keys.press("f5")
        await keys.press("enter")  # Enter is Agree too
        await pilot.pause()
        assert app.screen is screen and screen.capturing  # still signing: nothing was taken
        message = text_of(app, "#sign-message")
        assert message.startswith("Not yet.") and "lift" in message, message
        assert agree_button_disabled(app)
        order, signatures = stored_signature(db, lanes.ivana)
        assert signatures == [] and order.state != "completed"
        # The customer finishes and lifts the pen: Agree comes on and takes the whole signature.
        pad.release_signer()
        await wait_until(pilot, lambda: pad.signer_finished, "the signer to finish", 30)
        await wait_until(pilot, lambda: screen.ready, "the pad to say the signature is finished")
        assert not agree_button_disabled(app)
        assert "Agree (F5)" in text_of(app, "#sign-message")
        drawn = pad.signer_strokes
        await keys.press("f5")
        await at(pilot, "confirmation", "the confirmation")
    order, signatures = stored_signature(db, lanes.ivana)
    assert order.state == "completed" and len(signatures) == 1
    assert_same_drawing(signatures[0].strokes, drawn, pad)


async def test_clear_then_the_pad_signs_again_and_the_stored_signature_is_the_one_after_clear(
        settings, lanes: Lanes) -> None:  # noqa: ANN001
    db = lanes.db
    app = held_app(settings, db, 10, seed=7)  # each signer pauses 10 points in
    async with app.run_test(size=(80, 24)) as pilot:
        keys = Keys(pilot)
        await to_signature(pilot, keys, lanes)
        screen = app.screen
        pad = app.devices.signature_pad
        await wait_until(pilot, lambda: pad.signer_held, "the first signer under way")
        pad.release_signer()
        await wait_until(pilot, lambda: screen.ready and pad.signer_finished, "the first signature finished")
        first = pad.signer_strokes
        await keys.press("f3")  # Clear: the customer signs again
        await wait_until(pilot, lambda: screen.clears == 1, "the pad cleared")
        assert agree_button_disabled(app) and not screen.ready and screen.clears == 1
        # The simulated pad signs again (before the fix it never did after Clear).
        await wait_until(pilot, lambda: pad.signer_held and pad.signer_strokes != first, "a new signer")
        await wait_until(pilot, lambda: len(screen.strokes) == 1, "the new signature on screen")
        await keys.press("f5")  # not finished yet
        await pilot.pause()
        assert app.screen is screen and text_of(app, "#sign-message").startswith("Not yet.")
        second = pad.signer_strokes
        pad.release_signer()
        await wait_until(pilot, lambda: screen.ready and pad.signer_finished, "the second signature finished", 30)
        await wait_until(pilot, lambda: len(screen.strokes) == len(second), "all of it on screen")
        await keys.press("f5")
        await at(pilot, "confirmation", "the confirmation")
    order, signatures = stored_signature(db, lanes.ivana)
    assert order.state == "completed" and len(signatures) == 1
    assert_same_drawing(signatures[0].strokes, second, pad)
    assert second != first
