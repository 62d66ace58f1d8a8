"""Issue 18's single wash as an attacker and a tired attendant use it: a menu price typed oddly on the CLI, a
price changed on the menu between choosing and paying, a receipt contact pasted with control characters or a
whole page of text. Each refusal is one clear line; nothing is charged at a price the menu no longer has.

Real parts: the database (SQLite and PostgreSQL), the outbox with the simulated gateway and card reader, the
root command through click's CliRunner."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner, Result

from sqlmodel import col, select

from clarity_tui import cli_menu
from clarity_tui.cli import cli
from clarity_tui.config import Settings
from clarity_tui.services.orders.wash_sale import WashSaleError
from clarity_tui.services.receipts import ReceiptError
from clarity_tui.services.wash_menu import WashMenu
from db.models import SalesOrder, SimGatewayObject
from tests.helpers.actors import MANAGER
from tests.helpers.lanes import Lanes
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, text_of, wait_until
from tests.helpers.wash import charge_rows, lines_of, order_row, receipt_row_of, wash_lane

pytestmark = pytest.mark.both_databases  # money: both databases


@pytest.fixture
def menu_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The `menu` group on the root command, as `clarity_tui.cli.COMMAND_MODULES` registers it."""
    cli.list_commands(click.Context(cli))
    if "menu" not in cli.commands:
        probe = click.Group()
        cli_menu.register(probe)
        monkeypatch.setitem(cli.commands, "menu", probe.commands["menu"])
    yield


def set_price(db_url: str, price: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, "menu", "set", "WAX", "--name", "Hot wax", "--kind", "extra",
                                    "--price", price, "--manager", "Morgan Manager", "--manager-pin", "654321"])


@pytest.mark.parametrize(("price", "message"), [
    # Before: a Decimal overflow in quantize, a traceback and exit 1.
    ("1e30", "'1e30' is not a price: give dollars and cents, e.g. 15.00."),
    ("99999999999999999999999999999999", "'99999999999999999999999999999999' is more than a menu item may cost: "
                                         "give at most $1,000.00."),
    # Before: taken as $1,000.00, $10.00, $1,000.00 and $15.00 (Decimal's own syntax, not a price).
    ("1e3", "'1e3' is not a price: give dollars and cents, e.g. 15.00."),
    ("0.1e2", "'0.1e2' is not a price: give dollars and cents, e.g. 15.00."),
    ("1_000", "'1_000' is not a price: give dollars and cents, e.g. 15.00."),
    ("１５", "'１５' is not a price: give dollars and cents, e.g. 15.00."),
])
def test_odd_menu_prices_are_one_line_and_exit_2(menu_command: None, demo_db: object, db_url: str, price: str,
                                                 message: str) -> None:
    result = set_price(db_url, price)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]
    assert "Traceback" not in result.output


def test_plain_prices_still_work(menu_command: None, demo_db: object, db_url: str) -> None:
    result = set_price(db_url, "$1,000.00")
    assert result.exit_code == 0, result.output
    assert "$1000.00" in result.stdout


def _reprice(lanes: Lanes, code: str, cents: int) -> None:
    """A manager changes the item's price (keeping its name, kind, tunnel code and plans)."""
    menu = WashMenu(lanes.db, MANAGER)
    item = next(i for i in menu.items() if i.code == code)
    menu.set_item(code, name=item.name, kind=item.kind, price_cents=cents, tunnel_code=item.tunnel_code,
                  plans=item.plans)


@pytest.mark.parametrize("new_cents", [1800, 1200])  # raised (the site loses), lowered (the customer overpays)
def test_a_price_changed_between_choosing_and_paying_is_not_charged_at_the_old_price(lanes: Lanes,
                                                                                   new_cents: int) -> None:
    """Before: the wash was charged at the price on the order's lines ($15.00), whatever the menu said now."""
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    assert lane.service.choose(order_id, "DELUXE", []).total_cents == 1500
    _reprice(lanes, "DELUXE", new_cents)

    with pytest.raises(WashSaleError) as refused:
        lane.pay(order_id)
    assert str(refused.value) == (f"The price of Deluxe wash changed from $15.00 to ${new_cents / 100:.2f} since it "
                                  "was chosen: choose the wash again to show the customer the new total. Nothing "
                                  "was charged.")
    assert charge_rows(lanes.db, order_id) == []
    assert order_row(lanes.db, order_id).state == "draft"

    # Chosen again, the new price is what the reader takes.
    assert lane.service.choose(order_id, "DELUXE", []).total_cents == new_cents
    assert lane.pay(order_id).paid
    assert lines_of(lanes.db, order_id) == [("package", "DELUXE", new_cents)]
    (row,) = charge_rows(lanes.db, order_id)
    assert (row.payload or {})["amount_cents"] == new_cents == order_row(lanes.db, order_id).due_today_cents


