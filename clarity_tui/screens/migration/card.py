"""Card on file: nothing is charged today; the card is saved (SetupIntent) for the next charge on
the legacy billing date. The reader comes first (recommended), keyed entry is the fallback. A
legacy date in the past is refused here with the reason, and a manager may choose a date (F6).

Dismisses with the order (card attached, date usable) or BACK.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.card_entry import ManualCardScreen
from clarity_tui.screens.checkout_shared.common import BACK, banner, devices_of, flow_header
from clarity_tui.screens.device_action import DeviceActionScreen
from clarity_tui.services.migration import BillingDate, MigrationService, check_override_day
from clarity_tui.services.orders import OrderView, money
from clarity_tui.services.plan_pricing import period_suffix
from clarity_tui.widgets.manager_pin import manager_approval

READER, KEYED = "reader", "keyed"


class CardOnFileScreen(Screen[OrderView | str]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="migration_card.back", tooltip="Back to the contact details"),
        Binding("r", "reader", "Reader", id="migration_card.reader", tooltip="Read the card on the card reader"),
        Binding("k", "keyed", "Key in", id="migration_card.keyed", tooltip="Key in a card by hand (fallback)"),
        Binding("f6", "override", "Manager override", id="migration_card.override",
                tooltip="A manager chooses the next billing date"),
        Binding("f5", "continue", "Continue", id="migration_card.continue", tooltip="Continue to the checkout"),
    ]

    def __init__(self, view: OrderView, service: MigrationService, billing: BillingDate, notice: str = "") -> None:
        super().__init__(id="migration-card")
        self.view = view
        self.service = service
        self.billing = billing
        self.notice = notice
        self._busy = False

    def compose(self) -> ComposeResult:
        v = self.view
        yield flow_header(self)
        yield Static(banner(v, "Card on file") + (f" · {v.plan.name}" if v.plan else ""), classes="flow-banner")
        yield Static("", id="billing-line")
        yield Static("", id="card-current")
        yield OptionList(Option("Card reader (recommended) · R", id=READER),
                         Option("Key in a card by hand · K", id=KEYED), id="card-options")
        yield Static("", id="card-spacer")
        yield Static("", id="card-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Manager override · F6", id="override", variant="warning", action="screen.override")
            yield Button("Continue · F5", id="continue", variant="success", action="screen.continue")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Card on file · no charge today"
        options = self.query_one("#card-options", OptionList)
        options.highlighted = 0
        options.focus()
        self._refresh(self.view, self.billing)
        if self.notice:
            self._say(self.notice, "error")
        else:
            self._say("Take the card on the reader (R) — nothing is charged today." if self.view.card is None else
                      "Card saved on the order: Continue (F5), or take another card.")

    def _refresh(self, view: OrderView, billing: BillingDate) -> None:
        self.view, self.billing = view, billing
        line = self.query_one("#billing-line", Static)
        if billing.problem:
            line.update(billing.problem)
            line.add_class("-error")
        else:
            period = period_suffix(view.plan) if view.plan else "/mo"
            price = f" · then {money(view.subtotal_cents)}{period}{view.tax_note}" if view.subtotal_cents else ""
            line.update(billing.label + price + ("  (chosen by a manager)" if billing.overridden else
                                                 "  (same as the old system)"))
            line.remove_class("-error")
        card = view.card
        self.query_one("#card-current", Static).update(f"Card: {card.label}" if card else "Card: none yet")

    def _say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#card-message", Static)
        msg.update(text)
        msg.set_class(kind == "error", "-error")
        msg.set_class(kind == "ok", "-ok")

    async def _reload(self) -> None:
        view = await asyncio.to_thread(self.service.order, self.view.id)
        billing = await asyncio.to_thread(self.service.billing_date, self.view.id)
        self._refresh(view, billing)

    @on(OptionList.OptionSelected, "#card-options")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == READER:
            self.action_reader()
        else:
            self.action_keyed()

    def action_reader(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._read_card()

    @work(exclusive=True, group="migration-reader", exit_on_error=False)
    async def _read_card(self) -> None:
        reader = devices_of(self).card_reader
        try:
            outcome = await self.app.push_screen_wait(
                DeviceActionScreen.card_from_reader(reader, self.service.db, self.service.billing.gateway,
                                                    customer_id=self.view.customer_id, order_id=self.view.id,
                                                    note=" Nothing is charged today."))
            if not outcome.ok:
                self._say(f"{outcome.error or 'Cancelled.'} Try the reader again (R), or key the card in (K).",
                          "error")
                return
            try:
                await asyncio.to_thread(self.service.attach_reader_card, self.view.id, outcome.result)
            except UserFacingError as exc:
                self._say(str(exc), "error")
                return
            await self._reload()
            self._say("✓ Card read: it is saved when the customer agrees. Continue (F5).", "ok")
        finally:
            self._busy = False

    @work(exclusive=True, group="migration-keyed", exit_on_error=False)
    async def action_keyed(self) -> None:
        if self._busy:
            return
        view = await self.app.push_screen_wait(ManualCardScreen(self.view, self.service))
        if isinstance(view, OrderView):
            await self._reload()
            self._say("✓ Card accepted: it is saved when the customer agrees. Continue (F5).", "ok")

    @work(exclusive=True, group="migration-override", exit_on_error=False)
    async def action_override(self) -> None:
        billing = await self.app.push_screen_wait(ManagerOverrideScreen(self.view, self.service, self.billing))
        if isinstance(billing, BillingDate):
            await self._reload()
            self._say(f"✓ A manager set the next charge to {billing.effective:%b %d, %Y}.", "ok")

    def action_continue(self) -> None:
        if self.billing.problem:
            self._say(self.billing.problem, "error")
            return
        if self.view.card is None:
            self._say("Take a card first: the reader (R) or keyed (K). Nothing is charged today.", "error")
            return
        self.dismiss(self.view)

    def action_back(self) -> None:
        if not self._busy:
            self.dismiss(BACK)


def parse_day(text: str) -> dt.date:
    """The date a manager typed; its problem (not a date, a day that does not exist: a RowProblem, a
    UserFacingError) is said to them."""
    from clarity_tui.services.legacy import parse_date

    day = parse_date(text, "MDY")
    if day is None:
        raise UserFacingError("Enter the date of the next charge, e.g. 2026-12-15 or 12/15/2026.")
    return day


class ManagerOverrideScreen(ModalScreen[BillingDate | None]):
    """A manager chooses the next billing date: the date here, then the manager's approval in place
    (widgets/manager_pin: their name and PIN through the one PIN check, with its lockout). The change
    is audited with the manager's name."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="manager_override.cancel", tooltip="Keep the date as it is"),
        Binding("f5", "save", "Set date", id="manager_override.save",
                tooltip="Set the next billing date (a manager approves it with their PIN)"),
    ]

    def __init__(self, view: OrderView, service: MigrationService, billing: BillingDate) -> None:
        super().__init__(id="manager-override", classes="dialog")
        self.view = view
        self.service = service
        self.billing = billing
        self._busy = False

    def compose(self) -> ComposeResult:
        legacy = self.billing.legacy.strftime("%b %d, %Y") if self.billing.legacy else "none"
        with Vertical():
            yield Label("Manager override: next billing date", classes="dialog-title")
            yield Static(f"Legacy next billing date: {legacy}. Nothing is charged today. A manager approves "
                         "the new date with their PIN.", classes="dialog-body")
            with Horizontal(classes="override-row"):
                yield Label("Next charge on")
                yield Input(placeholder="YYYY-MM-DD", id="override-date")
            yield Static("", id="override-error", markup=False)
            with Horizontal():
                yield Button("Cancel · Esc", id="cancel", action="screen.cancel")
                yield Button("Set date · F5", id="save", variant="success", action="screen.save")

    def on_mount(self) -> None:
        self.query_one("#override-date", Input).focus()

    @on(Input.Submitted)
    def _next(self, _: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        if self._busy:
            return
        try:
            day = parse_day(self.query_one("#override-date", Input).value)
            check_override_day(day, self.service.today())  # before a manager's PIN is asked for
        except UserFacingError as exc:
            self.query_one("#override-error", Static).update(str(exc))
            return
        self._busy = True
        self.query_one("#override-error", Static).update("")
        self._approve_and_save(day)

    @work(exclusive=True, group="manager-override", exit_on_error=False)
    async def _approve_and_save(self, day: dt.date) -> None:
        try:
            manager = await manager_approval(
                self.app, "migration.billing_date_override", entity="sales_order", entity_id=self.view.id,
                why=f"Approve the next charge on {day:%b %d, %Y} for {self.view.customer_name or 'this member'} "
                    "(a migrated membership: nothing is charged today).")
            if manager is None:
                self.query_one("#override-error", Static).update("Not approved: the date is unchanged.")
                return
            billing = await asyncio.to_thread(self.service.override_billing_date, self.view.id, day, manager)
        except UserFacingError as exc:
            self.query_one("#override-error", Static).update(str(exc))
            return
        finally:
            self._busy = False
        self.dismiss(billing)

    def action_cancel(self) -> None:
        if not self._busy:
            self.dismiss(None)
