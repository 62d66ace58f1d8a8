"""Pilot steps through the migration flow: the app with a simulated SMS reply, and each step's wait."""

from __future__ import annotations

from typing import Any, Literal

from textual.pilot import Pilot
from textual.widgets import Input

from clarity_tui.app import ClarityApp
from clarity_tui.config import Settings
from db.engine import Database
from tests.helpers.sale_ui import Keys, open_session, sale_app, signer_done
from tests.helpers.ui import at, devices_ready, text_of, wait_until


def migration_app(settings: Settings, db: Database, *, reply: Literal["auto", "never"] = "auto", timeout: int = 30,
                  **kw: Any) -> ClarityApp:
    """The app with fast simulated devices and a simulated SMS reply (`reply`, after 0.1 s)."""
    settings.messaging.simulated_reply = reply
    settings.messaging.simulated_reply_after_seconds = 0.1
    settings.messaging.reply_timeout_seconds = timeout
    settings.messaging.poll_interval_seconds = 1.0
    return sale_app(settings, db, **kw)


async def start(pilot: Pilot, session_id: int) -> None:
    """Board -> the session -> Migrate Membership (F3): the match screen."""
    await devices_ready(pilot)
    await open_session(pilot, Keys(pilot), session_id)
    await pilot.press("f3")  # Migrate Membership
    await at(pilot, "migration-match")


async def to_contact(pilot: Pilot, session_id: int) -> None:
    """Board -> the session -> Migrate Membership (F3) -> That's Me (F5) on the first candidate -> Contact."""
    await start(pilot, session_id)
    await pilot.press("f5")  # That's Me
    await at(pilot, "migration-contact")


async def contact_by_sms(pilot: Pilot) -> None:
    """Text the customer for an email, wait for the reply to fill it, confirm."""
    app = pilot.app
    await at(pilot, "migration-contact")
    await pilot.press("f2")  # Text for email
    await wait_until(pilot, lambda: "@example.com" in app.screen.query_one("#contact-email", Input).value,
                     "the customer's reply to fill the email")
    await pilot.press("f5")  # Confirm


async def sign_and_agree(pilot: Pilot) -> None:
    """Summary -> terms (presented) -> signature -> Agree."""
    await at(pilot, "checkout-summary")
    await pilot.press("enter")  # Checkout
    await at(pilot, "terms")
    await pilot.press("f2")  # presented
    await at(pilot, "signature")
    await signer_done(pilot)
    await pilot.press("f5")  # Agree


async def card_to_agree(pilot: Pilot) -> None:
    """The card step (the reader) -> summary -> terms (presented) -> signature -> Agree."""
    app = pilot.app
    assert isinstance(app, ClarityApp)
    await at(pilot, "migration-card")
    await pilot.press("r")  # the reader
    await wait_until(pilot, lambda: "Card read" in text_of(app, "#card-message"), "the card read")
    await pilot.press("f5")
    await sign_and_agree(pilot)
