"""Manager approval in place: a manager picks their name and types their PIN, where the action is.

Manager-only actions (the migration's billing-date override, refunds, operator management…) offer this
instead of refusing after an attendant has filled the form. Use it from a worker (push_screen_wait
needs one), after the form is validated and before the service call:

    from clarity_tui.widgets.manager_pin import manager_approval

    @work(exclusive=True, group="…", exit_on_error=False)
    async def action_save(self) -> None:
        manager = await manager_approval(self.app, "migration.billing_date_override",
                                         why="The first billing date is in the past.",
                                         entity="sales_order", entity_id=order_id)
        if manager is None:
            return  # cancelled: nothing changed
        await asyncio.to_thread(service.override_billing_date, order_id, day, manager)

`manager_approval` returns the signed-in actor at once when it is a manager who signed in with their
PIN; otherwise it pushes `ManagerPinModal`. Either way the result is an approving manager `Actor`
(role manager, their operator id, this terminal) or None. Pass that actor to the service, which checks
it again (services check permissions, screens only ask).

The modal is a thin view over the one PIN check (services/pin_check.PinService.approve_manager):
wrong PINs count toward that manager's lockout (the PIN pad's own), a locked-out manager is refused,
and every failure, lockout and approval is audited with the action, the entity and who asked.

Keys: ↑/↓ choose the manager, digits type the PIN, Enter approves, Esc cancels. Fits 80x24.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from clarity_tui.error_text import error_text
from clarity_tui.errors import UserFacingError
from clarity_tui.operator_session import operator_session_of
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.pin_check import PinService


def signed_in_manager(app: App[Any]) -> Actor | None:
    """The signed-in actor if it is a manager with an operator row (they typed their PIN to sign in)."""
    actor = operator_session_of(app).actor
    if actor.operator_id is not None and str(actor.role) == "manager":
        return actor
    return None


async def manager_approval(app: App[Any], action: str, *, why: str = "", entity: str | None = None,
                           entity_id: Any = None) -> Actor | None:
    """An approving manager for `action`: the signed-in manager, or one who types their PIN (see the module
    docstring). None when cancelled. Call from a worker."""
    manager = signed_in_manager(app)
    if manager is not None:
        return manager
    return await app.push_screen_wait(ManagerPinModal(action, why=why, entity=entity, entity_id=entity_id))


class ManagerPinModal(ModalScreen["Actor | None"]):
    """Pick a manager, type their PIN: dismissed with the approving manager (an Actor) or None (Esc).

    action: what is approved, as audited (e.g. "migration.billing_date_override").
    why: one line shown to the manager (what they are approving).
    entity, entity_id: the row it is about, for the audit rows (e.g. "sales_order", 42)."""

    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="manager_pin.cancel", tooltip="Cancel: nothing is changed"),
        Binding("up", "move(-1)", "Previous", show=False, id="manager_pin.up", tooltip="The previous manager"),
        Binding("down", "move(1)", "Next", show=False, id="manager_pin.down", tooltip="The next manager"),
        Binding("f5", "approve", "Approve", id="manager_pin.approve", tooltip="Check the manager's PIN"),
    ]

    DEFAULT_CSS = """
    ManagerPinModal {
        align: center middle;
        & > Vertical { width: 66; max-width: 100%; height: auto; padding: 0 1; border: thick $warning;
                       background: $surface; }
        #manager-pin-title { text-style: bold; width: 1fr; }
        #manager-pin-why { width: 1fr; height: auto; margin-bottom: 1; }
        #manager-pin-body { height: 7; }
        #manager-pin-list { width: 30; height: 7; }
        #manager-pin-right { width: 1fr; height: 7; padding-left: 1; }
        #manager-pin-who { height: 1; }
        #manager-pin-input { width: 1fr; }
        #manager-pin-message { height: 2; width: 1fr; }
        #manager-pin-message.-error { color: $error; text-style: bold; }
        Horizontal.buttons { height: 3; align: center middle; }
        Button { margin: 0 1; min-width: 14; }
    }
    """

    def __init__(self, action: str, *, why: str = "", entity: str | None = None, entity_id: Any = None) -> None:
        super().__init__(id="manager-pin")
        self.action_name = action
        self.why = why
        self.entity = entity
        self.entity_id = entity_id
        self._managers: list[tuple[int, str, Any]] = []
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Manager approval", id="manager-pin-title")
            yield Static(self.why or "A manager must approve this.", id="manager-pin-why", markup=False)
            with Horizontal(id="manager-pin-body"):
                yield OptionList(Option("Loading…", disabled=True), id="manager-pin-list")
                with Vertical(id="manager-pin-right"):
                    yield Label("", id="manager-pin-who")
                    yield Input(placeholder="Manager PIN", password=True, max_length=12, id="manager-pin-input")
                    yield Static("↑/↓ manager · Enter approves", classes="hint")
            yield Static("", id="manager-pin-message", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel · Esc", id="manager-pin-cancel", action="screen.cancel")
                yield Button("Approve · Enter", id="manager-pin-approve", variant="warning", action="screen.approve")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._load()

    # --- managers ---------------------------------------------------------------------------------------------

    def _pins(self) -> PinService:
        from clarity_tui.services.pin_check import PinService

        return PinService.from_services(services_of(self))

    @work(thread=True, exclusive=True, group="manager-pin-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            managers = self._pins().managers()
        except Exception as exc:  # noqa: BLE001 - told calmly; the modal stays
            self.app.call_from_thread(self._say, error_text(exc, "Cannot read the managers: try again."), True)
            return
        self.app.call_from_thread(self._show_managers, managers)

    def _show_managers(self, managers: list[tuple[int, str, Any]]) -> None:
        before = self.chosen  # a reload (after a refusal) keeps the manager chosen
        self._managers = managers
        options = self.query_one(OptionList)
        options.clear_options()
        if not managers:
            options.add_option(Option("No managers", disabled=True))
            self._say("No active manager has a PIN: add one with `clarity-tui operators add NAME --role manager`.",
                      True)
            return
        now = self.app.now()
        options.add_options([Option(name + ("  (locked)" if until is not None and until > now else ""), id=str(i))
                             for i, name, until in managers])
        options.highlighted = next((n for n, (i, _, _) in enumerate(managers) if before and i == before[0]), 0)
        self._update_who()

    @property
    def chosen(self) -> tuple[int, str] | None:
        index = self.query_one(OptionList).highlighted
        if index is None or index >= len(self._managers):
            return None
        manager_id, name, _ = self._managers[index]
        return manager_id, name

    def _update_who(self) -> None:
        who = self.chosen
        self.query_one("#manager-pin-who", Label).update(f"PIN for {who[1]}" if who else "")

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._update_who()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.query_one(Input).focus()

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self._managers:
            options.highlighted = max(0, min(len(self._managers) - 1, (options.highlighted or 0) + step))

    # --- the check -----------------------------------------------------------------------------------------------

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_approve()

    def action_approve(self) -> None:
        who = self.chosen
        if self._busy:
            return
        if who is None:
            self._say("Choose the manager first (↑/↓).", True)
            return
        pin = self.query_one(Input).value.strip()
        if not pin:
            self._say(f"{who[1]}: type your PIN, then Enter.", True)
            return
        self._busy = True
        self._say(f"Checking {who[1]}'s PIN…")
        self._check(who[0], pin)

    @work(thread=True, exclusive=True, group="manager-pin-check", exit_on_error=False)
    def _check(self, manager_id: int, pin: str) -> None:
        try:
            manager = self._pins().approve_manager(
                manager_id, pin, action=self.action_name, entity=self.entity, entity_id=self.entity_id,
                requested_by=self.app.actor)
        except UserFacingError as exc:
            self.app.call_from_thread(self._refused, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the database dropped: say so, keep the modal
            self.app.call_from_thread(self._refused, error_text(exc, "Could not check the PIN: try again."))
            return
        self.app.call_from_thread(self.dismiss, manager)

    def _refused(self, message: str) -> None:
        self._busy = False
        field = self.query_one(Input)
        field.value = ""
        field.focus()
        self._say(message, True)
        self._load()  # a lockout shows in the list

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#manager-pin-message", Static)
        message.update(text)
        message.set_class(error, "-error")

    def action_cancel(self) -> None:
        if not self._busy:
            self.dismiss(None)

