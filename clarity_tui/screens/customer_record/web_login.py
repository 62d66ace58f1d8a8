"""The Web Login tab: the customer's sign-in to the web portal; a new password is shown once."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from clarity_tui.screens.customer_record.base import RecordScreenBase
from clarity_tui.services.customers import CustomerRecord
from clarity_tui.errors import UserFacingError
from clarity_tui.widgets.customer_forms import ConfirmDialog, FieldSpec, FormDialog, NoticeDialog

_NEEDS_LOGIN = ("web-username", "web-password", "web-reset", "web-remove")


class WebLoginTab(RecordScreenBase):
    def _web_pane(self) -> ComposeResult:
        yield Static("", id="web-detail")
        with Horizontal(classes="tab-buttons"):
            yield Button("Create ^N", id="web-create", variant="success", action="screen.new")
            yield Button("User F4", id="web-username", action="screen.edit")
            yield Button("Password", id="web-password", action="screen.web_password")
            yield Button("Reset mail", id="web-reset", action="screen.web_reset")
            yield Button("Remove F8", id="web-remove", variant="error", action="screen.delete")

    def _fill_web(self, record: CustomerRecord) -> None:
        w = record.web_login
        if w is None:
            text = "No web login. Create one (Ctrl+N): a random password is generated and shown once."
        else:
            pw = "set" + (", must be changed at next sign-in" if w.must_change_password else "") if w.has_password else "not set"
            sent = w.reset_sent_at.astimezone().strftime("%Y-%m-%d %H:%M") if w.reset_sent_at else "never"
            text = f"Username: {w.username}\nPassword: {pw}\nReset email last sent: {sent}\nEmail on file: {record.customer.email or '(none)'}"
        self.query_one("#web-detail", Static).update(text)
        for bid in _NEEDS_LOGIN:
            self.query_one(f"#{bid}", Button).disabled = w is None
        self.query_one("#web-create", Button).disabled = w is not None

    def _show_password(self, username: str, password: str) -> None:
        self.app.push_screen(NoticeDialog(
            "Temporary password (shown once)",
            f"Username: {username}\nPassword: {password}\n\nGive it to the customer now: it is not stored and "
            "cannot be shown again. They must change it at first sign-in.",
            dialog_id="password-once",
        ))

    def _web_create(self) -> None:
        record = self._loaded()
        if record.web_login is not None:
            self.notify("This customer already has a web login.", severity="warning")
            return
        cid = self._loaded_id()
        dialog = FormDialog("Create web login", [FieldSpec("username", "Username", value=record.customer.email or "")],
                            lambda v: self.service().create_web_login(self.actor, cid, v["username"]))

        def created(result: Any) -> None:
            view, password = result
            self._show_password(view.username, password)

        self._dialog(dialog, created)

    def _web_username(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            self.notify("No web login yet: create one with Ctrl+N.", severity="warning")
            return
        cid = self._loaded_id()
        dialog = FormDialog("Change username", [FieldSpec("username", "Username", value=record.web_login.username)],
                            lambda v: self.service().change_username(self.actor, cid, v["username"]))
        self._dialog(dialog, "Username saved.")

    def action_web_password(self) -> None:
        record = self._need_record()
        if record is None or record.web_login is None:
            return
        username, cid = record.web_login.username, self._loaded_id()

        def answered(ok: bool | None) -> None:
            if ok:
                self._generate_password(cid, username)

        self.app.push_screen(ConfirmDialog(f"Replace {username}'s password with a new random one?", yes="Generate"), answered)

    @work(thread=True, exit_on_error=False)
    def _generate_password(self, customer_id: int, username: str) -> None:
        try:
            password = self.service().random_password(self.actor, customer_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not done", severity="error", timeout=8)
            return
        self.app.call_from_thread(self._show_password, username, password)
        self.app.call_from_thread(self.load, False)

    def action_web_reset(self) -> None:
        record = self._need_record()
        if record is None or record.web_login is None:
            return
        self._send_reset(self._loaded_id())

    @work(thread=True, exit_on_error=False)
    def _send_reset(self, customer_id: int) -> None:
        self.app.call_from_thread(self.notify, "Sending the reset email…")
        try:
            to = self.service().send_password_reset(self.actor, customer_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Email not sent", severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, f"Password-reset email sent to {to}.")
        self.app.call_from_thread(self.load, False)

    def _web_remove(self) -> None:
        record = self.record
        if record is None or record.web_login is None:
            return
        cid = self._loaded_id()
        self._confirm_then(f"Remove the web login {record.web_login.username}? The customer can no longer sign in.",
                           lambda svc: svc.remove_web_login(self.actor, cid), "Web login removed.", yes="Remove")
