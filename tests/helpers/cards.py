"""Simulated card tokens, as the reader hands them over."""

from __future__ import annotations

import datetime as dt

from clarity_tui.payments.cards import CardToken
from clarity_tui.payments.sim_store import sim_token

READER_CARD_EXPIRY = dt.date.today().year + 2


def card(outcome: str = "ok") -> CardToken:
    """A Visa with a fixed expiry; `outcome` is what the simulated gateway does with it."""
    return CardToken(sim_token(outcome), "visa", "4242", 4, 2029)


def reader_card() -> CardToken:
    """A Visa that expires in two years."""
    return CardToken(sim_token("ok"), "visa", "4242", 12, READER_CARD_EXPIRY)
