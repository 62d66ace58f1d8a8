"""Typed messages that cross widget/screen boundaries."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class DatabaseChanged(Message):
    """Some process committed to the site database (from the change feed)."""


@dataclass
class OpenSession(Message):
    """The attendant chose a session bubble."""

    session_id: int
