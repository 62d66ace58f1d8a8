"""Customer search: one box (name, phone, email, customer number, plate); results as you type."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Input, Static
from textual.worker import get_current_worker
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.messages import OpenCustomer
from clarity_tui.services.identity import display_phone
from clarity_tui.services.search import SearchResult, SearchService
from clarity_tui.typeahead import Hold, hold
from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.wiring import services_of

DEBOUNCE_SECONDS = 0.15
log = logging.getLogger(__name__)


class CustomerSearchScreen(Screen[int | None]):
    """Normal mode opens the chosen record (asking the app: `OpenCustomer`); pick mode (`pick=True`)
    returns its customer id.

    The two have their own ids: a record opened from the search (F7) can still pick a customer
    (the Related tab's Search) over it, while a second search of either kind is never pushed
    (see clarity_tui/screen_open.py)."""

    BINDINGS = [
        Binding("escape", "close", "Close", id="search.close", tooltip="Close the search"),
        Binding("f2", "view", "View", id="search.view", tooltip="Open the highlighted customer"),
        Binding("ctrl+n,f3", "new_customer", "New", id="search.new", tooltip="Create a new customer"),
        Binding("down", "to_results", "Results", show=False, id="search.to_results"),
    ]

    DEFAULT_CSS = """
    CustomerSearchScreen {
        #search-box { margin: 0 1; }
        #search-status { height: 1; padding: 0 1; color: $text-muted; }
        #results { height: 1fr; margin: 0 1; }
        #search-buttons { height: 3; padding: 0 1; }
        #search-buttons Button { width: 1fr; }
    }
    """

    @dataclass
    class Searched(Message):
        """Results were shown for `term` (lets tests wait for the debounce and the worker)."""

        term: str
        count: int

    def __init__(self, query: str = "", *, pick: bool = False) -> None:
        super().__init__(id="customer-pick" if pick else "customer-search")
        self.initial_query = query
        self.pick = pick
        self.result: SearchResult | None = None
        self._debounce: Timer | None = None
        self._view_when_shown: Hold | None = None  # Enter came before the results (issue 14)

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield Input(self.initial_query, placeholder="Name, phone, email, customer # or plate", id="search-box")
        yield Static("Type to search.", id="search-status")
        yield DataTable(id="results", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="search-buttons"):
            yield Button("Choose F2" if self.pick else "View F2", id="search-view", variant="primary",
                         action="screen.view")
            if not self.pick:
                yield Button("New customer ^N", id="search-new", variant="success", action="screen.new_customer")
            yield Button("Close Esc", id="search-close", action="screen.close")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Pick a customer" if self.pick else "Customer search"
        table = self.query_one("#results", DataTable)
        table.add_column("Name", width=22, key="name")
        table.add_column("Cust #", width=8, key="number")
        table.add_column("Phone", width=15, key="phone")
        table.add_column("Plate", width=9, key="plate")
        table.add_column("Email", key="email")
        self.query_one("#search-box", Input).focus()
        if self.initial_query:
            self.run_search(self.initial_query)

    @property
    def search(self) -> SearchService:
        return SearchService.from_services(services_of(self))

    # --- typing -> search ---------------------------------------------------------------

    @on(Input.Changed, "#search-box")
    def _typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        term = event.value
        self._debounce = self.set_timer(DEBOUNCE_SECONDS, lambda: self.run_search(term))

    @work(thread=True, exclusive=True, group="customer-search", exit_on_error=False)
    def run_search(self, term: str) -> None:
        try:
            result = self.search.search(term)
        except UserFacingError as exc:
            self.app.call_from_thread(self._failed, f"Search failed: {exc}")
            return
        except Exception:  # logged (its text is not advice); the box stays usable
            log.exception("customer search for %r failed", term)
            self.app.call_from_thread(self._failed, "Search failed. Check the database connection and try again.")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, result)

    def _failed(self, message: str) -> None:
        self._release_view()
        self.query_one("#search-status", Static).update(message)

    def _show(self, result: SearchResult) -> None:
        if result.term != self.query_one("#search-box", Input).value.strip():
            return  # an older query finished after a newer keystroke
        self.result = result
        table = self.query_one("#results", DataTable)
        table.clear()
        region = services_of(self).settings.site.phone_region
        for hit in result.hits:
            table.add_row(hit.name or "(no name)", hit.customer_number, display_phone(hit.phone_e164, region),
                          hit.plates[0] if hit.plates else "", hit.email or "", key=str(hit.customer_id))
        status = self.query_one("#search-status", Static)
        if not result.term:
            status.update("Type to search.")
        elif not result.hits:
            status.update(f"No customer matches '{result.term}'. Check the spelling, or create a new customer (Ctrl+N).")
        else:
            more = "+" if len(result.hits) >= 50 else ""
            status.update(f"{len(result.hits)}{more} match{'es' if len(result.hits) != 1 else ''} · Enter or F2 opens")
        self.post_message(self.Searched(result.term, len(result.hits)))
        if self._view_when_shown is not None:  # Enter was typed before these results: it opens now
            self._release_view()
            self.action_view()

    def _release_view(self) -> None:
        if self._view_when_shown is not None:
            self._view_when_shown.release()
            self._view_when_shown = None

    def on_unmount(self) -> None:
        self._release_view()

    # --- choosing ---------------------------------------------------------------------------

    def _highlighted_id(self) -> int | None:
        table = self.query_one("#results", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value) if row_key.value else None

    def open_customer(self, customer_id: int) -> None:
        if self.pick:
            self.dismiss(customer_id)
            return
        self.app.post_message(OpenCustomer(customer_id))

    def action_view(self) -> None:
        typed = self.query_one("#search-box", Input).value.strip()
        if typed and (self.result is None or self.result.term != typed):
            # Enter typed before the results (type-ahead, issue 14): search now, open once they show;
            # the keys after it wait (clarity_tui/typeahead.py), as if typed once the results were there.
            if self._debounce is not None:
                self._debounce.stop()
            if self._view_when_shown is None:
                self._view_when_shown = hold(self.app, "customer search: Enter before the results")
            self.run_search(typed)
            return
        cid = self._highlighted_id()
        if cid is None:
            self.notify("No customer to open: type a name, phone, email, number or plate first.", severity="warning")
            return
        self.open_customer(cid)

    @on(Input.Submitted, "#search-box")
    def _submitted(self) -> None:
        self.action_view()

    @on(DataTable.RowSelected, "#results")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.open_customer(int(event.row_key.value))

    def action_to_results(self) -> None:
        table = self.query_one("#results", DataTable)
        if table.row_count:
            table.focus()

    def action_new_customer(self) -> None:
        if self.pick:
            return
        self.app.post_message(OpenCustomer(None))

    def action_close(self) -> None:
        self.dismiss(None)
