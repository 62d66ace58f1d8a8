"""The customer record screen: the shell that holds the eight tabs (one module each), the keys, and the
New / Edit / Delete actions that each tab answers in its own way."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Input, Static, TabbedContent, TabPane, Tabs
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.screens.customer_record.base import TABS, list_buttons
from clarity_tui.screens.customer_record.benefits import BENEFIT_COLUMNS, BenefitsTab
from clarity_tui.screens.customer_record.general import GeneralTab
from clarity_tui.screens.customer_record.membership import MEMBERSHIP_COLUMNS, PAYMENT_COLUMNS, MembershipTab
from clarity_tui.screens.customer_record.notes import NOTE_COLUMNS, NotesTab
from clarity_tui.screens.customer_record.related import RELATED_COLUMNS, RelatedTab
from clarity_tui.screens.customer_record.touchpoints import TOUCH_COLUMNS, TouchpointsTab
from clarity_tui.screens.customer_record.washes import WASH_COLUMNS, WashesTab
from clarity_tui.screens.customer_record.web_login import WebLoginTab
from clarity_tui.services.customers import CustomerRecord
from clarity_tui.widgets.customer_forms import NoticeDialog
from clarity_tui.widgets.header import ClarityHeader


class CustomerRecordScreen(GeneralTab, RelatedTab, MembershipTab, WebLoginTab, TouchpointsTab, BenefitsTab, NotesTab,
                           WashesTab):
    """Keys: F2 save (General), F3 cancel edits (General), Ctrl+N new, F4 edit, F8 delete/remove,
    F5/F6 previous/next tab, Esc back. Every button is also reachable with Tab and Enter.
    Thin: every change goes through CustomerService in a worker."""

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

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield Static("New customer" if self.customer_id is None else "Loading…", id="record-title")
        with TabbedContent(id="record-tabs"):
            with TabPane("General", id="tab-general"):
                yield from self._general_pane()
            with TabPane("Related", id="tab-related"):
                yield DataTable(id="related-table", cursor_type="row", classes="tab-table")
                yield list_buttons("related", "Add")
            with TabPane("Membership", id="tab-membership"):
                yield from self._membership_pane()
            with TabPane("Web Login", id="tab-web"):
                yield from self._web_pane()
            with TabPane("Touchpoints", id="tab-touch"):
                yield DataTable(id="touch-table", cursor_type="row", classes="tab-table")
                yield list_buttons("touch", "New")
            with TabPane("Account Benefits", id="tab-benefits"):
                yield DataTable(id="benefits-table", cursor_type="row", classes="tab-table")
                yield list_buttons("benefits", "New")
            with TabPane("Notes", id="tab-notes"):
                yield DataTable(id="notes-table", cursor_type="row", classes="tab-table")
                yield list_buttons("notes", "New")
            with TabPane("Washes", id="tab-washes"):
                yield DataTable(id="washes-table", cursor_type="row", classes="tab-table")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Customer"
        tables = {
            "related-table": RELATED_COLUMNS,
            "membership-table": MEMBERSHIP_COLUMNS,
            "payments-table": PAYMENT_COLUMNS,
            "touch-table": TOUCH_COLUMNS,
            "benefits-table": BENEFIT_COLUMNS,
            "notes-table": NOTE_COLUMNS,
            "washes-table": WASH_COLUMNS,
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
            self._watch_changes()
        self.query_one("#in-first_name", Input).focus()

    # --- showing the record ---------------------------------------------------------------------------

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
        if c.id is not None:
            self._fill_washes(c.id)
        if not self._notices_shown:
            self._notices_shown = True
            if record.notices:
                body = "\n\n".join(f"• {n.body}" for n in record.notices)
                self.app.push_screen(NoticeDialog(f"Operator notice · {record.name}", body, dialog_id="operator-notice"))

    # --- tabs -----------------------------------------------------------------------------------------

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

    # --- New, Edit, Delete: each tab's own ----------------------------------------------------------------

    def _run_for_tab(self, handlers: dict[str, Callable[[], None]]) -> None:
        handler = handlers.get(self._active_tab())
        if handler and self._need_record():
            handler()

    def action_new(self) -> None:
        if self._active_tab() == "tab-general":
            self.app.push_screen(CustomerRecordScreen(None))
            return
        self._run_for_tab({"tab-related": self._new_related, "tab-web": self._web_create,
                           "tab-touch": self._new_touchpoint, "tab-benefits": self._new_benefit,
                           "tab-notes": self._new_note,
                           # an extra benefit beside the plan's
                           "tab-membership": self._membership_benefit_add})

    def action_edit(self) -> None:
        self._run_for_tab({"tab-related": self._edit_related, "tab-membership": self._membership_plan,
                           "tab-web": self._web_username, "tab-touch": self._edit_touchpoint,
                           "tab-benefits": self._edit_benefit, "tab-notes": self._edit_note})

    def action_delete(self) -> None:
        self._run_for_tab({"tab-general": self._delete_customer, "tab-related": self._delete_related,
                           "tab-web": self._web_remove, "tab-membership": self._membership_benefit_remove,
                           "tab-touch": self._delete_touchpoint, "tab-benefits": self._delete_benefit,
                           "tab-notes": self._delete_note})

    def action_back(self) -> None:
        from clarity_tui.widgets.unsaved_guard import leave_or_ask

        leave_or_ask(self, self.unsaved_edits(), save=self._save_and_leave, discard=self.dismiss,
                     what="the contact details on the General tab")
