"""Payment method and promotion code.

The saved default card is preselected: Enter continues with it. Alternatives: another saved
card, a new card from the reader (R), or manual keyed entry (K) as the fallback. The promotion
or referral code is validated as it is typed, with the discounted price shown.

With Stripe and a Stripe Terminal reader (issue 12) R takes the card on the reader when paying
(after Agree: a card-present payment that keeps the card for renewals) instead of saving it now,
and K keys it on the reader (MOTO) or texts the customer a Stripe-hosted card page; the number
is sent from this terminal only with raw card data access (README "PCI scope").
"""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.payments.errors import PromotionInvalid
from clarity_tui.screens.checkout_shared.card_entry import ManualCardScreen
from clarity_tui.screens.checkout_shared.common import BACK, banner, devices_of, flow_header, long_date
from clarity_tui.screens.device_action import DeviceActionScreen
from clarity_tui.screens.sale.card_entry import HostedCardScreen
from clarity_tui.services.card_present import keyed_entry_mode, mark_card_present, takes_first_payment_on_reader
from clarity_tui.services.orders import OrderView, SaleService, money
from clarity_tui.wiring import services_of

READER, KEYED = "reader", "keyed"
PROMO_DEBOUNCE = 0.25
READER_LABELS = {False: "New card from the reader · R", True: "Card on the reader when paying · R"}
KEYED_LABELS = {"local": "Key in a card by hand · K", "raw": "Key in a card by hand · K",
                "reader_moto": "Key the card in on the reader when paying · K",
                "hosted_page": "Text the customer a secure card link · K"}


