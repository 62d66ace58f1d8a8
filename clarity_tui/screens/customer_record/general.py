"""The General tab: contact details and the question prompts; F2 saves, F3 puts back the saved details.

A new customer whose phone or email is on file already is offered that customer's record instead."""

from __future__ import annotations

from typing import Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from clarity_tui.screens.customer_record.base import RecordScreenBase
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import ContactForm, CustomerRecord, ValidationFailed
from clarity_tui.services.customers.base import saved_id
from clarity_tui.services.permissions import Permission
from clarity_tui.errors import UserFacingError
from clarity_tui.widgets.customer_forms import ConfirmDialog, ManagerAsk
from clarity_tui.wiring import services_of
from db.models import QuestionPrompt

CONTACT_INPUTS = [
    ("first_name", "First"), ("last_name", "Last"), ("phone", "Phone"), ("email", "Email"),
    ("address_line1", "Address"), ("address_line2", "Addr 2"), ("city", "City"), ("region", "State"),
    ("postal_code", "Postal"), ("country", "Country"),
]
# Form error keys that are not named like their input.
_ERROR_INPUT = {"phone_e164": "phone"}


class GeneralTab(RecordScreenBase):
    def _general_pane(self) -> ComposeResult:
        with VerticalScroll(id="general-scroll"):
            with Grid(id="general-grid"):
                for name, label in CONTACT_INPUTS:
                    yield Label(label)
                    yield Input(id=f"in-{name}", compact=True, select_on_focus=False)
            yield Grid(id="prompt-grid")
            yield Static("", id="general-error")
        with Horizontal(classes="tab-buttons"):
            yield Button("Save F2", id="general-save", variant="success", action="screen.save")
            yield Button("Cancel F3", id="general-revert", action="screen.revert")
            yield Button("Delete F8", id="general-delete", variant="error", action="screen.delete")

    # --- showing ---------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="record-prompts", exit_on_error=False)
    def load_prompts(self) -> None:
        prompts = self.service().prompts()
        self.app.call_from_thread(self._show_blank_prompts, prompts)

    def _show_blank_prompts(self, prompts: list[QuestionPrompt]) -> None:
        if self.record is None:  # a save that came first has filled them with its answers
            self._build_prompts(prompts, {})

    def _build_prompts(self, prompts: list[QuestionPrompt], answers: dict[str, Any]) -> None:
        grid = self.query_one("#prompt-grid", Grid)
        if not self._prompts_built:
            self._prompts_built = True
            widgets: list[Widget] = []
            for p in prompts:
                widgets.append(Label(p.text))
                widgets.append(Select([(c, c) for c in (p.choices or [])], id=f"q-{p.key}", compact=True, prompt="(no answer)"))
            grid.mount_all(widgets)
            self._prompt_keys = [p.key for p in prompts]
        self.call_after_refresh(self._fill_answers, answers)

    def _fill_answers(self, answers: dict[str, Any]) -> None:
        for key in self._prompt_keys:
            select: Select[Any] = self.query_one(f"#q-{key}", Select)
            value = answers.get(key)
            options = {v for _, v in select._options}
            select.value = value if value in options else Select.NULL

    def _fill_form(self, record: CustomerRecord) -> None:
        form = ContactForm.of(record.customer, services_of(self).settings.site.phone_region)
        for name, _ in CONTACT_INPUTS:
            field = self.query_one(f"#in-{name}", Input)
            field.value = getattr(form, name)
            field.cursor_position = len(field.value)  # no selection left over: typing appends
        self.form_version = record.customer.version
        self._filled = form
        self._build_prompts(record.prompts, form.answers)
        self._clear_errors()

    @on(Input.Submitted, "#general-grid Input")
    def _next_contact_field(self, event: Input.Submitted) -> None:
        """General tab: Enter moves to the next field at once (`set_focus`, not the deferred `focus()`),
        so the next key typed lands there (issue 14). Enter on the last field stays: F2 saves."""
        names = [f"in-{name}" for name, _ in CONTACT_INPUTS]
        current = event.input.id or ""
        if current in names[:-1]:
            event.stop()
            self.set_focus(self.query_one(f"#{names[names.index(current) + 1]}", Input))

    def _form(self) -> ContactForm:
        values = {name: self.query_one(f"#in-{name}", Input).value for name, _ in CONTACT_INPUTS}
        answers: dict[str, str | None] = {}
        for key in self._prompt_keys:
            value = self.query_one(f"#q-{key}", Select).value
            answers[key] = None if value is Select.NULL else cast(str, value)  # the choices are strings
        return ContactForm(answers=answers, **values)

    def _clear_errors(self) -> None:
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")
        self.query_one("#general-error", Static).update("")

    def _show_errors(self, message: str, fields: list[str]) -> None:
        self._leave_after_save = False  # refused: stay, with the typed values and the reason
        self._clear_errors()
        for name in fields:
            name = _ERROR_INPUT.get(name, name)
            target = f"#q-{name.split(':', 1)[1]}" if name.startswith("answer:") else f"#in-{name}"
            for widget in self.query(target):
                widget.add_class("-invalid")
        self.query_one("#general-error", Static).update(message)

    # --- saving ----------------------------------------------------------------------------------

    def action_save(self) -> None:
        if self._active_tab() != "tab-general":
            self.notify("F2 saves the General tab; other tabs save in their own dialogs.", severity="information")
            return
        self.query_one("#general-error", Static).update("Saving…")
        self._save_general(self._form(), self.form_version)

    def _save_and_leave(self) -> None:
        self._leave_after_save = True
        self.query_one("#general-error", Static).update("Saving…")
        self._save_general(self._form(), self.form_version)

    @work(thread=True, exclusive=True, group="record-save", exit_on_error=False)
    def _save_general(self, form: ContactForm, version: int | None) -> None:
        try:
            svc = self.service()
            if self.customer_id is None:
                customer = svc.create_customer(self.actor, form)
            else:
                customer = svc.update_contact(self.actor, self.customer_id, version or 0, form)
        except ValidationFailed as exc:
            self.app.call_from_thread(self._show_errors, str(exc), list(exc.errors))
            return
        except DuplicateCustomer as exc:  # the phone or email is a customer's already: offer their record
            self.app.call_from_thread(self._offer_existing, exc)
            return
        except UserFacingError as exc:
            self.app.call_from_thread(self._show_errors, str(exc), [])
            return
        self.app.call_from_thread(self._saved, saved_id(customer), customer.customer_number)

    def _offer_existing(self, exc: DuplicateCustomer) -> None:
        from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt

        dup = exc.duplicate

        def answered(use: bool | None) -> None:
            if use:  # their record, in place of this new one (nothing was created)
                self._leave_after_save = False
                self.customer_id = dup.customer_id
                self._clear_errors()
                self.notify(f"Opened {dup.name}'s record (#{dup.customer_number}): no new customer was created.")
                self._enable_record_tabs()
                self._watch_changes()
                self.load(refill=True)
            else:
                self._show_errors(f"{dup.message} Check the details: nothing was saved.", list(dup.fields))

        self.app.push_screen(DuplicateCustomerPrompt(dup), answered)

    def _saved(self, customer_id: int, number: str) -> None:
        if self._leave_after_save:  # "Save changes" on leaving: saved, so leave
            self.notify(f"Customer {number} saved.")
            self.dismiss()
            return
        created = self.customer_id is None
        self.customer_id = customer_id
        self._clear_errors()
        self.notify(f"Customer {number} {'created' if created else 'saved'}.")
        if created:
            self._enable_record_tabs()
            self._watch_changes()
        self.load(refill=True)

    def action_revert(self) -> None:
        if self.record is not None:
            self._fill_form(self.record)
            self.load(refill=True)
        else:
            for name, _ in CONTACT_INPUTS:
                self.query_one(f"#in-{name}", Input).value = ""
            self._clear_errors()

    def _delete_customer(self) -> None:
        record = self._loaded()
        version = self.form_version or 0
        cid = self._loaded_id()
        what = f"{record.name} (#{record.customer.customer_number})"

        def done() -> None:
            self.app.call_from_thread(self.dismiss)

        ask = ManagerAsk(Permission.DELETE, "customer.delete", entity="customer", entity_id=cid,
                         why=f"Delete customer {what}.")

        def answered(ok: bool | None) -> None:
            if ok:
                self._approve_then_run(ask, lambda svc, who: svc.delete_customer(who, cid, version), "Customer deleted.",
                                       after=done)

        self.app.push_screen(ConfirmDialog(f"Delete customer {what}? This cannot be undone.", yes="Delete"), answered)

    def unsaved_edits(self) -> bool:
        """The General tab differs from what was loaded (or, for a new customer, anything is typed)."""
        now = self._form()
        filled = self._filled or ContactForm()
        keys = set(self._prompt_keys)

        def answers(form: ContactForm) -> dict[str, Any]:
            return {k: v for k, v in form.answers.items() if k in keys and v not in (None, "")}

        return any(getattr(now, n).strip() != getattr(filled, n).strip() for n, _ in CONTACT_INPUTS) \
            or answers(now) != answers(filled)
