"""The membership terms: shown in full and scrollable. The customer reads to the end and agrees,
or the attendant confirms the terms were presented; Decline cancels the order (nothing charged)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK, CheckoutBackend, banner, flow_header
from clarity_tui.services.orders import OrderView

if TYPE_CHECKING:
    from db.models import TermsVersion

DECLINED = "declined"


class TermsScreen(Screen[OrderView | str]):
    """Dismisses with the order once accepted, DECLINED, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="terms.back", tooltip="Back to the checkout summary"),
        Binding("f5,a", "agree", "Agree", id="terms.agree", tooltip="The customer read the terms to the end and agrees"),
        Binding("f2,t", "presented", "Presented", id="terms.presented",
                tooltip="The attendant confirms the terms were presented to the customer"),
        Binding("f8,d", "decline", "Decline", id="terms.decline", tooltip="The customer declines: cancel, nothing charged"),
    ]

    def __init__(self, view: OrderView, terms: TermsVersion, backend: CheckoutBackend) -> None:
        super().__init__(id="terms")
        self.view = view
        self.terms = terms
        self.backend = backend
        self.read_to_end = False
        self._busy = False

    def compose(self) -> ComposeResult:
        t = self.terms
        yield flow_header(self)
        yield Static(banner(self.view, "Terms"), classes="flow-banner")
        yield Static(f"Terms {t.label} · sha256 {t.sha256[:12]}… · ↑↓ PgUp PgDn scroll", id="terms-version")
        with VerticalScroll(id="terms-scroll"):
            yield Static(t.text, id="terms-text", markup=False)
        yield Static("Let the customer read to the end, or confirm you presented the terms (F2).",
                     id="terms-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Decline · F8", id="decline", variant="error", action="screen.decline")
            yield Button("Presented · F2", id="presented", variant="primary", action="screen.presented")
            yield Button("Agree · F5", id="agree", variant="success", disabled=True, action="screen.agree")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Membership terms"
        scroll = self.query_one("#terms-scroll", VerticalScroll)
        scroll.focus()
        self.watch(scroll, "scroll_y", self._scrolled, init=False)
        self.call_after_refresh(self._scrolled)

    def _scrolled(self, *_: object) -> None:
        scroll = self.query_one("#terms-scroll", VerticalScroll)
        if not self.read_to_end and scroll.max_scroll_y >= 0 and scroll.scroll_y >= scroll.max_scroll_y - 0.5 \
                and scroll.size.height > 0:
            self.read_to_end = True
            self.query_one("#agree", Button).disabled = False
            self._say("The customer reached the end of the terms: Agree (F5) when they accept.", "ok")

    def _say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#terms-message", Static)
        msg.update(text)
        msg.set_class(kind == "error", "-error")
        msg.set_class(kind == "ok", "-ok")

    def action_back(self) -> None:
        if not self._busy:
            self.dismiss(BACK)

    def action_agree(self) -> None:
        if not self.read_to_end:
            self._say("The customer has not reached the end yet: scroll down, or confirm you presented them (F2).",
                      "error")
            return
        self._accept("read_to_end")

    def action_presented(self) -> None:
        self._accept("presented")

    def action_decline(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._decline()

    def _accept(self, how: str) -> None:
        if self._busy:
            return
        self._busy = True
        self._accept_worker(how)

    @work(thread=True, exclusive=True, group="terms", exit_on_error=False)
    def _accept_worker(self, how: str) -> None:
        terms_id = self.terms.id
        assert terms_id is not None  # a stored row
        try:
            view = self.backend.accept_terms(self.view.id, terms_id, how)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, view)

    @work(thread=True, exclusive=True, group="terms", exit_on_error=False)
    def _decline(self) -> None:
        try:
            self.backend.decline_terms(self.view.id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, DECLINED)

    def _failed(self, message: str) -> None:
        self._busy = False
        self._say(message, "error")
