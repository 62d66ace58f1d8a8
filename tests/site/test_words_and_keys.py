"""Issue 14, "Words and keys": what the attendant reads and which keys work, through Pilot at 80x24.

- a migration ends on "Migration complete", and a manager's billing date is not called "kept";
- leaving unsaved edits (the record's General tab, the record's dialogs, the Operators forms) asks
  Save changes / Discard / Keep editing; with nothing changed Esc leaves at once;
- Ctrl+P opens the command palette on the board, the session and the record (a field has focus there);
- the record's footer shows F5/F6 for the tabs;
- placeholders are hints, never a name that could pass for a customer's;
- the audit screen never cuts an id silently;
- the customer's operator notice shows on the session screen and on the sale's first screen.
SQLite (the db fixtures).
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

from sqlmodel import select
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Static

import clarity_tui
from clarity_tui.screens.audit import AuditScreen
from clarity_tui.screens.checkout_shared.confirmation import ConfirmationScreen
from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.operators import AddOperatorModal
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customers import CustomerService
from clarity_tui.seeding.demo import FIRST_NAMES, LAST_NAMES
from clarity_tui.widgets.customer_forms import FormDialog
from clarity_tui.widgets.unsaved_guard import UnsavedChangesDialog
from db.models import AuditLog, Customer, LegacyMember, Note, Operator, Role
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Lanes, Legacy
from tests.helpers.migration_ui import contact_by_sms, migration_app, sign_and_agree, start
from tests.helpers.sale_ui import Keys, open_session, sale_app
from tests.helpers.ui import at, devices_ready, make_app, text_of, wait_until

MANAGER = Actor("Morgan Manager", Role.MANAGER, "lane-1-term", None)


def _manager(db) -> Actor:  # noqa: ANN001
    with db.read() as s:
        op = s.exec(select(Operator).where(Operator.name == "Morgan Manager")).one()
    return Actor(op.name, Role(op.role), "lane-1-term", op.id)


def _ivana(db) -> Customer:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Customer).where(Customer.customer_number == "C100000")).one()


async def _open_record(pilot, customer_id: int) -> CustomerRecordScreen:  # noqa: ANN001
    pilot.app.push_screen(CustomerRecordScreen(customer_id))
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CustomerRecordScreen)
                     and pilot.app.screen.record is not None, "the record loaded")
    return pilot.app.screen


async def _asked(pilot) -> UnsavedChangesDialog:  # noqa: ANN001
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, UnsavedChangesDialog), "the unsaved-changes prompt")
    return pilot.app.screen


# --- 1. confirmations -----------------------------------------------------------------------------


async def test_a_migration_with_a_managers_date_ends_on_migration_complete(settings, legacy: Legacy) -> None:  # noqa: ANN001, F811
    db = legacy.db
    with db.write() as s:
        jane = s.get(LegacyMember, legacy.jane_id)
        jane.next_bill_on = TODAY - dt.timedelta(days=2)  # in the past: a manager chooses the date
        s.add(jane)
    chosen = TODAY + dt.timedelta(days=9)
    app = migration_app(settings, db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")  # That's Me
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f6")
        await at(pilot, "manager-override")
        await pilot.press(*chosen.isoformat(), "enter")
        await at(pilot, "manager-pin")
        await wait_until(pilot, lambda: "PIN for Morgan Manager" in text_of(app, "#manager-pin-who"), "the manager")
        await pilot.press(*"654321", "enter")
        await at(pilot, "migration-card")
        await wait_until(pilot, lambda: f"next charge {chosen:%b %d, %Y}" in text_of(app, "#billing-line"),
                         "the manager's date")
        await pilot.press("f5")
        await at(pilot, "checkout-summary")
        summary = text_of(app, "#summary-table")
        assert "a manager set the first billing date" in summary and "is kept" not in summary, summary
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
        assert app.screen.sub_title == "Migration complete"
        assert "Sale complete" not in app.screen.sub_title
        assert "membership is migrated" in text_of(app, "#confirm-title")
        table = text_of(app, "#confirm-table")
        assert "a manager set the first billing date" in table and "is kept" not in table, table
        assert f"{chosen:%b %d, %Y}" in table


async def test_a_migration_on_the_legacy_date_says_it_is_kept(settings, legacy: Legacy) -> None:  # noqa: ANN001, F811
    app = migration_app(settings, legacy.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, legacy.jane_session)
        await pilot.press("f5")
        await contact_by_sms(pilot)
        await at(pilot, "migration-card")
        await pilot.press("r")
        await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
        await pilot.press("f5")
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
        assert app.screen.sub_title == "Migration complete"
        assert "the billing date is kept" in text_of(app, "#confirm-table")


async def test_a_sale_still_ends_on_sale_complete(settings, lanes: Lanes) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "payment")
        await pilot.press("enter")  # the saved Visa
        await sign_and_agree(pilot)
        await at(pilot, "confirmation")
        assert isinstance(app.screen, ConfirmationScreen)
        assert app.screen.sub_title == "Sale complete"
        assert "Membership active" in text_of(app, "#confirm-title")


# --- 2. unsaved edits -----------------------------------------------------------------------------


async def test_esc_on_the_general_tab_with_edits_asks_save_discard_or_keep(settings, demo_db) -> None:  # noqa: ANN001
    ivana = _ivana(demo_db)
    app = make_app(settings, demo_db, actor=_manager(demo_db))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, ivana.id)
        # Nothing changed: Esc leaves at once.
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.id == "board", "left at once")

        screen = await _open_record(pilot, ivana.id)
        first = screen.query_one("#in-first_name", Input)
        await wait_until(pilot, lambda: app.focused is first, "first name focused")
        await pilot.press("end", *"na")
        assert first.value == "Ivanana"
        await pilot.press("escape")
        dialog = await _asked(pilot)
        words = " ".join(str(b.label) for b in dialog.query("Button"))
        assert "Save changes" in words and "Discard" in words and "Keep editing" in words
        await pilot.press("k")  # Keep editing: back with the typed value
        await wait_until(pilot, lambda: app.screen is screen, "back on the record")
        assert first.value == "Ivanana"

        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("d")  # Discard
        await wait_until(pilot, lambda: app.screen.id == "board", "left without saving")
        assert _ivana(demo_db).first_name == "Ivana"

        screen = await _open_record(pilot, ivana.id)
        first = screen.query_one("#in-first_name", Input)
        await wait_until(pilot, lambda: app.focused is first, "first name focused")
        await pilot.press("end", *"na")
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("s")  # Save changes: saved, then left
        await wait_until(pilot, lambda: app.screen.id == "board", "saved and left")
        assert _ivana(demo_db).first_name == "Ivanana"


async def test_save_changes_that_are_refused_stays_on_the_record_with_the_reason(settings, demo_db) -> None:  # noqa: ANN001
    ivana = _ivana(demo_db)
    app = make_app(settings, demo_db, actor=_manager(demo_db))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, ivana.id)
        email = screen.query_one("#in-email", Input)
        email.value = "not an email"
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: app.screen is screen and "email" in text_of(app, "#general-error").lower(),
                         "the refusal on the record")
        assert email.value == "not an email"
        assert _ivana(demo_db).email == ivana.email


async def test_a_record_dialog_asks_before_dropping_what_was_typed(settings, demo_db) -> None:  # noqa: ANN001
    ivana = _ivana(demo_db)
    app = make_app(settings, demo_db, actor=_manager(demo_db))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, ivana.id)
        screen.show_tab("tab-notes")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog), "the note form")
        await pilot.press("escape")  # nothing typed: closes at once
        await wait_until(pilot, lambda: app.screen is screen, "closed at once")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog), "the note form")
        form = app.screen
        await pilot.press(*"Gate", "space", *"code")
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("escape")  # Keep editing
        await wait_until(pilot, lambda: app.screen is form, "back in the form")
        assert "Gate code" in form.values().values()
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen is screen, "discarded")
    with demo_db.read() as s:
        assert not s.exec(select(Note).where(Note.customer_id == ivana.id, Note.body == "Gate code")).all()


async def test_the_operator_form_asks_before_dropping_what_was_typed(settings, demo_db) -> None:  # noqa: ANN001
    manager = _manager(demo_db)
    app = make_app(settings, demo_db, actor=manager)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(AddOperatorModal(manager))
        await wait_until(pilot, lambda: app.screen.id == "operator-add" and app.focused is not None, "the form")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.id == "board", "closed at once")
        app.push_screen(AddOperatorModal(manager))
        await wait_until(pilot, lambda: app.screen.id == "operator-add" and app.focused is not None, "the form")
        form = app.screen
        await pilot.press(*"Pat")
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("k")
        await wait_until(pilot, lambda: app.screen is form, "back in the form")
        assert form.query_one("#op-name", Input).value == "Pat"
        await pilot.press("escape")
        await _asked(pilot)
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen.id == "board", "discarded")


# --- 3. Ctrl+P ------------------------------------------------------------------------------------


async def test_ctrl_p_opens_the_palette_on_the_board_session_and_record(settings, lanes: Lanes) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await wait_until(pilot, lambda: app.screen.id == "board", "the board")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: CommandPalette.is_open(app), "the palette over the board")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not CommandPalette.is_open(app), "closed")

        await open_session(pilot, Keys(pilot), lanes.ivana)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: CommandPalette.is_open(app), "the palette over the session")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not CommandPalette.is_open(app), "closed")

        await pilot.press("f4")  # the customer record: the first name field has focus
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen)
                         and isinstance(app.focused, Input), "the record, a field focused")
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: CommandPalette.is_open(app), "the palette over the record")


# --- 4. the record's tab keys ---------------------------------------------------------------------


async def test_the_records_footer_shows_the_tab_keys(settings, demo_db) -> None:  # noqa: ANN001
    from textual.widgets._footer import FooterKey

    app = make_app(settings, demo_db, actor=_manager(demo_db))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open_record(pilot, _ivana(demo_db).id)
        await wait_until(pilot, lambda: any(k.key == "f6" and k.region.area for k in screen.query(FooterKey)),
                         "the footer laid out")
        keys = {k.key: k for k in screen.query(FooterKey)}
        for key, words in (("f5", "◂ Tab"), ("f6", "Tab ▸")):
            assert key in keys, sorted(keys)
            assert keys[key].description == words
            region = keys[key].region
            assert region.area > 0 and region.right <= 80 and region.y == 23, (key, region)
        tabs = screen.query_one("#record-tabs")
        before = tabs.active
        await pilot.press("f6")
        await wait_until(pilot, lambda: tabs.active != before, "the next tab")


# --- 5. placeholders ------------------------------------------------------------------------------


def _placeholders() -> list[tuple[str, str]]:
    """Every literal placeholder in the app's screens and widgets (file, text)."""
    root = Path(clarity_tui.__file__).parent
    out = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "placeholder" and isinstance(node.value, ast.Constant):
                out.append((path.name, str(node.value.value)))
        if path.name == "customer.py" and path.parent.name == "sale":
            from clarity_tui.screens.sale.customer import FIELDS

            out += [(path.name, hint) for _, _, hint in FIELDS]
    return out


