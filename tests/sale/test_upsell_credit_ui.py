""""Join today" through Textual's Pilot at 80x24: the wash credit is one line on the checkout summary, the
signature screen and the confirmation (the receipt), on SQLite."""

from __future__ import annotations

from clarity_tui.services.orders import SaleService
from clarity_tui.services.upsell import join_today
from clarity_tui.wiring import services_of
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of
from tests.helpers.upsell import paid_wash


async def test_the_credit_is_one_line_on_checkout_signature_and_receipt(settings, lanes: Lanes) -> None:
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        # The wash was paid at this terminal; "Join today" opened the session's membership order with it.
        sale = SaleService.from_services(services_of(app), app.actor)
        join_today(sale, paid_wash(db, lanes.ivana, 1500, terminal=sale.terminal), session_id=lanes.ivana)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.ivana)
        await keys.press("f2")
        await at(pilot, "plan-select")
        await keys.press("2")  # Deluxe, $29.99
        await at(pilot, "payment")
        await keys.press("enter")  # the saved card
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "Today's wash credit" in summary and "-$15.00" in summary
        assert "$14.99" in summary  # due today: $29.99 less the wash
        await keys.press("enter")
        await at(pilot, "terms")
        await keys.press("f2")
        await at(pilot, "signature")
        assert text_of(app, "#sign-credit") == "Today's wash credit -$15.00 · due today $14.99"  # spaces collapsed
        await signer_done(pilot)
        await keys.press("f5")
        await at(pilot, "confirmation")
        receipt = text_of(app, "#confirm-table")
        assert "Today's wash credit" in receipt and "-$15.00" in receipt
