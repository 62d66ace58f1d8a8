"""Contact: the phone number gets a text asking for the email; a countdown runs while the lane
waits for the reply (polled, no webhook). No reply: the attendant types the email in. Every field
is validated on Confirm, which creates the customer account linked to the legacy record.

A phone or email that is already a customer's (issue 14 item 4) is not an error: the shared duplicate
prompt offers that customer. "Use that customer" migrates the legacy member onto them (no second
customer); "Go back" returns to the field, every typed value kept.

Dismisses with the order (customer created) or BACK.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.messaging.base import SentSms
from clarity_tui.screens.checkout_shared.common import BACK, banner, flow_header
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, ValidationFailed
from clarity_tui.services.migration import EmailReply, MigrationService
from clarity_tui.services.orders import OrderView

FIELDS = (("first_name", "First name"), ("last_name", "Last name"), ("phone", "Mobile"), ("email", "Email"))


class ContactScreen(Screen[OrderView | str]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="migration_contact.back", tooltip="Back to the legacy match"),
        Binding("f2", "text_for_email", "Text for email", id="migration_contact.sms",
                tooltip="Text the customer asking them to reply with their email"),
        Binding("f5", "confirm", "Confirm", id="migration_contact.confirm",
                tooltip="Check every field and create the account"),
    ]

    def __init__(self, view: OrderView, service: MigrationService, form: ContactForm, *,
                 reply_timeout: int = 90, poll_interval: float = 2.0) -> None:
        super().__init__(id="migration-contact")
        self.view = view
        self.service = service
        self.form = form
        self.reply_timeout = reply_timeout
        self.poll_every = max(1, round(poll_interval))
        self.sent: SentSms | None = None
        self.remaining = 0
        self._ticks = 0
        self._timer: Timer | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Contact"), classes="flow-banner")
        with Vertical(id="contact-fields"):
            for name, label in FIELDS:
                with Horizontal(classes="contact-row"):
                    yield Label(label)
                    yield Input(getattr(self.form, name), id=f"contact-{name}",
                                placeholder="from the text reply, or typed in" if name == "email" else "")
        yield Static("", id="sms-countdown")
        yield Static("", id="contact-spacer")
        yield Static("Check the phone, then Text for email (F2); or type the email and Confirm (F5).",
                     id="contact-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Text for email · F2", id="sms", variant="primary", action="screen.text_for_email")
            yield Button("Confirm · F5", id="confirm", variant="success", action="screen.confirm")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Contact details"
        target = "email" if self.form.phone else "phone"
        self.query_one(f"#contact-{target}", Input).focus()

    def _say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#contact-message", Static)
        msg.update(text)
        msg.set_class(kind == "error", "-error")
        msg.set_class(kind == "ok", "-ok")

    def _value(self, name: str) -> str:
        return self.query_one(f"#contact-{name}", Input).value

    def _current_form(self) -> ContactForm:
        return ContactForm(**{**self.form.__dict__, **{name: self._value(name) for name, _ in FIELDS}})

    # --- the text message --------------------------------------------------------------------

    def action_text_for_email(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._say("Sending the text…")
        self._send(self._value("phone"))

    @work(thread=True, exclusive=True, group="migration-sms", exit_on_error=False)
    def _send(self, phone: str) -> None:
        try:
            sent = self.service.request_email(self.view.id, phone)
        except ValidationFailed as exc:
            self.app.call_from_thread(self._failed, " ".join(exc.errors.values()), set(exc.errors))
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc), set())
            return
        self.app.call_from_thread(self._sent, sent)

    def _sent(self, sent: SentSms) -> None:
        self._busy = False
        self.sent = sent
        self.remaining, self._ticks = self.reply_timeout, 0
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(1.0, self._tick)
        self._show_countdown()
        self._say("Text sent: ask the customer to reply with their email. You can type it in at any time.")
        self.query_one("#contact-email", Input).focus()

    def _show_countdown(self) -> None:
        m, s = divmod(max(self.remaining, 0), 60)
        self.query_one("#sms-countdown", Static).update(
            f"⧗ Waiting for the reply… {m}:{s:02d}" if self.remaining > 0 else "")

    def _tick(self) -> None:
        self.remaining -= 1
        self._ticks += 1
        self._show_countdown()
        if self._ticks % self.poll_every == 0 or self.remaining <= 0:
            self._poll(self.remaining <= 0)

    @work(thread=True, exclusive=True, group="migration-sms-poll", exit_on_error=False)
    def _poll(self, last: bool) -> None:
        if self.sent is None:
            return
        reply = self.service.check_reply(self.sent)
        self.app.call_from_thread(self._polled, reply, last)

    def _polled(self, reply: EmailReply, last: bool) -> None:
        if reply.email:
            self._stop_waiting()
            self.query_one("#contact-email", Input).value = reply.email
            self._say(f"✓ The customer replied with {reply.email}: check it with them, then Confirm (F5).", "ok")
            self.query_one("#confirm", Button).focus()
        elif reply.problem:
            self._stop_waiting()
            self._say(reply.problem, "error")
            self.query_one("#contact-email", Input).focus()
        elif last:
            self._stop_waiting()
            self._say(f"No reply after {self.reply_timeout} s: ask the customer for their email and type it in, "
                      "then Confirm (F5).", "error")
            self.query_one("#contact-email", Input).focus()

    def _stop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.remaining = 0
        self._show_countdown()

    # --- confirm --------------------------------------------------------------------------------

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        names = [name for name, _ in FIELDS]
        current = (event.input.id or "").removeprefix("contact-")
        if current == names[-1]:
            self.action_confirm()
        elif current in names:
            # At once, not `focus()` (deferred): the next key typed goes to the next field (issue 14).
            self.set_focus(self.query_one(f"#contact-{names[names.index(current) + 1]}", Input))

    def action_confirm(self) -> None:
        if self._busy:
            return
        self._busy = True
        for name, _ in FIELDS:
            self.query_one(f"#contact-{name}", Input).remove_class("-invalid")
        self._say("Checking the details and creating the account…")
        self._confirm(self._current_form())

    @work(thread=True, exclusive=True, group="migration-contact", exit_on_error=False)
    def _confirm(self, form: ContactForm) -> None:
        try:
            view = self.service.confirm_contact(self.view.id, form)
        except ValidationFailed as exc:
            self.app.call_from_thread(self._failed, " ".join(exc.errors.values()), set(exc.errors))
            return
        except DuplicateCustomer as exc:  # the phone or email is a customer's already: offer them
            self.app.call_from_thread(self._offer_existing, exc)
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc), set())
            return
        self.app.call_from_thread(self._confirmed, view)

    def _offer_existing(self, exc: DuplicateCustomer) -> None:
        """The shared prompt (widgets/duplicate_prompt.py); the screen stays busy until it is answered."""
        from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt

        dup = exc.duplicate

        def answered(use: bool | None) -> None:
            if use:
                self._say(f"Migrating onto {dup.name or 'customer #' + dup.customer_number}…")
                self._use_existing(dup.customer_id)
            else:
                self._failed(f"{dup.message} Check the details with the customer, then Confirm (F5).",
                             set(dup.fields))

        self.app.push_screen(DuplicateCustomerPrompt(dup), answered)

    @work(thread=True, exclusive=True, group="migration-contact-use", exit_on_error=False)
    def _use_existing(self, customer_id: int) -> None:
        try:
            view = self.service.use_existing_customer(self.view.id, customer_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc), set())
            return
        self.app.call_from_thread(self._confirmed, view)

    def _confirmed(self, view: OrderView) -> None:
        self._stop_waiting()
        self.dismiss(view)

    def _failed(self, message: str, fields: set[str]) -> None:
        self._busy = False
        self._say(message, "error")
        first = None
        for name, _ in FIELDS:
            if name in fields:
                self.query_one(f"#contact-{name}", Input).add_class("-invalid")
                first = first or name
        if first:
            self.query_one(f"#contact-{first}", Input).focus()

    def action_back(self) -> None:
        if not self._busy:
            self._stop_waiting()
            self.dismiss(BACK)
