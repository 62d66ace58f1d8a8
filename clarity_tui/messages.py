"""Typed messages that cross widget/screen boundaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.message import Message


@dataclass
class DatabaseChanged(Message):
    """Some process committed to the site database (from the change feed)."""


@dataclass
class OpenSession(Message):
    """The attendant chose a session bubble."""

    session_id: int


# --- navigation: screens ask the app (ClarityApp's handlers) instead of importing each other ---------------


@dataclass
class OpenCustomer(Message):
    """Open a customer's record; None opens a blank record for a new customer."""

    customer_id: int | None


@dataclass
class SearchCustomers(Message):
    """Open customer search. With `pick`, the search is a picker: `pick` gets the chosen id (None: none chosen)."""

    query: str = ""
    pick: Callable[[int | None], None] | None = None


@dataclass
class StartSale(Message):
    """Sell a membership for this session (seed 000); the flow runs in a worker of the session's screen."""

    session_id: int


@dataclass
class StartMigration(Message):
    """Migrate this session's legacy member (seed 001); the flow runs in a worker of the session's screen."""

    session_id: int


@dataclass
class CreateFirstManager(Message):
    """A site with no operators: create its first manager. `done` gets (operator id, PIN), or None if closed."""

    done: Callable[[tuple[int, str] | None], None]