class PaymentScreen(Screen[OrderView | str]):
    """Dismisses with the order once a payment method is chosen, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="payment.back", tooltip="Back to the plans"),
        Binding("f5", "continue", "Continue", id="payment.continue", tooltip="Continue with the highlighted card"),
        Binding("r", "reader", "Reader", id="payment.reader", tooltip="Read a new card on the card reader"),
        Binding("k", "keyed", "Key in", id="payment.keyed", tooltip="Key in a card by hand (fallback)"),
        Binding("f4,ctrl+p", "promo", "Promo code", id="payment.promo", tooltip="Type a promotion or referral code"),
    ]

    def __init__(self, view: OrderView, service: SaleService, notice: str = "") -> None:
        super().__init__(id="payment")
        self.view = view
        self.service = service
        self.notice = notice
        self._debounce: Timer | None = None
        self._promo_wanted = ""  # the code typed now; a check for another one is stale
        self._busy = False
        # Stripe + Stripe Terminal: the card is taken on the reader when paying; how a card is keyed.
        self._on_reader = False
        self._keyed = "local"

    def compose(self) -> ComposeResult:
        v = self.view
        settings = services_of(self).settings
        reader = devices_of(self).card_reader
        self._on_reader = takes_first_payment_on_reader(settings, self.service.gateway, reader)
        self._keyed = keyed_entry_mode(settings, self.service.gateway, reader)
        yield flow_header(self)
        yield Static(banner(v, "Payment") + (f" · {v.plan.name}" if v.plan else ""), classes="flow-banner")
        options = [Option(f"{c.label}{'  (default)' if c.is_default else ''}", id=f"card-{c.id}") for c in v.cards]
        options.append(Option(READER_LABELS[self._on_reader], id=READER))
        options.append(Option(KEYED_LABELS[self._keyed], id=KEYED))
        yield OptionList(*options, id="pay-options")
        with Horizontal(id="promo-row"):
            yield Label("Promo / referral code")
            yield Input(v.promotion_code or "", placeholder="optional", id="promo", disabled=v.is_plan_change)
        yield Static("", id="promo-note")
        yield Static(self._price_text(v), id="pay-price")
        yield Static("", id="pay-spacer")
        yield Static(self.notice or "Enter continues with the highlighted card.", id="pay-message",
                     classes="flow-message -error" if self.notice else "flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Continue · Enter", id="continue", variant="success", action="screen.continue")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Payment method"
        options = self.query_one("#pay-options", OptionList)
        wanted = f"card-{self.view.payment_method_id}" if self.view.payment_method_id else READER
        options.highlighted = options.get_option_index(wanted)
        options.focus()
        if self.view.is_plan_change:
            self._promo_note("Promotions apply to new memberships only.", "")

    @staticmethod
    def _price_text(v: OrderView) -> str:
        if v.is_plan_change and v.plan is not None and v.plan.relation == "downgrade":
            return (f"Due today {money(v.due_today_cents)} · {v.plan.name} from {long_date(v.change_effective_on)} "
                    f"(the next billing date): {v.price_text}")
        if v.is_plan_change:
            return (f"Due today {money(v.due_today_cents)} (the upgrade, to {long_date(v.next_billing_on)}) · "
                    f"then {v.price_text}")
        discount = f"  (-{money(v.discount_cents)} {v.promotion_code})" if v.discount_cents else ""
        return (f"Due today {money(v.due_today_cents)}{discount} · then {v.price_text} "
                f"from {long_date(v.next_billing_on)}")

    def _say(self, text: str, error: bool = False) -> None:
        msg = self.query_one("#pay-message", Static)
        msg.update(text)
        msg.set_class(error, "-error")

    def _promo_note(self, text: str, kind: str) -> None:
        note = self.query_one("#promo-note", Static)
        note.update(text)
        note.set_class(kind == "error", "-error")
        note.set_class(kind == "ok", "-ok")

    def _refresh(self, view: OrderView) -> None:
        self.view = view
        self.query_one("#pay-price", Static).update(self._price_text(view))

    # --- promotion ---------------------------------------------------------------------

    @on(Input.Changed, "#promo")
    def _promo_typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        code = event.value
        self._promo_wanted = code
        self._debounce = self.set_timer(PROMO_DEBOUNCE, lambda: self._check_promo(code))

    @on(Input.Submitted, "#promo")
    def _promo_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._promo_wanted = event.value
        self._check_promo(event.value)
        self.query_one("#pay-options", OptionList).focus()

    @work(thread=True, exclusive=True, group="promo", exit_on_error=False)
    def _check_promo(self, code: str) -> None:
        try:
            if not code.strip():
                view = self.service.clear_promotion(self.view.id)
                self.app.call_from_thread(self._promo_done, view, "", "", code)
                return
            try:
                view = self.service.apply_promotion(self.view.id, code)
            except PromotionInvalid as exc:
                view = self.service.clear_promotion(self.view.id)
                self.app.call_from_thread(self._promo_done, view, str(exc), "error", code)
                return
        except UserFacingError as exc:
            self.app.call_from_thread(self._promo_note, str(exc), "error")
            return
        what = view.promotion_description or view.promotion_code
        self.app.call_from_thread(self._promo_done, view,
                                  f"✓ {what}: -{money(view.discount_cents)}, due today {money(view.due_today_cents)}",
                                  "ok", code)

    def _promo_done(self, view: OrderView, note: str, kind: str, code: str) -> None:
        # A check for an older code can finish after the newer one's (worker threads are not cancelled):
        # its write is undone by checking the code that is typed now, and it never reaches the screen.
        if code != self._promo_wanted:
            self._check_promo(self._promo_wanted)
            return
        self._refresh(view)
        self._promo_note(note, kind)

    def action_promo(self) -> None:
        self.query_one("#promo", Input).focus()

    # --- choosing the card ------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#pay-options")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._use(event.option.id or "")

    def action_continue(self) -> None:
        options = self.query_one("#pay-options", OptionList)
        if options.highlighted is None:
            self._say("Choose how the customer pays.", True)
            return
        self._use(options.get_option_at_index(options.highlighted).id or "")

    def _use(self, option_id: str) -> None:
        if self._busy:
            return
        if option_id == READER:
            self.action_reader()
        elif option_id == KEYED:
            self.action_keyed()
        elif option_id.startswith("card-"):
            self._busy = True
            self._choose_card(int(option_id.removeprefix("card-")))

    @work(thread=True, exclusive=True, group="payment", exit_on_error=False)
    def _choose_card(self, payment_method_id: int) -> None:
        try:
            view = self.service.choose_card(self.view.id, payment_method_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    def _failed(self, message: str) -> None:
        self._busy = False
        self._say(message, True)

    def action_reader(self) -> None:
        if self._busy:
            return
        self._busy = True
        if self._on_reader:
            self._card_at_pay_time(moto=False)
        else:
            self._read_card()

    @work(thread=True, exclusive=True, group="payment", exit_on_error=False)
    def _card_at_pay_time(self, moto: bool) -> None:
        """Nothing is read now: after Agree the customer pays on the reader (or the attendant keys it there)."""
        try:
            mark_card_present(self.service.db, self.view.id, self.service.actor, moto=moto)
            view = self.service.order(self.view.id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    @work(exclusive=True, group="payment-reader", exit_on_error=False)
    async def _read_card(self) -> None:
        reader = devices_of(self).card_reader
        outcome = await self.app.push_screen_wait(DeviceActionScreen.card_from_reader(
            reader, self.service.db, self.service.gateway, customer_id=self.view.customer_id, order_id=self.view.id))
        if not outcome.ok:
            self._failed(f"{outcome.error or 'Cancelled.'} Choose another way to pay, or try the reader again (R).")
            return
        try:
            view = await asyncio.to_thread(self.service.attach_reader_card, self.view.id, outcome.result)
        except UserFacingError as exc:
            self._failed(str(exc))
            return
        self.dismiss(view)

    @work(exclusive=True, group="payment-keyed", exit_on_error=False)
    async def action_keyed(self) -> None:
        if self._busy:
            return
        if self._keyed == "reader_moto":
            self._busy = True
            self._card_at_pay_time(moto=True)
            return
        if self._keyed == "hosted_page":
            view = await self.app.push_screen_wait(HostedCardScreen(self.view, self.service))
        else:
            view = await self.app.push_screen_wait(ManualCardScreen(self.view, self.service))
        if isinstance(view, OrderView):
            self.dismiss(view)

    def action_back(self) -> None:
        if not self._busy:
            self.dismiss(BACK)
