"""The sign-in PIN pad: pick your name, type your 6-digit PIN (touch or keyboard).

A modal over the lanes board, pushed at start so it appears with the first paint.
This module stays import-light (Textual only): the operator list and the PIN check
run in workers once the database is open (see clarity_tui/boot.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from clarity_tui.db_stack import import_database_stack
from clarity_tui.error_text import error_text
from clarity_tui.messages import CreateFirstManager

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.operators import OperatorChoice, SignedIn

PIN_LENGTH = 6
KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"]
KEY_LABELS = {"clear": "Clear", "back": "Del"}  # plain words: glyphs are missing on the Linux console
KEY_ACTIONS = {"clear": "screen.clear_pin", "back": "screen.delete"}  # the digits: screen.digit('1')…


class PinKey(Button, inherit_css=False):
    """A key of the pad: a Button drawn exactly as a default one, without Button's stylesheet. That sheet
    styles every variant (57 rules) and was the costliest CSS parsed before the first paint (issue 17:
    15 ms); the pad shows only default keys, which never take focus and skip the press effect."""

    DEFAULT_CSS = """
    PinKey:ansi.-style-default {
        border: tall $border-blurred;
        background: ansi_default;
        &:hover { background: $ansi-background; border: tall $border; }
    }
    PinKey {
        width: 100%; height: 3; min-width: 8; min-height: 3;
        line-pad: 1; text-align: center; content-align: center middle; pointer: pointer;
        &.-style-default {
            text-style: bold;
            color: $button-foreground;
            background: $surface;
            border: none;
            border-top: tall $surface-lighten-1;
            border-bottom: tall $surface-darken-1;
            &:hover { border-top: tall $surface; background: $surface-darken-1; }
        }
    }
    """

    def __init__(self, key: str) -> None:
        super().__init__(KEY_LABELS.get(key, key), id=f"pin-{key}", action=KEY_ACTIONS.get(key, f"screen.digit('{key}')"))
        self.can_focus = False  # focus stays on the list; digits come from the keys
        # Two quick taps on one digit are two digits (the default ignores the second).
        self.active_effect_duration = 0.0


class SignInScreen(ModalScreen["SignedIn"]):
    """Dismissed with a SignedIn once a PIN checks out; there is no way around it but Quit."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        *[Binding(d, f"digit('{d}')", d, show=False, priority=True, id=f"signin.digit{d}") for d in "0123456789"],
        Binding("backspace", "delete", "Delete", priority=True, id="signin.delete", tooltip="Delete the last digit"),
        Binding("escape", "clear_pin", "Clear", id="signin.clear", tooltip="Clear the PIN"),
        Binding("enter", "submit", "Sign in", id="signin.submit", tooltip="Sign in with this PIN"),
        Binding("f2", "first_manager", "First manager", id="signin.first_manager",
                tooltip="A new site: set up the first manager"),
    ]

    DEFAULT_CSS = """
    SignInScreen {
        align: center middle;
        #signin-box { width: 76; height: 22; border: thick $accent; background: $surface; padding: 0 1; }
        #signin-title { width: 1fr; text-style: bold; content-align: center middle; height: 1; }
        #signin-body { height: 16; }
        #signin-operators { width: 30; height: 16; }
        #signin-right { width: 1fr; height: 16; padding-left: 1; }
        #signin-who { height: 1; }
        #signin-dots { height: 1; text-style: bold; margin-bottom: 1; }
        #signin-pad { grid-size: 3 4; grid-gutter: 0 1; height: 12; }
        #signin-message { height: 2; }
        #signin-message.-error { color: $error; text-style: bold; }
    }
    """

    def __init__(self, *, notice: str = "", preselect: int | None = None) -> None:
        super().__init__(id="signin")
        self._pin = ""
        self._choices: list[OperatorChoice] = []
        self._notice = notice
        self._preselect = preselect
        self._busy = False
        self._first_run = False
        self._offered_first_run = False

    def compose(self) -> ComposeResult:
        with Vertical(id="signin-box"):
            yield Label("Sign in: choose your name, then type your PIN", id="signin-title")
            with Horizontal(id="signin-body"):
                yield OptionList(Option("Starting…", disabled=True), id="signin-operators")
                with Vertical(id="signin-right"):
                    yield Label("", id="signin-who")
                    yield Static(self._dots(), id="signin-dots")
                    with Grid(id="signin-pad"):
                        for key in KEYS:
                            yield PinKey(key)
            yield Static(self._notice, id="signin-message")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        # A new site set up elsewhere (`clarity-tui operators add`, another terminal) shows up here at once.
        self.app.db_changed.subscribe(self, lambda _: None if self._choices or self._busy
                                      else self.load_operators())
        self.load_operators()

    # --- operators -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="signin-load", exit_on_error=False)
    def load_operators(self) -> None:
        import_database_stack()  # never alongside the boot worker's import (see clarity_tui/db_stack.py)
        from clarity_tui.services.operators import OperatorService

        try:
            services = self.app.wait_for_services()  # the pad is up before the boot is done
            choices = OperatorService.from_services(services).choices()
            first_run = False
            if not choices:
                from clarity_tui.services.operator_admin import OperatorAdmin

                first_run = OperatorAdmin.from_services(services).needs_first_manager()
        except Exception as exc:  # noqa: BLE001 - told calmly, the pad stays up
            self.app.call_from_thread(self._say, error_text(exc, "Cannot read the operators: try again."), True)
            return
        self.app.call_from_thread(self._show_operators, choices, first_run)

    def _show_operators(self, choices: list[OperatorChoice], first_run: bool = False) -> None:
        # A reload (the boot's change notice, a new site set up elsewhere) keeps the name the person has
        # moved to: keys typed while it ran must not be undone.
        was = self.chosen
        keep = was.id if was is not None else self._preselect
        self._choices = choices
        options = self.query_one(OptionList)
        options.clear_options()
        if not choices:
            self._first_run = first_run
            if first_run:  # a new site: the first manager is created here (or with the CLI)
                options.add_option(Option("No operators yet", disabled=True))
                self._say("No operators yet: set up the first manager (F2), or run "
                          "`clarity-tui operators add NAME --role manager`.", True)
                if not self._offered_first_run:  # once: after Esc, F2 brings it back
                    self._offered_first_run = True
                    self.action_first_manager()
            else:
                options.add_option(Option("Nobody can sign in", disabled=True))
                self._say("No operator can sign in here: a manager adds operators "
                          "(`clarity-tui operators add`).", True)
            return
        self._first_run = False
        options.add_options([Option(c.name, id=str(c.id)) for c in choices])
        index = next((i for i, c in enumerate(choices) if c.id == keep), 0)
        options.highlighted = index
        self._update_who()

    @property
    def chosen(self) -> OperatorChoice | None:
        index = self.query_one(OptionList).highlighted
        if index is None or not self._choices or index >= len(self._choices):
            return None
        return self._choices[index]

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._update_who()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.action_submit()

    def _update_who(self) -> None:
        who = self.chosen
        self.query_one("#signin-who", Label).update(f"PIN for {who.name} ({who.role})" if who else "")

    # --- PIN entry ------------------------------------------------------------------------

    def _dots(self) -> str:
        return "PIN  " + " ".join("●" if i < len(self._pin) else "○" for i in range(PIN_LENGTH))

    def _show_pin(self) -> None:
        self.query_one("#signin-dots", Static).update(self._dots())

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#signin-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    def action_digit(self, digit: str) -> None:
        if self._busy or len(self._pin) >= PIN_LENGTH:
            return
        self._pin += digit
        self._show_pin()
        if len(self._pin) == PIN_LENGTH:
            self.action_submit()

    def action_delete(self) -> None:
        if not self._busy:
            self._pin = self._pin[:-1]
            self._show_pin()

    def action_clear_pin(self) -> None:
        if not self._busy:
            self._pin = ""
            self._show_pin()

    def action_submit(self) -> None:
        who = self.chosen
        if self._busy:
            return
        if who is None:
            self._say("Choose your name first (arrow keys or tap it).", True)
            return
        if len(self._pin) != PIN_LENGTH:
            self._say(f"Type all {PIN_LENGTH} digits of your PIN.", True)
            return
        self._busy = True
        self._say(f"Checking {who.name}'s PIN…")
        self._check(who.id, self._pin)

    @work(thread=True, exclusive=True, group="signin-check", exit_on_error=False)
    def _check(self, operator_id: int, pin: str) -> None:
        import_database_stack()
        from clarity_tui.services.operators import OperatorService, SignInError

        try:
            result: SignedIn = OperatorService.from_services(self.app.wait_for_services()).sign_in(operator_id, pin)
        except SignInError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the database dropped: say so, keep the pad
            self.app.call_from_thread(self._refused, error_text(exc, "Could not check the PIN: try again."))
            return
        self.app.call_from_thread(self.dismiss, result)

    # --- first run ------------------------------------------------------------------------

    def action_first_manager(self) -> None:
        """A site with no operators: the first manager is created (services/operator_admin), then signed in
        here through the usual PIN check."""
        if not self._first_run or self._busy:
            return
        self.post_message(CreateFirstManager(self._first_manager_created))  # the app opens it

    def _first_manager_created(self, result: tuple[int, str] | None) -> None:
        if not result:  # closed (Esc): re-read, another terminal may have set the site up meanwhile
            self.load_operators()
            return
        operator_id, pin = result
        self._first_run = False
        self._preselect = operator_id
        self._busy = True
        self._say("First manager created: signing in…")
        self._check(operator_id, pin)

    def _refused(self, message: str) -> None:
        self._busy = False
        self._pin = ""
        self._show_pin()
        self._say(message, True)
        if not self._choices:  # e.g. the first manager, just created: list them
            self.load_operators()
