"""The customer for an unknown vehicle: a quick form (name, phone, email) or search-and-link."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.messages import SearchCustomers
from clarity_tui.screens.checkout_shared.common import BACK, banner, flow_header
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, ValidationFailed
from clarity_tui.services.identity import InvalidEmail, InvalidPhone, display_phone, normalize_email, normalize_phone
from clarity_tui.services.orders import OrderView, SaleService

# Placeholders are hints, never anything that could pass for a customer's data (issue 14).
FIELDS = (("first_name", "First name", "first name"), ("last_name", "Last name", "last name"),
          ("phone", "Phone", "mobile number, 10 digits"), ("email", "Email", "e.g. name@example.com"))


class CustomerQuickScreen(Screen[OrderView | str]):
    """Dismisses with the order once a customer is linked, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="customer_quick.back", tooltip="Back to the plans"),
        Binding("f5", "save", "Continue", id="customer_quick.save", tooltip="Create the customer and continue"),
        Binding("f3,ctrl+l", "search", "Search & link", id="customer_quick.search",
                tooltip="Find an existing customer and link this vehicle to them"),
    ]

    def __init__(self, view: OrderView, service: SaleService, phone_region: str = "US") -> None:
        super().__init__(id="customer-quick")
        self.view = view
        self.service = service
        self.phone_region = phone_region
        self._busy = False

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Customer") + " · none on file", classes="flow-banner")
        with Grid(id="quick-form"):
            for name, label, placeholder in FIELDS:
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"f-{name}")
                yield Static("", id=f"note-{name}", classes="field-note")
        yield Static("", id="quick-spacer")
        yield Static("Enter moves to the next field; Enter on Email (or F5) continues. Existing customer? F3.",
                     id="quick-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Search & link · F3", id="search", variant="primary", action="screen.search")
            yield Button("Continue · F5", id="save", variant="success", action="screen.save")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Customer"
        self.query_one("#f-first_name", Input).focus()

    def _value(self, name: str) -> str:
        return self.query_one(f"#f-{name}", Input).value

    def _note(self, name: str, text: str, kind: str = "") -> None:
        note = self.query_one(f"#note-{name}", Static)
        note.update(text)
        note.set_class(kind == "error", "-error")
        note.set_class(kind == "ok", "-ok")
        self.query_one(f"#f-{name}", Input).set_class(kind == "error", "-invalid")

    @on(Input.Changed, "#f-phone")
    def _phone_changed(self, event: Input.Changed) -> None:
        # Live check: phonenumbers, with the site's region for numbers typed without a country code.
        if not event.value.strip():
            self._note("phone", "")
            return
        try:
            self._note("phone", "✓ " + display_phone(normalize_phone(event.value, self.phone_region), self.phone_region), "ok")
        except InvalidPhone:
            self._note("phone", f"Not yet a valid {self.phone_region} number", "")

    @on(Input.Changed, "#f-email")
    def _email_changed(self, event: Input.Changed) -> None:
        if not event.value.strip():
            self._note("email", "")
            return
        try:
            self._note("email", "✓ " + normalize_email(event.value), "ok")
        except InvalidEmail:
            self._note("email", "Not yet a valid address", "")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        names = [n for n, _, _ in FIELDS]
        current = (event.input.id or "").removeprefix("f-")
        if current == names[-1]:
            self.action_save()
        else:
            # At once, not `focus()` (deferred): the next key typed goes to the next field (issue 14).
            self.set_focus(self.query_one(f"#f-{names[names.index(current) + 1]}", Input))

    def action_save(self) -> None:
        if self._busy:
            return
        self._busy = True
        form = ContactForm(first_name=self._value("first_name"), last_name=self._value("last_name"),
                           phone=self._value("phone"), email=self._value("email"))
        errors: dict[str, str] = {}
        if not form.phone.strip():
            errors["phone"] = "Enter the customer's phone number (it is how we reach them about billing)."
        if not form.email.strip():
            errors["email"] = "Enter the customer's email address (receipts and the web login use it)."
        if errors:
            self._show_errors(errors)
            return
        self._create(form)

    @work(thread=True, exclusive=True, group="customer-quick", exit_on_error=False)
    def _create(self, form: ContactForm) -> None:
        try:
            view = self.service.set_new_customer(self.view.id, form)
        except ValidationFailed as exc:
            self.app.call_from_thread(self._show_errors, exc.errors)
            return
        except DuplicateCustomer as exc:  # the phone or email is a customer's already: offer them
            self.app.call_from_thread(self._offer_existing, exc)
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    def _show_errors(self, errors: dict[str, str]) -> None:
        self._busy = False
        for name, _, _ in FIELDS:
            if name in errors:
                self._note(name, errors[name], "error")
        first = next((n for n, _, _ in FIELDS if n in errors), None)
        if first:
            self.query_one(f"#f-{first}", Input).focus()
        self._failed("Fix the fields marked in red; what you typed is kept.")

    def _offer_existing(self, exc: DuplicateCustomer) -> None:
        from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt

        def answered(use: bool | None) -> None:
            if use:
                self._link(exc.duplicate.customer_id)
            else:
                self._failed(f"{exc.duplicate.message} Check the details, or press F3 to search.")
                self.query_one(f"#f-{exc.duplicate.fields[0]}", Input).focus()

        self.app.push_screen(DuplicateCustomerPrompt(exc.duplicate), answered)

    def _failed(self, message: str) -> None:
        self._busy = False
        msg = self.query_one("#quick-message", Static)
        msg.update(message)
        msg.add_class("-error")

    def action_search(self) -> None:
        """Customer search as a picker (the app opens it): the chosen customer is linked to the order."""

        def picked(customer_id: int | None) -> None:
            if customer_id is not None:
                self._link(customer_id)

        typed = " ".join(v for v in (self._value("first_name"), self._value("last_name")) if v.strip())
        self.post_message(SearchCustomers(typed or self._value("phone"), pick=picked))

    @work(thread=True, exclusive=True, group="customer-quick", exit_on_error=False)
    def _link(self, customer_id: int) -> None:
        try:
            view = self.service.link_customer(self.view.id, customer_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    def action_back(self) -> None:
        self.dismiss(BACK)
