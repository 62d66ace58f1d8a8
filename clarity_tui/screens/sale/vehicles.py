"""Family plan: choose the vehicles on the membership (from the garage, or a new plate)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.errors import UserFacingError
from clarity_tui.screens.checkout_shared.common import BACK, banner, flow_header
from clarity_tui.services.orders import OrderView, SaleService, VehicleOption


class FamilyVehiclesScreen(Screen[OrderView | str]):
    """Dismisses with the order, or BACK."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="family.back", tooltip="Back to the plans"),
        Binding("f5", "done", "Continue", id="family.done", tooltip="Continue with these vehicles"),
        Binding("f4,ctrl+a", "focus_plate", "Add plate", id="family.add", tooltip="Type a new plate to add"),
    ]

    def __init__(self, view: OrderView, service: SaleService) -> None:
        super().__init__(id="family-vehicles")
        self.view = view
        self.service = service
        self.garage: list[VehicleOption] = []

    def compose(self) -> ComposeResult:
        yield flow_header(self)
        yield Static(banner(self.view, "Vehicles"), classes="flow-banner")
        yield OptionList(id="garage")
        yield Input(placeholder="Add a vehicle by plate, then Enter (F4)", id="new-plate")
        yield Static("", id="family-price")
        yield Static("Enter or Space puts a vehicle on (or off) the membership.", id="family-message",
                     classes="flow-message")
        with Horizontal(classes="flow-buttons"):
            yield Button("Back · Esc", id="back", action="screen.back")
            yield Button("Continue · F5", id="done", variant="success", action="screen.done")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Vehicles on the membership"
        self.refresh_garage()
        self.query_one("#garage", OptionList).focus()

    @work(thread=True, exclusive=True, group="family-load", exit_on_error=False)
    def refresh_garage(self) -> None:
        garage = self.service.garage(self.view.id)
        view = self.service.order(self.view.id)
        self.app.call_from_thread(self._show, view, garage)

    def _show(self, view: OrderView, garage: list[VehicleOption]) -> None:
        self.view, self.garage = view, garage
        on = {v.id for v in view.vehicles}
        options = self.query_one("#garage", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        for v in garage:
            mark = "☑" if v.id in on else "☐"
            note = f"  (on {v.on_membership})" if v.on_membership and v.id not in on else ""
            options.add_option(Option(Text(f"{mark} {v.label}{note}"), id=str(v.id)))
        if garage:
            options.highlighted = min(highlighted or 0, len(garage) - 1)
        plan = view.plan
        if plan is not None:
            text = f"{len(view.vehicles)} of at most {plan.vehicle_limit} vehicles · {view.price_text}"
            self.query_one("#family-price", Static).update(text)

    def _say(self, text: str, error: bool = False) -> None:
        msg = self.query_one("#family-message", Static)
        msg.update(text)
        msg.set_class(error, "-error")

    @on(OptionList.OptionSelected, "#garage")
    def _toggle(self, event: OptionList.OptionSelected) -> None:
        vehicle_id = int(event.option.id or 0)
        on_membership = any(v.id == vehicle_id for v in self.view.vehicles)
        plate = next((v.plate for v in self.garage if v.id == vehicle_id), "")
        self._change(vehicle_id, plate, not on_membership)

    @work(thread=True, exclusive=True, group="family-change", exit_on_error=False)
    def _change(self, vehicle_id: int, plate: str, add: bool) -> None:
        try:
            if add:
                self.service.add_vehicle(self.view.id, plate)
            else:
                self.service.remove_vehicle(self.view.id, vehicle_id)
        except UserFacingError as exc:
            self.app.call_from_thread(self._say, str(exc), True)
            return
        self.app.call_from_thread(self._say, f"{plate} {'added' if add else 'removed'}.")
        self.refresh_garage()

    @on(Input.Submitted, "#new-plate")
    def _add_plate(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._change(0, event.value.strip(), True)
            event.input.value = ""

    def action_focus_plate(self) -> None:
        self.query_one("#new-plate", Input).focus()

    def action_done(self) -> None:
        self.dismiss(self.view)

    def action_back(self) -> None:
        self.dismiss(BACK)
