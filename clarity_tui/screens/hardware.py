"""The hardware screen: every device's driver, port, status and last error, and a test for each.

Test a card read (choosing the simulated reader's outcome), capture a signature
drawn live in braille, inject a plate read. Device calls go through
`run_device_call` / `DeviceActionScreen`, so a device that drops shows its
message with Retry / Cancel.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, Label, Select, Static
from clarity_tui.widgets.key_footer import KeyFooter

from clarity_tui.devices import DEVICE_LABELS, DeviceSet
from clarity_tui.errors import UserFacingError
from clarity_tui.screens.device_action import DeviceActionScreen, DeviceOutcome, run_device_call
from clarity_tui.widgets.braille import BrailleCanvas
from clarity_tui.widgets.header import ClarityHeader
from hardware.card_reader.simulated import OUTCOME_LABELS, Outcome, SimulatedCardReader
from hardware.plate_reader.base import PlateEvent
from clarity_tui.wiring import StillStarting, services_of
from hardware.signature_pad.base import PadUpdate, Signature

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp

STATE_WORDS = {"connected": "connected", "busy": "busy", "error": "ERROR", "disconnected": "not open"}


class HardwareScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="hardware.back", tooltip="Back to the lanes board"),
        Binding("c,f2", "test_card", "Card", id="hardware.test_card", tooltip="Read a card (no charge)"),
        Binding("s,f3", "sign", "Sign", id="hardware.sign", tooltip="Capture a test signature"),
        Binding("a,f4", "accept", "Accept", id="hardware.accept", tooltip="Accept the signature (the signer's Agree)"),
        Binding("x", "clear_pad", "Clear", id="hardware.clear", tooltip="Clear the signature and sign again"),
        Binding("p,f6", "inject_plate", "Plate", id="hardware.inject_plate", tooltip="Inject a plate read"),
        Binding("t,f7", "test_tunnel", "Tunnel", id="hardware.test_tunnel", tooltip="Ask the tunnel controller its state"),
        Binding("f5", "reopen", "Reopen", id="hardware.reopen", tooltip="Close and reopen every device"),
    ]

    DEFAULT_CSS = """
    HardwareScreen {
        #device-table { height: 5; overflow-x: hidden; }
        #controls { height: 3; }
        #controls Button { min-width: 10; width: auto; margin-right: 1; }
        #options { height: 1; margin-bottom: 0; }
        #options Label { padding: 0 1; }
        #outcome { width: 30; }
        #plate-input { width: 12; }
        #plate-lane { width: 16; }
        #pad-canvas { height: 1fr; min-height: 4; }
        #hw-message { height: 2; padding: 0 1; color: $text-muted; }
        #hw-message.-error { color: $error; }
        #hw-message.-ok { color: $success; }
    }
    """

    def __init__(self) -> None:
        super().__init__(id="hardware")
        self._capturing = False

    @property
    def devices(self) -> DeviceSet:
        devices = self.app.devices
        if devices is None:
            raise StillStarting()
        return devices

    def compose(self) -> ComposeResult:
        settings = services_of(self).settings
        yield ClarityHeader(icon="≋")
        yield DataTable(id="device-table", cursor_type="row", zebra_stripes=False)
        with Horizontal(id="controls"):
            yield Button("Card · C", id="test-card", variant="primary", action="screen.test_card")
            yield Button("Sign · S", id="sign", action="screen.sign")
            yield Button("Accept · A", id="accept", variant="success", action="screen.accept")
            yield Button("Clear · X", id="clear", action="screen.clear_pad")
            yield Button("Plate · P", id="inject-plate", action="screen.inject_plate")
            yield Button("Tunnel · T", id="test-tunnel", action="screen.test_tunnel")
        with Horizontal(id="options"):
            yield Label("Next card:")
            yield Select(
                [(label, outcome.value) for outcome, label in OUTCOME_LABELS.items()],
                value=self._current_outcome(), allow_blank=False, compact=True, id="outcome",
                disabled=not isinstance(self.devices.card_reader, SimulatedCardReader),
            )
            yield Label("Plate:")
            yield Input(placeholder="e.g. ABC1234", id="plate-input", compact=True, max_length=12)
            lanes = [(lane.name, lane.camera_id or lane.name) for lane in settings.site.lanes]
            yield Select(lanes, value=lanes[0][1] if lanes else Select.NULL, allow_blank=not lanes,
                         compact=True, id="plate-lane")
        yield BrailleCanvas("Press S to capture a test signature; the strokes appear here as they are drawn.",
                            id="pad-canvas")
        yield Static("", id="hw-message", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Hardware"
        self.sub_title = "Devices"
        table = self.query_one(DataTable)
        table.add_columns("Device", "Driver", "Port", "Status", "Last error")
        self.refresh_devices()
        self.app.devices_changed.subscribe(self, lambda _: self.refresh_devices())
        table.focus()

    def _current_outcome(self) -> str:
        reader = self.devices.card_reader
        return reader.outcome.value if isinstance(reader, SimulatedCardReader) else Outcome.APPROVE.value

    def refresh_devices(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for kind, device in self.devices.items():
            status = device.status
            word = STATE_WORDS.get(status.state.value, status.state.value)
            if status.state.value == "busy" and status.reason:
                word = f"busy: {status.reason}"
            table.add_row(DEVICE_LABELS[kind], device.driver_name, _clip(device.port_description, 28), _clip(word, 16),
                          _clip(device.last_error or "-", 18), key=kind)

    @on(DataTable.RowSelected, "#device-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        """The table clips long text; Enter on a device shows its full last error in the message line."""
        kind = (event.row_key.value if event.row_key else None) or ""
        device = dict(self.devices.items()).get(kind)
        if device is not None:
            detail = device.last_error or f"no errors; {device.status.state.value}"
            self.say(f"{DEVICE_LABELS[kind]} at {device.port_description}: {detail}", "error" if device.last_error else "")

    def say(self, text: str, kind: str = "") -> None:
        message = self.query_one("#hw-message", Static)
        message.update(text)
        message.set_class(kind == "error", "-error")
        message.set_class(kind == "ok", "-ok")

    # --- navigation ---------------------------------------------------------------

    def action_back(self) -> None:
        if self._capturing:
            self.devices.signature_pad.cancel()
            return
        self.app.pop_screen()

    @work(exclusive=True, group="hardware-reopen", exit_on_error=False)
    async def action_reopen(self) -> None:
        self.say("Reopening devices…")
        await self.devices.close_all()
        worker = self.app.open_devices()
        # open_devices keeps running (it feeds plate reads); wait only until every device has tried to open.
        while worker.is_running and any(d.status.state.value == "disconnected" for _, d in self.devices.items()):
            await asyncio.sleep(0.05)
        problems = [f"{DEVICE_LABELS[k]}: {d.status.reason}" for k, d in self.devices.items() if d.status.state.value == "error"]
        self.say("\n".join(problems) if problems else "All devices open.", "error" if problems else "ok")
        self.refresh_devices()

    # --- card reader ---------------------------------------------------------------

    @on(Select.Changed, "#outcome")
    def _outcome_changed(self, event: Select.Changed) -> None:
        reader = self.devices.card_reader
        if isinstance(reader, SimulatedCardReader) and isinstance(event.value, str):
            reader.set_outcome(event.value)
            self.refresh_devices()

    def action_test_card(self) -> None:
        reader = self.devices.card_reader
        self.say("Waiting for a card…")
        self.app.push_screen(
            DeviceActionScreen(
                "Card reader",
                lambda: reader.collect_card_to_save(),
                cancel=reader.cancel,
                waiting="Present a card on the reader (no charge). Esc cancels.",
            ),
            callback=self._card_done,
        )

    def _card_done(self, outcome: DeviceOutcome | None) -> None:
        self.refresh_devices()
        if outcome is None or outcome.result is None:
            error = outcome.error if outcome else None
            self.say(f"Card test stopped: {error}" if error else "Card test cancelled.", "error")
            return
        token = outcome.result
        self.say(f"Card read: {token.display}, token {token.payment_method_id}", "ok")

    # --- signature pad -----------------------------------------------------------------

    def action_sign(self) -> None:
        if self._capturing:
            self.say("Already capturing: sign on the pad, then press A to accept.")
            return
        self._capture()

    @work(exclusive=True, group="hardware-pad", exit_on_error=False)
    async def _capture(self) -> None:
        pad = self.devices.signature_pad
        canvas = self.query_one(BrailleCanvas)
        canvas.clear()
        self._capturing = True
        self.say("Sign on the pad. A accepts, X clears, Esc cancels.")

        def on_update(update: PadUpdate) -> None:
            if update.cleared:
                canvas.clear()
                return
            canvas.set_strokes([[(p.x, p.y) for p in s.points] for s in update.strokes], aspect=_pad_aspect(pad))

        async def capture() -> Signature:
            canvas.clear()
            return await pad.capture(on_update)

        try:
            outcome = await run_device_call(self.app, "Signature pad", capture)
        finally:
            self._capturing = False
            self.refresh_devices()
        if outcome.result is None:
            self.say(f"Signature stopped: {outcome.error}" if outcome.error else "Signature cancelled.", "error")
            return
        signature = outcome.result
        canvas.set_strokes([[(p.x, p.y) for p in s.points] for s in signature.strokes], aspect=signature.aspect)
        self.say(f"Signature captured: {len(signature.strokes)} strokes, {signature.point_count} points, "
                 f"{signature.duration_ms / 1000:.1f} s.", "ok")

    def action_accept(self) -> None:
        if not self._capturing:
            self.say("Nothing to accept: press S to capture a signature first.")
            return
        self.devices.signature_pad.accept()

    def action_clear_pad(self) -> None:
        self.query_one(BrailleCanvas).clear()
        if self._capturing:
            self.devices.signature_pad.clear()

    # --- tunnel controller ---------------------------------------------------------------

    @work(exclusive=True, group="hardware-tunnel", exit_on_error=False)
    async def action_test_tunnel(self) -> None:
        tunnel = self.devices.tunnel
        self.say("Asking the tunnel controller…")
        state = await tunnel.read_state()  # never raises: offline is a state
        self.refresh_devices()
        detail = f" ({tunnel.last_error})" if state.value in ("fault", "offline") and tunnel.last_error else ""
        self.say(f"Tunnel controller at {tunnel.port_description}: {state.value}{detail}",
                 "ok" if state.value in ("ready", "busy") else "error")

    # --- plate reader ----------------------------------------------------------------------

    @on(Input.Submitted, "#plate-input")
    def action_inject_plate(self) -> None:
        plate = self.query_one("#plate-input", Input).value.strip()
        lane = self.query_one("#plate-lane", Select).value
        if not plate:
            self.say("Type a plate in the Plate box first (e.g. ABC1234).", "error")
            self.query_one("#plate-input", Input).focus()
            return
        if not isinstance(lane, str):
            self.say("Choose a lane for the plate.", "error")
            return
        self._inject(PlateEvent(plate=plate, lane=lane, region=services_of(self).settings.site.plate_region,
                                confidence=1.0, image_ref="injected"))

    @work(thread=True, exclusive=True, group="hardware-plate", exit_on_error=False)
    def _inject(self, event: PlateEvent) -> None:
        from clarity_tui.devices import plate_recorder

        services = services_of(self)
        record = plate_recorder(services.db, services.terminal)
        try:
            session_id = record(event)
        except UserFacingError as exc:  # an unreadable plate, a lane the settings do not map
            self.app.call_from_thread(self.say, f"Plate not recorded: {exc}", "error")
            return
        self.app.call_from_thread(self.say, f"Plate {event.plate.upper()} recorded at {event.lane}: session {session_id}.", "ok")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _pad_aspect(pad: object) -> float | None:
    model = getattr(pad, "model", None)
    return getattr(model, "aspect", None)