def test_no_placeholder_looks_like_a_customers_data() -> None:
    names = {n.lower() for n in (*FIRST_NAMES, *LAST_NAMES)}
    found = _placeholders()
    assert len(found) > 10
    for where, text in found:
        words = {w.strip(".,()").lower() for w in text.split()}
        assert "e.g." in text or not words & names, (where, text)  # an example is marked as one
        digits = sum(c.isdigit() for c in text)
        assert digits < 4 or "e.g." in text or "digits" in text or "YYYY" in text, (where, text)


async def test_the_walk_up_form_shows_hints_not_names(settings, lanes: Lanes) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.unknown)
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await pilot.press("1")
        await at(pilot, "customer-quick")
        hints = {i.id: i.placeholder for i in app.screen.query(Input)}
        assert hints["f-first_name"] == "first name" and hints["f-last_name"] == "last name"
        assert "Ivana" not in str(hints.values()) and "Zoom" not in str(hints.values())


# --- 7. ids in the audit trail --------------------------------------------------------------------


async def test_the_audit_screen_never_cuts_an_id_silently(settings, demo_db) -> None:  # noqa: ANN001
    manager = _manager(demo_db)
    with demo_db.write() as s:
        audit.record(s, manager, "membership.paused", "membership", 115, before={"expires_on": None},
                     after={"expires_on": "2027-01-31"})
        audit.record(s, manager, "migration.billing_date_override", "sales_order", 123456789,
                     after={"next_billing_on": "2026-12-01"})
    app = make_app(settings, demo_db, actor=manager)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+u")
        await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen)
                         and app.screen.query_one(DataTable).row_count >= 2, "the audit rows")
        table = app.screen.query_one(DataTable)
        widths = {c.label.plain: c.width for c in table.columns.values()}
        cells = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        for row in cells:
            for (label, width), cell in zip(widths.items(), row[:4], strict=False):
                assert len(cell) <= width, (label, cell)  # nothing left for the table to cut
        membership = next(r for r in cells if r[2] == "membership.paused")
        assert membership[3] == "membership#115"
        override = next(r for r in cells if r[3].endswith("#123456789"))
        assert override[2].endswith("…") and override[3] == "sale…#123456789"
        # The whole id, and the whole action, in the detail below the table.
        table.move_cursor(row=cells.index(override))
        await wait_until(pilot, lambda: "sales_order#123456789" in text_of(app, "#audit-detail"), "the detail")
        assert "migration.billing_date_override" in text_of(app, "#audit-detail")
    with demo_db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.entity_id == "115")).first() is not None


