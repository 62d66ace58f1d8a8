"""The customer record's refusals, and the parsing of typed values that produces them.

A leaf module (no service imports), so the record's parts (services/customers/), the duplicate check
and the membership screens share them without importing each other.
"""

from __future__ import annotations

import datetime as dt

from clarity_tui.errors import UserFacingError


class CustomerError(UserFacingError):
    """A refused change; str() says what happened and what to do."""


class NotFound(CustomerError, LookupError):
    pass


class ValidationFailed(CustomerError, ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


class StaleRecord(CustomerError):
    pass


class InUse(CustomerError):
    pass


def parse_date(text: str | dt.date | None, what: str, errors: dict[str, str], key: str) -> dt.date | None:
    if text is None or isinstance(text, dt.date):
        return text
    text = text.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors[key] = f"{what} '{text}' is not a date: use YYYY-MM-DD (for example 2026-12-31)."
        return None


def parse_int(text: str | int, what: str, errors: dict[str, str], key: str, minimum: int = 0) -> int:
    if isinstance(text, int):
        value = text
    else:
        try:
            value = int(str(text).strip())
        except ValueError:
            errors[key] = f"{what} '{text}' is not a whole number."
            return minimum
    if value < minimum:
        errors[key] = f"{what} must be at least {minimum}."
    return value