@pytest.mark.parametrize("contact", [
    "pat@example.com\nBcc: everyone@example.com",  # before: a message of two lines
    "(512) 555-0143\x1b[2J",                        # before: the escape sequence echoed back to the screen
    "pat\x00@example.com",                          # before: a NUL echoed back
    "\u202e3410-555 (215)",                         # a right-to-left override: before, taken as a number
])
def test_a_receipt_contact_with_control_characters_is_refused_in_one_clean_line(lanes: Lanes, contact: str) -> None:
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    with pytest.raises(ReceiptError) as refused:
        lane.service.set_receipt(order_id, contact)
    assert str(refused.value) == ("The mobile number or email address has a control character in it (a paste or a "
                                  "stray key): clear it and type it again.")
    assert receipt_row_of(lanes.db, order_id) is None


def test_a_pasted_page_as_the_receipt_contact_gets_a_short_message(lanes: Lanes) -> None:
    """Before: the 5,000 characters were echoed back in the error (a message as long as the paste)."""
    lane = wash_lane(lanes.db)
    order_id = lane.service.open_for_session(lanes.unknown).order_id
    with pytest.raises(ReceiptError) as refused:
        lane.service.set_receipt(order_id, "a" * 5000 + "@example.com")
    assert str(refused.value) == ("That is 5012 characters, too long for a mobile number or an email address (at most "
                                  "254): enter it again.")
    assert receipt_row_of(lanes.db, order_id) is None


async def test_a_burst_of_menu_keys_then_f5_charges_exactly_what_was_typed(settings: Settings, lanes: Lanes) -> None:
    """Keys typed faster than the database answers (as over SSH). Before: each key built on the last view the
    screen had been shown, so the extras typed before the package's answer were refused ("Choose a package
    first"), an extra typed twice stayed on, and F5 raced the choices: the payment ran on whatever the order
    held when its transaction got in ("Choose the package before taking the payment", or a wash other than
    the one typed)."""
    db = lanes.db
    app = sale_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        keys = Keys(pilot)
        await open_session(pilot, keys, lanes.unknown)
        await keys.press("w")
        await at(pilot, "wash-sale")
        await wait_until(pilot, lambda: len(app.screen.query(".wash-item")) >= 6, "the menu")
        order_id = app.screen.view.order_id  # type: ignore[attr-defined]
        # The order's row held (the database busy): every key's worker waits, as on a slow link.
        with db.write() as s:
            s.exec(select(SalesOrder).where(col(SalesOrder.id) == order_id).with_for_update()).one()
            # Ultimate, +tire shine, +ceramic, -tire shine, +underbody, then Basic after all; pay.
            await pilot.press("3", "a", "b", "a", "c", "1", "f5")
        await wait_until(pilot, lambda: "PAID" in text_of(app, "#wash-total")
                         or "-error" in app.screen.query_one("#wash-message").classes, "the payment")
        assert text_of(app, "#wash-message").startswith("Paid"), text_of(app, "#wash-message")
    assert [(kind, code) for kind, code, _ in lines_of(db, order_id)] == [
        ("package", "BASIC"), ("extra", "CERAMIC"), ("extra", "UNDERBODY")]
    order = order_row(db, order_id)
    assert order.state == "completed"
    with db.read() as s:
        intents = [o.data or {} for o in s.exec(select(SimGatewayObject)
                                                .where(SimGatewayObject.kind == "payment_intent"))]
    paid = [p for p in intents if p.get("status") == "succeeded"]
    assert [p["amount"] for p in paid] == [order.due_today_cents]