# --- 8. the operator notice -----------------------------------------------------------------------


async def test_the_operator_notice_shows_on_the_session_and_the_first_sale_screen(settings, lanes: Lanes) -> None:  # noqa: ANN001, F811
    CustomerService(lanes.db).add_note(_manager(lanes.db), lanes.ivana_customer_id,
                                       "Disputed a charge in May: offer the receipt by email.", operator_notice=True)
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.ivana)
        await wait_until(pilot, lambda: "Disputed a charge in May" in text_of(app, "#session-notice"),
                         "the notice on the session")
        notice = app.screen.query_one("#session-notice", Static)
        assert notice.region.area > 0 and "Operator notice" in text_of(app, "#session-notice")
        await pilot.press("f2")
        await at(pilot, "plan-select")
        await wait_until(pilot, lambda: "Disputed a charge in May" in text_of(app, "#plans-notice"),
                         "the notice on the plans")
        assert app.screen.query_one("#plans-notice").region.area > 0
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen.id == "session-detail", "back on the session")


async def test_no_notice_line_without_a_notice(settings, lanes: Lanes) -> None:  # noqa: ANN001, F811
    app = sale_app(settings, lanes.db)
    async with app.run_test(size=(80, 24)) as pilot:
        await devices_ready(pilot)
        await open_session(pilot, Keys(pilot), lanes.unknown)
        await pilot.pause()
        assert app.screen.query_one("#session-notice").region.area == 0
