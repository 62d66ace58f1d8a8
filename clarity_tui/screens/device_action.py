"""Reusable device-call UI: a device that fails mid-flow pauses the flow with Retry / Cancel.

The flow that calls `run_device_call` keeps all its own state while it waits,
so a Retry picks up where it stopped and nothing is lost. Sales and migration
flows use it the same way the hardware screen does:

    @work(exclusive=True, exit_on_error=False)
    async def take_card(self) -> None:
        token = await run_device_call(self.app, "Card reader", lambda: reader.collect_card_to_save())
        if token is None:
            ...  # the attendant cancelled: the flow stays where it was

or, with a waiting dialog and Esc to cancel:

    self.app.push_screen(DeviceActionScreen("Card reader", call, cancel=reader.cancel), callback)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from hardware.base import DeviceError

T = TypeVar("T")

class DeviceErrorScreen(ModalScreen[bool]):
    """The device's message with Retry (True) and Cancel (False)."""

    DEFAULT_CLASSES = "dialog"  # app.tcss: the one dialog style
    BINDINGS = [
        Binding("r,enter", "retry", "Retry", id="device_error.retry", tooltip="Try the device again"),
        Binding("escape,c", "give_up", "Cancel", id="device_error.cancel", tooltip="Stop; the flow stays where it was"),
    ]

    def __init__(self, title: str, message: str, *, can_retry: bool = True) -> None:
        super().__init__(id="device-error")
        self.title_text = title
        self.message = message
        self.can_retry = can_retry

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text}: problem", classes="dialog-title")
            yield Static(self.message, id="device-error-message", classes="dialog-body", markup=False)
            with Horizontal():
                if self.can_retry:
                    yield Button("Retry · R", id="retry", variant="primary", action="screen.retry")
                yield Button("Cancel · Esc", id="cancel", action="screen.give_up")

    def action_retry(self) -> None:
        if self.can_retry:
            self.dismiss(True)

    def action_give_up(self) -> None:
        self.dismiss(False)


@dataclass(frozen=True)
class DeviceOutcome(Generic[T]):
    """How a device call ended: a result, or cancelled with the last error seen (if any)."""

    result: T | None
    error: str | None = None
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None


async def run_device_call(
    app: App[Any],
    title: str,
    call: Callable[[], Awaitable[T]],
    *,
    on_error: Callable[[DeviceError], None] | None = None,
) -> DeviceOutcome[T]:
    """Await `call`; on DeviceError ask Retry/Cancel and loop. Must run inside a worker (push_screen_wait)."""
    while True:
        try:
            return DeviceOutcome(await call())
        except DeviceError as exc:
            if on_error is not None:
                on_error(exc)
            if exc.code == "cancelled":
                return DeviceOutcome(None, str(exc), exc.code)
            retry = await app.push_screen_wait(DeviceErrorScreen(title, str(exc), can_retry=exc.code != "config"))
            if not retry:
                return DeviceOutcome(None, str(exc), exc.code)


