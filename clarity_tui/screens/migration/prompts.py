"""Asking before the wrong thing is sold (issue 14 item 4).

- LegacyPurchasePrompt: Purchase on a LEGACY bubble asks "This car belongs to legacy member X (status,
  last billed DATE). Migrate them instead?" with Migrate / Sell new anyway / Back: a new membership for
  a legacy member would be billed by both systems.
- InactiveReasonPrompt: a cancelled or terminated legacy member is migrated only with a manager's
  approval; the attendant types the reason first (it is audited with the approving manager).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from clarity_tui.messages import StartMigration
from clarity_tui.screens.checkout_shared.common import actor_of
from clarity_tui.services.migration import LegacyCandidate
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual.dom import DOMNode

MIGRATE, SELL = "migrate", "sell"


def legacy_question(c: LegacyCandidate) -> str:
    billed = c.last_billed_on.strftime("%b %d, %Y") if c.last_billed_on else "last billing not in the export"
    if c.last_billed_on:
        billed = f"last billed {billed}"
    return (f"This car belongs to legacy member {c.name} ({c.status or 'status unknown'}, {billed}). "
            "Migrate them instead? A new membership would be billed by both systems.")


class LegacyPurchasePrompt(ModalScreen[str | None]):
    """Dismissed with MIGRATE, SELL or None (Back)."""

    BINDINGS = [
        Binding("f3,m", "answer('migrate')", "Migrate", id="legacy_purchase.migrate",
                tooltip="Migrate the legacy member instead of selling a new membership"),
        Binding("f2,s", "answer('sell')", "Sell new anyway", id="legacy_purchase.sell",
                tooltip="Sell a new membership (the legacy POS must stop billing them)"),
        Binding("escape,b", "answer('back')", "Back", id="legacy_purchase.back", tooltip="Back to the session"),
    ]

    def __init__(self, candidate: LegacyCandidate) -> None:
        super().__init__(id="legacy-purchase", classes="prompt")
        self.candidate = candidate

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Legacy member", classes="prompt-title")
            yield Static(legacy_question(self.candidate), id="legacy-purchase-text", classes="prompt-text",
                         markup=False)
            with Horizontal(classes="prompt-buttons"):
                yield Button("Migrate · F3", id="legacy-purchase-migrate", variant="primary",
                             action="screen.answer('migrate')")
                yield Button("Sell new anyway · F2", id="legacy-purchase-sell", variant="warning",
                             action="screen.answer('sell')")
                yield Button("Back · Esc", id="legacy-purchase-back", action="screen.answer('back')")

    def on_mount(self) -> None:
        self.query_one("#legacy-purchase-migrate", Button).focus()

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer if answer in (MIGRATE, SELL) else None)


class InactiveReasonPrompt(ModalScreen[str | None]):
    """The reason for migrating a cancelled or terminated member; dismissed with it, or None (Back)."""

    BINDINGS = [
        Binding("f5", "continue", "Continue", id="inactive_reason.continue",
                tooltip="Continue: a manager approves with their PIN"),
        Binding("escape", "back", "Back", id="inactive_reason.back", tooltip="Back to the match: nothing is changed"),
    ]

    def __init__(self, message: str) -> None:
        super().__init__(id="inactive-reason", classes="prompt")
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Cancelled legacy membership", classes="prompt-title")
            yield Static(self.message, id="inactive-reason-text", classes="prompt-text", markup=False)
            yield Input(placeholder="Why migrate them? (e.g. customer came back)", max_length=200,
                        id="inactive-reason-input")
            yield Static("", id="inactive-reason-error", classes="prompt-text", markup=False)
            with Horizontal(classes="prompt-buttons"):
                yield Button("Continue · F5", id="inactive-reason-continue", variant="warning",
                             action="screen.continue")
                yield Button("Back · Esc", id="inactive-reason-back", action="screen.back")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_continue()

    def action_continue(self) -> None:
        reason = " ".join(self.query_one(Input).value.split())
        if not reason:
            self.query_one("#inactive-reason-error", Static).update("Type the reason first: it is audited.")
            return
        self.dismiss(reason)

    def action_back(self) -> None:
        self.dismiss(None)


def offer_migration(node: DOMNode, session_id: int, legacy_member_id: int, sell: Callable[[], None]) -> None:
    """Purchase on a LEGACY bubble: ask first (in `node`'s worker). Migrate asks the app to start the
    migration (StartMigration); Sell new anyway, or nothing left to migrate, runs `sell` (the sale)."""

    async def ask() -> None:
        from clarity_tui.services.migration import MigrationError, MigrationService

        service = MigrationService.from_services(services_of(node), actor_of(node))
        try:
            candidate = await asyncio.to_thread(service.legacy, legacy_member_id)
        except MigrationError:
            candidate = None
        if candidate is None or candidate.migrated:
            sell()  # nothing to migrate any more
            return
        answer = await node.app.push_screen_wait(LegacyPurchasePrompt(candidate))
        if answer == MIGRATE:
            node.post_message(StartMigration(session_id))
        elif answer == SELL:
            sell()

    node.run_worker(ask(), name="legacy-purchase", group="legacy-purchase", exclusive=True, exit_on_error=False)


__all__ = ["InactiveReasonPrompt", "LegacyPurchasePrompt", "legacy_question", "offer_migration"]
