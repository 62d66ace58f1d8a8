"""The customer record: tabs General, Related, Membership, Web Login, Touchpoints,
Account Benefits and Notes. Thin: every change goes through CustomerService in a worker.

Keys: F2 save (General), F3 cancel edits (General), Ctrl+N new, F4 edit, F8 delete/remove,
F5/F6 previous/next tab, Esc back. Every button is also reachable with Tab and Enter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    Label,
    Select,
    Static,
    TabbedContent,
    TabPane,
    Tabs,
)

from clarity_tui.screens.record_membership import PAYMENT_COLUMNS, MembershipTabActions
from clarity_tui.services.customer_duplicates import DuplicateCustomer
from clarity_tui.services.customers import (
    BENEFIT_TYPES,
    RELATIONSHIP_LABELS,
    ContactForm,
    CustomerRecord,
    CustomerService,
    MembershipInfo,
    NotFound,
    ValidationFailed,
)
from clarity_tui.services.permissions import Permission
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.widgets.customer_forms import (
    NOT_APPROVED,
    USER_ERRORS,
    ConfirmDialog,
    FieldSpec,
    FormDialog,
    ManagerAsk,
    NoticeDialog,
)

TABS = ["tab-general", "tab-related", "tab-membership", "tab-web", "tab-touch", "tab-benefits", "tab-notes"]
CONTACT_INPUTS = [
    ("first_name", "First"), ("last_name", "Last"), ("phone", "Phone"), ("email", "Email"),
    ("address_line1", "Address"), ("address_line2", "Addr 2"), ("city", "City"), ("region", "State"),
    ("postal_code", "Postal"), ("country", "Country"),
]
# Form error keys that are not named like their input.
_ERROR_INPUT = {"phone_e164": "phone"}


def _date(d: Any) -> str:
    return d.isoformat() if d else "-"


class CustomerRecordScreen(MembershipTabActions, Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="record.back", tooltip="Close the record"),
        # The tab keys come first: no button shows them, and the footer is cut at 80 columns.
        Binding("f5", "tab(-1)", "◂ Tab", id="record.prev_tab", tooltip="Previous tab"),
        Binding("f6", "tab(1)", "Tab ▸", id="record.next_tab", tooltip="Next tab"),
        Binding("f2", "save", "Save", id="record.save", tooltip="Save the General tab"),
        Binding("f3", "revert", "Cancel", id="record.revert", tooltip="Put back the saved contact details"),
        Binding("ctrl+n", "new", "New", id="record.new", tooltip="Add to the current tab"),
        Binding("f4", "edit", "Edit", id="record.edit", tooltip="Edit the highlighted row"),
        Binding("f8", "delete", "Delete", id="record.delete", tooltip="Delete or remove the highlighted row"),
        Binding("ctrl+g", "refund", "Refund", id="record.refund", show=False,
                tooltip="Give money back on the membership's payment (managers)"),
    ]

    DEFAULT_CSS = """
    CustomerRecordScreen {
        #record-title { height: 1; padding: 0 1; background: $boost; text-style: bold; }
        #record-tabs { height: 1fr; }
        ContentSwitcher { height: 1fr; }
        TabPane { padding: 0 1; height: 1fr; }
        #general-grid { grid-size: 4; grid-columns: 8 1fr 8 1fr; grid-rows: 1; grid-gutter: 0 1; height: auto; }
        #general-grid Label { width: 100%; text-align: right; }
        #prompt-grid { grid-size: 2; grid-columns: 1fr 28; grid-rows: 1; grid-gutter: 0 1; height: auto; margin-top: 1; }
        .-invalid { background: $error 30%; }
        #general-error { color: $error; height: auto; }
        .tab-buttons { height: 3; dock: bottom; }
        .tab-buttons Button { width: 1fr; min-width: 8; }
        .tab-table { height: 1fr; }
        #membership-table { height: 5; }
        #membership-detail { height: auto; max-height: 6; }
        #payments-table { height: 1fr; }
        #web-detail { height: 1fr; }
    }
    """

    def __init__(self, customer_id: int | None) -> None:
        super().__init__(id="customer-record")
        self.customer_id = customer_id
        self.record: CustomerRecord | None = None
        self.form_version: int | None = None
        self._prompts_built = False
        self._notices_shown = False
        self._gateway = None

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield Static("New customer" if self.customer_id is None else "Loading…", id="record-title")
        with TabbedContent(id="record-tabs"):
            with TabPane("General", id="tab-general"):
                with VerticalScroll(id="general-scroll"):
                    with Grid(id="general-grid"):
                        for name, label in CONTACT_INPUTS:
                            yield Label(label)
                            yield Input(id=f"in-{name}", compact=True, select_on_focus=False)
                    yield Grid(id="prompt-grid")
                    yield Static("", id="general-error")
                with Horizontal(classes="tab-buttons"):
                    yield Button("Save F2", id="general-save", variant="success")
                    yield Button("Cancel F3", id="general-revert")
                    yield Button("Delete F8", id="general-delete", variant="error")
            with TabPane("Related", id="tab-related"):
                yield DataTable(id="related-table", cursor_type="row", classes="tab-table")
                yield self._list_buttons("related", "Add")
            with TabPane("Membership", id="tab-membership"):
                yield DataTable(id="membership-table", cursor_type="row")
                yield Static("", id="membership-detail")
                yield DataTable(id="payments-table", cursor_type="row")
                with Horizontal(classes="tab-buttons"):
                    yield Button("Pause", id="membership-pause")
                    yield Button("Plan F4", id="membership-plan")
                    yield Button("Cancel", id="membership-cancel")
                    yield Button("Expiry", id="membership-expiry")
                    yield Button("Reader", id="membership-reader", variant="primary",
                                 tooltip="The member's new card, from the card reader")
                    yield Button("Key in", id="membership-card", tooltip="The member's new card, keyed in by hand")
                    yield Button("Refund ^G", id="membership-refund", action="screen.refund",
                                 tooltip="Give money back on the membership's payment (managers)")
                    yield Button("+Extra ^N", id="membership-extra-add", action="screen.new",
                                 tooltip="Add an extra benefit beside the plan's (managers)")
                    yield Button("-Extra F8", id="membership-extra-remove", action="screen.delete",
                                 tooltip="Remove an extra benefit (managers)")
            with TabPane("Web Login", id="tab-web"):
                yield Static("", id="web-detail")
                with Horizontal(classes="tab-buttons"):
                    yield Button("Create ^N", id="web-create", variant="success")
                    yield Button("User F4", id="web-username")
                    yield Button("Password", id="web-password")
                    yield Button("Reset mail", id="web-reset")
                    yield Button("Remove F8", id="web-remove", variant="error")
            with TabPane("Touchpoints", id="tab-touch"):
                yield DataTable(id="touch-table", cursor_type="row", classes="tab-table")
                yield self._list_buttons("touch", "New")
            with TabPane("Account Benefits", id="tab-benefits"):
                yield DataTable(id="benefits-table", cursor_type="row", classes="tab-table")
                yield self._list_buttons("benefits", "New")
            with TabPane("Notes", id="tab-notes"):
                yield DataTable(id="notes-table", cursor_type="row", classes="tab-table")
                yield self._list_buttons("notes", "New")
        yield Footer()

    @staticmethod
    def _list_buttons(prefix: str, new_label: str) -> Horizontal:
        return Horizontal(
            Button(f"{new_label} ^N", id=f"{prefix}-new", variant="success"),
            Button("Edit F4", id=f"{prefix}-edit"),
            Button("Delete F8", id=f"{prefix}-delete", variant="error"),
            classes="tab-buttons",
        )

    def on_mount(self) -> None:
        self.sub_title = "Customer"
        tables = {
            "related-table": [("Relationship", 14), ("Customer #", 10), ("Name", 30), ("Side", 10)],
            "membership-table": [("Plan", 20), ("Status", 10), ("Next bill", 11), ("Expires", 11), ("Cancel", 6)],
            "payments-table": PAYMENT_COLUMNS,
            "touch-table": [("Task", 34), ("Due", 11), ("Assignee", 16), ("Done", 5)],
            "benefits-table": [("Type", 16), ("Description", 24), ("Qty", 4), ("Left", 4), ("Expires", 11)],
            "notes-table": [("Note", 50), ("Notice", 7), ("Author", 14)],
        }
        for table_id, columns in tables.items():
            table = self.query_one(f"#{table_id}", DataTable)
            for label, width in columns:
                table.add_column(label, width=width)
        if self.customer_id is None:
            tabs = self.query_one(TabbedContent)
            for tab in TABS[1:]:
                tabs.disable_tab(tab)
            self.query_one("#general-delete", Button).disabled = True
            self.load_prompts()
        else:
            self.load(refill=True)
            self.app.db_changed.subscribe(self, lambda _: self.load(refill=False))  # type: ignore[attr-defined]
        self.query_one("#in-first_name", Input).focus()

    # --- services -------------------------------------------------------------------------------

    @property
    def actor(self):
        return self.app.actor  # type: ignore[attr-defined]

    def service(self) -> CustomerService:
        """Built per use, in the worker thread; the gateway is built once, lazily."""
        app = self.app
        if self._gateway is None:
            from clarity_tui.payments import make_gateway

            self._gateway = make_gateway(app.settings, app.db)  # type: ignore[attr-defined]
        return CustomerService.from_settings(app.db, app.settings, gateway=self._gateway,  # type: ignore[attr-defined]
                                             today=app.today)  # type: ignore[attr-defined]

    # --- loading --------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="record-load", exit_on_error=False)
    def load(self, refill: bool = False) -> None:
        assert self.customer_id is not None
        try:
            record = CustomerService(self.app.db).record(self.customer_id)  # type: ignore[attr-defined]
        except NotFound as exc:
            self.app.call_from_thread(self._gone, str(exc))
            return
        self.app.call_from_thread(self._apply, record, refill)

    @work(thread=True, exclusive=True, group="record-load", exit_on_error=False)
    def load_prompts(self) -> None:
        prompts = CustomerService(self.app.db).prompts()  # type: ignore[attr-defined]
        self.app.call_from_thread(self._build_prompts, prompts, {})

    def _gone(self, message: str) -> None:
        self.notify(message, severity="error")
        self.dismiss()

    def _build_prompts(self, prompts, answers: dict[str, Any]) -> None:
        grid = self.query_one("#prompt-grid", Grid)
        if not self._prompts_built:
            self._prompts_built = True
            widgets = []
            for p in prompts:
                widgets.append(Label(p.text))
                widgets.append(Select([(c, c) for c in (p.choices or [])], id=f"q-{p.key}", compact=True, prompt="(no answer)"))
            grid.mount_all(widgets)
            self._prompt_keys = [p.key for p in prompts]
        self.call_after_refresh(self._fill_answers, answers)

    def _fill_answers(self, answers: dict[str, Any]) -> None:
        for key in getattr(self, "_prompt_keys", []):
            select = self.query_one(f"#q-{key}", Select)
            value = answers.get(key)
            options = {v for _, v in select._options}
            select.value = value if value in options else Select.NULL

    def _apply(self, record: CustomerRecord, refill: bool) -> None:
        self.record = record
        c = record.customer
        self.customer_id = c.id
        badge = ""
        if record.memberships:
            m = record.memberships[0]
            badge = f" · {m.plan_name} ({m.status.replace('_', ' ')})"
        notice = " · ⚑ notice" if record.notices else ""
        self.query_one("#record-title", Static).update(f"{record.name or '(no name)'} · #{c.customer_number}{badge}{notice}")
        if refill or self.form_version is None:
            self._fill_form(record)
        self._fill_related(record)
        self._fill_memberships(record)
        self._fill_web(record)
        self._fill_touchpoints(record)
        self._fill_benefits(record)
        self._fill_notes(record)
        if not self._notices_shown:
            self._notices_shown = True
            if record.notices:
                body = "\n\n".join(f"• {n.body}" for n in record.notices)
                self.app.push_screen(NoticeDialog(f"Operator notice · {record.name}", body, dialog_id="operator-notice"))

    def _fill_form(self, record: CustomerRecord) -> None:
        form = ContactForm.of(record.customer, self.app.settings.site.phone_region)  # type: ignore[attr-defined]
        for name, _ in CONTACT_INPUTS:
            field = self.query_one(f"#in-{name}", Input)
            field.value = getattr(form, name)
            field.cursor_position = len(field.value)  # no selection left over: typing appends
        self.form_version = record.customer.version
        self._filled = form  # what the General tab shows as saved (unsaved_edits compares with it)
        self._build_prompts(record.prompts, form.answers)
        self._clear_errors()

    def _refill_table(self, table_id: str, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        cursor = table.cursor_row
        table.clear()
        for key, values in rows:
            table.add_row(*values, key=key)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def _fill_related(self, record: CustomerRecord) -> None:
        self._refill_table("related-table", [
            (str(r.relationship_id), (r.label, r.other_number, r.other_name, "added here" if r.outgoing else "added there"))
            for r in record.related
        ])

    @on(DataTable.RowHighlighted, "#membership-table")
    def _membership_highlighted(self) -> None:
        self._show_membership_detail()

    def _fill_web(self, record: CustomerRecord) -> None:
        w = record.web_login
        if w is None:
            text = "No web login. Create one (Ctrl+N): a random password is generated and shown once."
        else:
            pw = "set" + (", must be changed at next sign-in" if w.must_change_password else "") if w.has_password else "not set"
            sent = w.reset_sent_at.astimezone().strftime("%Y-%m-%d %H:%M") if w.reset_sent_at else "never"
            text = f"Username: {w.username}\nPassword: {pw}\nReset email last sent: {sent}\nEmail on file: {record.customer.email or '(none)'}"
        self.query_one("#web-detail", Static).update(text)
        for bid in ("web-username", "web-password", "web-reset", "web-remove"):
            self.query_one(f"#{bid}", Button).disabled = w is None
        self.query_one("#web-create", Button).disabled = w is not None

    def _fill_touchpoints(self, record: CustomerRecord) -> None:
        self._refill_table("touch-table", [
            (str(t.id), (t.title, _date(t.due_on), t.assignee_name or "-", "✓" if t.done else "")) for t in record.touchpoints
        ])

    def _fill_benefits(self, record: CustomerRecord) -> None:
        self._refill_table("benefits-table", [
            (str(b.id), (b.kind, b.description or "", str(b.quantity), str(b.remaining), _date(b.expires_on))) for b in record.benefits
        ])

    def _fill_notes(self, record: CustomerRecord) -> None:
        self._refill_table("notes-table", [
            (str(n.id), (n.body.replace("\n", " "), "⚑ yes" if n.operator_notice else "", n.author or "-")) for n in record.notes
        ])

    # --- General tab ----------------------------------------------------------------------------

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
        answers = {}
        for key in getattr(self, "_prompt_keys", []):
            value = self.query_one(f"#q-{key}", Select).value
            answers[key] = None if value is Select.NULL else value
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

    def action_save(self) -> None:
        if self._active_tab() != "tab-general":
            self.notify("F2 saves the General tab; other tabs save in their own dialogs.", severity="information")
            return
        self.query_one("#general-error", Static).update("Saving…")
        self._save_general(self._form(), self.form_version)

    @work(thread=True, exclusive=True, group="record-save", exit_on_error=False)
    def _save_general(self, form: ContactForm, version: int | None) -> None:
        try:
            svc = CustomerService.from_settings(self.app.db, self.app.settings)  # type: ignore[attr-defined]
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
        except USER_ERRORS as exc:
            self.app.call_from_thread(self._show_errors, str(exc), [])
            return
        self.app.call_from_thread(self._saved, customer.id, customer.customer_number)

    def _offer_existing(self, exc: DuplicateCustomer) -> None:
        from clarity_tui.widgets.duplicate_prompt import DuplicateCustomerPrompt

        dup = exc.duplicate

        def answered(use: bool | None) -> None:
            if use:  # their record, in place of this new one (nothing was created)
                self._leave_after_save = False
                self.customer_id = dup.customer_id
                self._clear_errors()
                self.notify(f"Opened {dup.name}'s record (#{dup.customer_number}): no new customer was created.")
                tabs = self.query_one(TabbedContent)
                for tab in TABS[1:]:
                    tabs.enable_tab(tab)
                self.query_one("#general-delete", Button).disabled = False
                self.app.db_changed.subscribe(self, lambda _: self.load(refill=False))  # type: ignore[attr-defined]
                self.load(refill=True)
            else:
                self._show_errors(f"{dup.message} Check the details: nothing was saved.", list(dup.fields))

        self.app.push_screen(DuplicateCustomerPrompt(dup), answered)

    def _saved(self, customer_id: int, number: str) -> None:
        if getattr(self, "_leave_after_save", False):  # "Save changes" on leaving: saved, so leave
            self.notify(f"Customer {number} saved.")
            self.dismiss()
            return
        created = self.customer_id is None
        self.customer_id = customer_id
        self._clear_errors()
        self.notify(f"Customer {number} {'created' if created else 'saved'}.")
        if created:
            tabs = self.query_one(TabbedContent)
            for tab in TABS[1:]:
                tabs.enable_tab(tab)
            self.query_one("#general-delete", Button).disabled = False
            self.app.db_changed.subscribe(self, lambda _: self.load(refill=False))  # type: ignore[attr-defined]
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
        if self.record is None:
            return
        version = self.form_version or 0
        cid = self.record.customer.id

        def done() -> None:
            self.app.call_from_thread(self.dismiss)

        ask = ManagerAsk(Permission.DELETE, "customer.delete", entity="customer", entity_id=cid,
                         why=f"Delete customer {self.record.name} (#{self.record.customer.customer_number}).")

        def answered(ok: bool | None) -> None:
            if ok:
                self._approve_then_run(ask, lambda svc, who: svc.delete_customer(who, cid, version), "Customer deleted.",
                                       after=done)

        self.app.push_screen(ConfirmDialog(f"Delete customer {self.record.name} (#{self.record.customer.customer_number})? "
                                           "This cannot be undone.", yes="Delete"), answered)

    @work(exclusive=True, group="record-approve", exit_on_error=False)
    async def _approve_then_run(self, ask: ManagerAsk, fn: Callable[[CustomerService, Any], Any], message: str,
                                after: Callable[[], None] | None = None) -> None:
        """A manager-only action: the signed-in actor if they may, else a Manager PIN in place (issue 15);
        the service call then runs as that actor, and checks the permission again."""
        from clarity_tui.services.permissions import allowed
        from clarity_tui.widgets.manager_pin import manager_approval

        who = self.actor
        if not allowed(who, ask.permission):
            who = await manager_approval(self.app, ask.action, why=ask.why, entity=ask.entity, entity_id=ask.entity_id)
            if who is None:
                self.notify(NOT_APPROVED)
                return
        self._run(lambda svc: fn(svc, who), message, after)

    # --- shared actions ----------------------------------------------------------------------------

    def _active_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        enabled = [t for t in TABS if not tabs.get_tab(t).disabled]
        i = enabled.index(tabs.active) if tabs.active in enabled else 0
        self.show_tab(enabled[(i + step) % len(enabled)])

    def show_tab(self, tab_id: str) -> None:
        """Switch tab and focus its first control (focus left in a hidden pane would switch back)."""
        tabs = self.query_one(TabbedContent)
        tabs.active = tab_id
        pane = self.query_one(f"#{tab_id}", TabPane)
        target = next((w for w in pane.query("*") if w.focusable and not w.disabled), None)
        if target is not None:
            target.focus()
        else:
            tabs.query_one(Tabs).focus()

    def _selected(self, table_id: str) -> int | None:
        table = self.query_one(f"#{table_id}", DataTable)
        if table.row_count == 0:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(key.value) if key.value else None

    def _membership(self) -> MembershipInfo | None:
        if self.record is None or not self.record.memberships:
            return None
        mid = self._selected("membership-table")
        return next((m for m in self.record.memberships if m.id == mid), self.record.memberships[0])

    def _dialog(self, dialog: FormDialog, message: str | Callable[[Any], None]) -> None:
        def closed(result: Any) -> None:
            if result is None:
                return
            if callable(message):
                message(result)
            else:
                self.notify(message)
            self.load(refill=False)

        self.app.push_screen(dialog, closed)

    def _confirm_then(self, question: str, fn: Callable[[CustomerService], Any], message: str,
                      after: Callable[[], None] | None = None, yes: str = "Delete") -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self._run(fn, message, after)

        self.app.push_screen(ConfirmDialog(question, yes=yes), answered)

    @work(thread=True, group="record-action", exit_on_error=False)
    def _run(self, fn: Callable[[CustomerService], Any], message: str, after: Callable[[], None] | None = None) -> None:
        try:
            fn(self.service())
        except USER_ERRORS as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not done", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, message)
        if after is not None:
            after()
        else:
            self.app.call_from_thread(self.load, False)

    def _need_record(self) -> CustomerRecord | None:
        if self.record is None:
            self.notify("Save the customer first (F2).", severity="warning")
        return self.record

    def action_new(self) -> None:
        tab = self._active_tab()
        handlers = {"tab-related": self._new_related, "tab-web": self._web_create, "tab-touch": self._new_touchpoint,
                    "tab-benefits": self._new_benefit, "tab-notes": self._new_note}
        if tab in handlers and self._need_record():
            handlers[tab]()
        elif tab == "tab-general":
            self.app.push_screen(CustomerRecordScreen(None))
        elif tab == "tab-membership" and self._need_record():
            self._membership_benefit_add()  # an extra benefit beside the plan's (record_membership.py)

    def action_edit(self) -> None:
        handlers = {"tab-related": self._edit_related, "tab-membership": self._membership_plan, "tab-web": self._web_username,
                    "tab-touch": self._edit_touchpoint, "tab-benefits": self._edit_benefit, "tab-notes": self._edit_note}
        handler = handlers.get(self._active_tab())
        if handler and self._need_record():
            handler()

    def action_delete(self) -> None:
        handlers = {"tab-general": self._delete_customer, "tab-related": self._delete_related, "tab-web": self._web_remove,
                    "tab-membership": self._membership_benefit_remove,
                    "tab-touch": self._delete_touchpoint, "tab-benefits": self._delete_benefit, "tab-notes": self._delete_note}
        handler = handlers.get(self._active_tab())
        if handler and self._need_record():
            handler()

    def action_back(self) -> None:
        from clarity_tui.widgets.unsaved_guard import leave_or_ask

        leave_or_ask(self, self.unsaved_edits(), save=self._save_and_leave, discard=self.dismiss,
                     what="the contact details on the General tab")

    def unsaved_edits(self) -> bool:
        """The General tab differs from what was loaded (or, for a new customer, anything is typed)."""
        now = self._form()
        filled = getattr(self, "_filled", None) or ContactForm()
        keys = set(getattr(self, "_prompt_keys", []))

        def answers(form: ContactForm) -> dict[str, Any]:
            return {k: v for k, v in form.answers.items() if k in keys and v not in (None, "")}

        return any(getattr(now, n).strip() != getattr(filled, n).strip() for n, _ in CONTACT_INPUTS) \
            or answers(now) != answers(filled)

    def _save_and_leave(self) -> None:
        self._leave_after_save = True
        self.query_one("#general-error", Static).update("Saving…")
        self._save_general(self._form(), self.form_version)

    # --- Related --------------------------------------------------------------------------------

    def _kind_choices(self) -> list[tuple[str, str]]:
        return [(label, kind.value) for kind, label in RELATIONSHIP_LABELS.items()]

    def _new_related(self) -> None:
        cid = self.record.customer.id  # type: ignore[union-attr]

        def search(dialog: FormDialog) -> None:
            from clarity_tui.screens.customer_search import CustomerSearchScreen

            def picked(other_id: int | None) -> None:
                if other_id is not None:
                    self._fill_number(dialog, other_id)

            self.app.push_screen(CustomerSearchScreen(pick=True), picked)

        dialog = FormDialog("Add a related customer", [
            FieldSpec("kind", "Relationship", "select", "household", self._kind_choices()),
            FieldSpec("other", "Customer #", placeholder="e.g. C100012, or Search"),
        ], lambda v: self.service().add_relationship(self.actor, cid, v["other"] or "", v["kind"] or ""),
            extra={"Search": search})
        self._dialog(dialog, lambda r: self.notify(f"Related {r.other_name} ({r.label.lower()})."))

    @work(thread=True, group="record-fill", exit_on_error=False)
    def _fill_number(self, dialog: FormDialog, other_id: int) -> None:
        record = CustomerService(self.app.db).record(other_id)  # type: ignore[attr-defined]
        self.app.call_from_thread(dialog.set_value, "other", record.customer.customer_number)

    def _edit_related(self) -> None:
        rid = self._selected("related-table")
        rel = next((r for r in self.record.related if r.relationship_id == rid), None) if self.record else None
        if rel is None:
            self.notify("No relationship to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog(f"Relationship with {rel.other_name}", [
            FieldSpec("kind", "Relationship", "select", rel.kind, self._kind_choices()),
        ], lambda v: self.service().update_relationship(self.actor, rel.relationship_id, v["kind"] or ""))
        self._dialog(dialog, "Relationship saved.")

    def _delete_related(self) -> None:
        rid = self._selected("related-table")
        rel = next((r for r in self.record.related if r.relationship_id == rid), None) if self.record else None
        if rel is None:
            self.notify("No relationship to remove.", severity="warning")
            return
        self._confirm_then(f"Remove the {rel.label.lower()} relationship with {rel.other_name} (#{rel.other_number})?",
                           lambda svc: svc.remove_relationship(self.actor, rel.relationship_id), "Relationship removed.", yes="Remove")

    # --- Web login --------------------------------------------------------------------------------

    def _show_password(self, username: str, password: str) -> None:
        self.app.push_screen(NoticeDialog(
            "Temporary password (shown once)",
            f"Username: {username}\nPassword: {password}\n\nGive it to the customer now: it is not stored and "
            "cannot be shown again. They must change it at first sign-in.",
            dialog_id="password-once",
        ))

    def _web_create(self) -> None:
        record = self.record
        assert record is not None
        if record.web_login is not None:
            self.notify("This customer already has a web login.", severity="warning")
            return
        dialog = FormDialog("Create web login", [FieldSpec("username", "Username", value=record.customer.email or "")],
                            lambda v: self.service().create_web_login(self.actor, record.customer.id, v["username"]))

        def created(result: Any) -> None:
            view, password = result
            self._show_password(view.username, password)

        self._dialog(dialog, created)

    def _web_username(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            self.notify("No web login yet: create one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Change username", [FieldSpec("username", "Username", value=record.web_login.username)],
                            lambda v: self.service().change_username(self.actor, record.customer.id, v["username"]))
        self._dialog(dialog, "Username saved.")

    def _web_password(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            return
        username = record.web_login.username

        def answered(ok: bool | None) -> None:
            if ok:
                self._generate_password(record.customer.id, username)

        self.app.push_screen(ConfirmDialog(f"Replace {username}'s password with a new random one?", yes="Generate"), answered)

    @work(thread=True, exit_on_error=False)
    def _generate_password(self, customer_id: int, username: str) -> None:
        try:
            password = self.service().random_password(self.actor, customer_id)
        except USER_ERRORS as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not done", severity="error", timeout=8)
            return
        self.app.call_from_thread(self._show_password, username, password)
        self.app.call_from_thread(self.load, False)

    def _web_reset(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            return
        self._send_reset(record.customer.id)

    @work(thread=True, exit_on_error=False)
    def _send_reset(self, customer_id: int) -> None:
        self.app.call_from_thread(self.notify, "Sending the reset email…")
        try:
            to = self.service().send_password_reset(self.actor, customer_id)
        except USER_ERRORS as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Email not sent", severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, f"Password-reset email sent to {to}.")
        self.app.call_from_thread(self.load, False)

    def _web_remove(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            return
        self._confirm_then(f"Remove the web login {record.web_login.username}? The customer can no longer sign in.",
                           lambda svc: svc.remove_web_login(self.actor, record.customer.id), "Web login removed.", yes="Remove")

    # --- Touchpoints -------------------------------------------------------------------------------

    def _touch_fields(self, title: str = "", due: str = "", assignee: int | None = None, done: bool = False) -> list[FieldSpec]:
        operators = [(name, oid) for oid, name in (self.record.operators if self.record else [])]
        return [
            FieldSpec("title", "Task", value=title),
            FieldSpec("due_on", "Due", value=due, placeholder="YYYY-MM-DD"),
            FieldSpec("assignee", "Assignee", "select", assignee, operators, placeholder="(nobody)"),
            FieldSpec("done", "Done", "check", done),
        ]

    def _new_touchpoint(self) -> None:
        cid = self.record.customer.id  # type: ignore[union-attr]
        dialog = FormDialog("New touchpoint", self._touch_fields(),
                            lambda v: self.service().add_touchpoint(self.actor, cid, v["title"], v["due_on"], v["assignee"], v["done"]))
        self._dialog(dialog, "Touchpoint added.")

    def _edit_touchpoint(self) -> None:
        tid = self._selected("touch-table")
        t = next((t for t in self.record.touchpoints if t.id == tid), None) if self.record else None
        if t is None:
            self.notify("No touchpoint to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Edit touchpoint", self._touch_fields(t.title, t.due_on.isoformat() if t.due_on else "", t.assignee_id, t.done),
                            lambda v: self.service().update_touchpoint(self.actor, t.id, v["title"], v["due_on"], v["assignee"], v["done"]))
        self._dialog(dialog, "Touchpoint saved.")

    def _delete_touchpoint(self) -> None:
        tid = self._selected("touch-table")
        t = next((t for t in self.record.touchpoints if t.id == tid), None) if self.record else None
        if t is None:
            self.notify("No touchpoint to delete.", severity="warning")
            return
        self._confirm_then(f"Delete the touchpoint '{t.title}'?", lambda svc: svc.delete_touchpoint(self.actor, t.id), "Touchpoint deleted.")

    # --- Account benefits ----------------------------------------------------------------------------

    def _benefit_fields(self, kind: str | None = None, description: str = "", quantity: str = "1", remaining: str = "",
                        expires: str = "") -> list[FieldSpec]:
        return [
            FieldSpec("kind", "Type", "select", kind, [(t, t) for t in BENEFIT_TYPES], placeholder="Choose a type"),
            FieldSpec("description", "Description", value=description),
            FieldSpec("quantity", "Quantity", value=quantity),
            FieldSpec("remaining", "Remaining", value=remaining, placeholder="= quantity"),
            FieldSpec("expires_on", "Expires", value=expires, placeholder="YYYY-MM-DD"),
        ]

    def _benefit_ask(self, what: str, entity_id: Any) -> ManagerAsk:
        # Benefits grant free washes: an attendant gets them with a Manager PIN, in place.
        return ManagerAsk(Permission.BENEFIT, "benefit.edit", entity="customer_benefit", entity_id=entity_id,
                          why=f"{what} for {self.record.name if self.record else 'this customer'}.")

    def _new_benefit(self) -> None:
        cid = self.record.customer.id  # type: ignore[union-attr]
        dialog = FormDialog("New account benefit", self._benefit_fields(), lambda v, who: self.service().add_benefit(
            who, cid, v["kind"] or "", v["description"], v["quantity"], v["remaining"], v["expires_on"]),
            approval=self._benefit_ask("Add an account benefit", None))
        self._dialog(dialog, "Benefit added.")

    def _edit_benefit(self) -> None:
        bid = self._selected("benefits-table")
        b = next((b for b in self.record.benefits if b.id == bid), None) if self.record else None
        if b is None:
            self.notify("No benefit to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Benefit properties", self._benefit_fields(
            b.kind, b.description or "", str(b.quantity), str(b.remaining), b.expires_on.isoformat() if b.expires_on else ""),
            lambda v, who: self.service().update_benefit(who, b.id, v["kind"] or "", v["description"], v["quantity"],  # type: ignore[arg-type]
                                                         v["remaining"], v["expires_on"]),
            approval=self._benefit_ask("Change an account benefit", b.id))
        self._dialog(dialog, "Benefit saved.")

    def _delete_benefit(self) -> None:
        bid = self._selected("benefits-table")
        b = next((b for b in self.record.benefits if b.id == bid), None) if self.record else None
        if b is None:
            self.notify("No benefit to remove.", severity="warning")
            return
        ask = self._benefit_ask("Remove an account benefit", b.id)

        def answered(ok: bool | None) -> None:
            if ok:
                self._approve_then_run(ask, lambda svc, who: svc.remove_benefit(who, b.id), "Benefit removed.")  # type: ignore[arg-type]

        self.app.push_screen(ConfirmDialog(f"Remove the benefit '{b.kind}' ({b.remaining} left)?", yes="Remove"), answered)

    # --- Notes -----------------------------------------------------------------------------------------

    def _new_note(self) -> None:
        cid = self.record.customer.id  # type: ignore[union-attr]
        dialog = FormDialog("New note", [FieldSpec("body", "Note"), FieldSpec("operator_notice", "Operator notice", "check", False)],
                            lambda v: self.service().add_note(self.actor, cid, v["body"], v["operator_notice"]))
        self._dialog(dialog, "Note added.")

    def _edit_note(self) -> None:
        nid = self._selected("notes-table")
        n = next((n for n in self.record.notes if n.id == nid), None) if self.record else None
        if n is None:
            self.notify("No note to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Edit note", [FieldSpec("body", "Note", value=n.body),
                                          FieldSpec("operator_notice", "Operator notice", "check", n.operator_notice)],
                            lambda v: self.service().update_note(self.actor, n.id, v["body"], v["operator_notice"]))
        self._dialog(dialog, "Note saved.")

    def _delete_note(self) -> None:
        nid = self._selected("notes-table")
        n = next((n for n in self.record.notes if n.id == nid), None) if self.record else None
        if n is None:
            self.notify("No note to delete.", severity="warning")
            return
        self._confirm_then("Delete this note?", lambda svc: svc.delete_note(self.actor, n.id), "Note deleted.")

    # --- buttons -------------------------------------------------------------------------------------

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        prefix, _, what = bid.partition("-")
        actions: dict[str, Callable[[], None]] = {
            "general-save": self.action_save, "general-revert": self.action_revert, "general-delete": self.action_delete,
            "membership-pause": self._membership_pause, "membership-plan": self._membership_plan,
            "membership-cancel": self._membership_cancel, "membership-expiry": self._membership_expiry,
            "membership-card": self._membership_card, "membership-reader": self._membership_reader,
            "web-create": self.action_new, "web-username": self._web_username, "web-password": self._web_password,
            "web-reset": self._web_reset, "web-remove": self._web_remove,
        }
        if bid in actions:
            if prefix != "general" and not self._need_record():
                return
            actions[bid]()
        elif what in ("new", "edit", "delete"):
            {"new": self.action_new, "edit": self.action_edit, "delete": self.action_delete}[what]()
