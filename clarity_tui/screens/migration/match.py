"""Legacy match: the candidates for the session's plate (fuzzy, ranked) or a typed phone/plate.

The customer confirms with "That's Me"; "Not me" drops that candidate and returns to the search.
Dismisses with the chosen legacy member id, or BACK.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK, flow_header
from clarity_tui.services.migration import LegacyCandidate, MigrationService
from clarity_tui.services.migration_guard import is_inactive


def candidate_prompt(c: LegacyCandidate) -> str:
    bill = c.next_bill_on.strftime("%b %d, %Y") if c.next_bill_on else "no date"
    plates = ", ".join(c.plates) or "no plate"
    lines = [f"{c.name}  ·  {c.plan_name or '?'}  ·  next bill {bill}",
             f"   {plates} · {c.vehicle or 'vehicle ?'} · {c.phone_hint}",
             f"   {c.standing}" + ("  ·  MANAGER APPROVAL" if is_inactive(c.status) and not c.migrated else ""),
             f"   {c.match}" + ("  ·  ALREADY MIGRATED" if c.migrated else "")]
    return "\n".join(lines)


class LegacyMatchScreen(Screen[int | str]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="migration_match.back", tooltip="Back to the session"),
        Binding("f5", "thats_me", "That's Me", id="migration_match.thats_me",
                tooltip="The customer confirms this is them"),
        Binding("f4", "not_me", "Not me", id="migration_match.not_me",
                tooltip="Not this member: back to the search"),
        Binding("f2", "search", "Search", id="migration_match.search", tooltip="Search by plate or phone"),
    ]

    def __init__(self, plate: str, candidates: list[LegacyCandidate], service: MigrationService,
                 notice: str = "") -> None:
        super().__init__(id="migration-match")
        self.plate = plate
        self.candidates = list(candidates)
        self.service = service
        self.notice = notice

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(f"[b]Migrate membership[/b] · plate {self.plate}", classes="flow-banner")
        with Horizontal(id="match-search-row"):
            yield Input(placeholder="Plate or phone number, then Enter", id="match-search")
        yield OptionList(id="match-list")
        yield Static("", id="match-message", classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Not me · F4", id="not-me", variant="warning", action="screen.not_me")
            yield Button("That's Me · F5", id="thats-me", variant="success", action="screen.thats_me")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Legacy match"
        self._show(self.candidates, self.notice)

    def _say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#match-message", Static)
        msg.update(text)
        msg.set_class(kind == "error", "-error")
        msg.set_class(kind == "ok", "-ok")

    def _show(self, candidates: list[LegacyCandidate], notice: str = "") -> None:
        self.candidates = candidates
        options = self.query_one("#match-list", OptionList)
        options.clear_options()
        options.add_options([Option(candidate_prompt(c), id=f"legacy-{c.id}") for c in candidates])
        if candidates:
            options.highlighted = 0
            options.focus()
            many = f"{len(candidates)} possible members: ask which one is theirs. " if len(candidates) > 1 else ""
            self._say(notice or f"{many}Show the customer and ask: is this you? That's Me (F5) or Not me (F4).",
                      "error" if notice else "")
        else:
            self.query_one("#match-search", Input).focus()
            self._say(notice or "No legacy member matches. Search by the customer's phone number or their plate, "
                                "or go back and sell a new membership.", "error")

    @on(Input.Submitted, "#match-search")
    def _submitted(self, event: Input.Submitted) -> None:
        self._search(event.value)

    def action_search(self) -> None:
        self.query_one("#match-search", Input).focus()

    @work(thread=True, exclusive=True, group="migration-search", exit_on_error=False)
    def _search(self, text: str) -> None:
        try:
            found = self.service.search(text)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), "error")
            return
        note = "" if found else f"No legacy member matches '{text.strip()}': try the phone number or another plate."
        self.app.call_from_thread(self._show, found, note)

    def _highlighted(self) -> LegacyCandidate | None:
        options = self.query_one("#match-list", OptionList)
        if options.highlighted is None or not self.candidates:
            return None
        return self.candidates[options.highlighted]

    def action_thats_me(self) -> None:
        chosen = self._highlighted()
        if chosen is None:
            self._say("Choose the customer's legacy membership first (search by plate or phone).", "error")
            return
        if chosen.migrated:
            self._say(chosen.migrated, "error")
            return
        self.dismiss(chosen.id)

    def action_not_me(self) -> None:
        chosen = self._highlighted()
        rest = [c for c in self.candidates if chosen is None or c.id != chosen.id]
        self._show(rest, "" if rest else "Not them: search by the customer's phone number or their plate.")
        if not rest:
            self.query_one("#match-search", Input).focus()

    def action_back(self) -> None:
        self.dismiss(BACK)

    @on(OptionList.OptionSelected, "#match-list")
    def _selected(self, _: OptionList.OptionSelected) -> None:
        self.action_thats_me()