class DeviceActionScreen(ModalScreen[DeviceOutcome[Any]]):
    """Shows a waiting message while a device call runs; Esc cancels it; errors offer Retry."""

    DEFAULT_CLASSES = "dialog"
    BINDINGS = [
        Binding("escape", "cancel_call", "Cancel", id="device_action.cancel", tooltip="Cancel the device action"),
    ]

    def __init__(
        self,
        title: str,
        call: Callable[[], Awaitable[Any]],
        *,
        cancel: Callable[[], Any] | None = None,
        waiting: str = "Waiting for the device…",
    ) -> None:
        super().__init__(id="device-action")
        self.title_text = title
        self.call = call
        self.cancel = cancel
        self.waiting = waiting
        self.errors: list[DeviceError] = []

    @classmethod
    def card_to_save(cls, reader: Any, note: str = "") -> DeviceActionScreen:
        """The customer presents a card on the reader, to keep on file (the sale, migration and record)."""
        return cls("Card reader", lambda: reader.collect_card_to_save(), cancel=reader.cancel,
                   waiting=f"Ask the customer to tap, insert or swipe their card…{note} (Esc cancels)")

    @classmethod
    def card_saved_on_reader(cls, reader: Any, db: Any, gateway: Any, *, customer_id: int | None,
                             order_id: int | None = None, membership_id: int | None = None,
                             note: str = "") -> DeviceActionScreen:
        """The customer presents a card on the reader and it is saved on them through the payments outbox
        (services.reader_card: a card_present SetupIntent). Runs like `payment_on_reader` (a worker thread,
        the reader's action on the app's loop, so Esc cancels it); dismisses with the saved CardToken. A
        refused save (declined, timed out: nothing was saved) offers Retry / Cancel like a reader error."""
        from clarity_tui.payments.errors import PaymentError
        from clarity_tui.services.card_present import pay_at_reader
        from clarity_tui.services.reader_card import save_card_on_reader

        async def call() -> Any:
            try:
                return await pay_at_reader(reader, save_card_on_reader, db, gateway, reader, customer_id=customer_id,
                                           order_id=order_id, membership_id=membership_id)
            except PaymentError as exc:
                raise DeviceError(str(exc), code=exc.code) from exc

        return cls("Card reader", call, cancel=reader.cancel,
                   waiting=f"Ask the customer to tap, insert or swipe their card…{note} (Esc cancels)")

    @classmethod
    def card_from_reader(cls, reader: Any, db: Any, gateway: Any, *, customer_id: int | None,
                         order_id: int | None = None, membership_id: int | None = None,
                         note: str = "") -> DeviceActionScreen:
        """A card to keep on file: saved through the outbox with Stripe and a Stripe Terminal reader
        (`card_saved_on_reader`), otherwise read as before (`card_to_save`); the result is a CardToken."""
        from clarity_tui.services.reader_card import saves_card_on_reader

        if saves_card_on_reader(gateway, reader):
            return cls.card_saved_on_reader(reader, db, gateway, customer_id=customer_id, order_id=order_id,
                                            membership_id=membership_id, note=note)
        return cls.card_to_save(reader, note)

    @classmethod
    def payment_on_reader(cls, reader: Any, pay: Callable[..., Any], *args: Any, amount: str = "",
                          moto: bool | None = None) -> DeviceActionScreen:
        """The first payment, card present: `pay(*args)` (e.g. SaleService.pay) runs in a worker thread
        while the customer is at `reader`; the reader's action runs on the app's loop, so Esc cancels it
        (nothing is charged). Dismisses with a DeviceOutcome whose result is what `pay` returned, or the
        exception it raised (a refused step: show its message)."""
        from clarity_tui.services.card_present import pay_at_reader

        async def call() -> Any:
            try:
                return await pay_at_reader(reader, pay, *args, moto=moto)
            except Exception as exc:  # noqa: BLE001 - a refused step: the flow shows its message
                return exc

        what = f" {amount}" if amount else ""
        ask = ("Key the card in on the reader" if moto else
               f"Ask the customer to tap, insert or swipe their card on the reader to pay{what}")
        return cls("Card reader", call, cancel=reader.cancel,
                   waiting=f"{ask}… The card is kept for the renewals. (Esc cancels)")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.waiting, id="device-action-message", classes="dialog-body", markup=False)
            with Horizontal():
                yield Button("Cancel · Esc", id="cancel", action="screen.cancel_call")

    def on_mount(self) -> None:
        self._run()

    @work(exclusive=True, group="device-action", exit_on_error=False)
    async def _run(self) -> None:
        outcome = await run_device_call(self.app, self.title_text, self.call, on_error=self.errors.append)
        self.dismiss(outcome)

    async def action_cancel_call(self) -> None:
        self.query_one("#device-action-message", Static).update("Cancelling…")
        if self.cancel is not None:
            result = self.cancel()
            if inspect.isawaitable(result):
                await result
