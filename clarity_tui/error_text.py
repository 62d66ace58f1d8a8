"""What an attendant reads when a step failed: one rule for every screen's catch-all.

A `UserFacingError` says what happened in words meant for the attendant; a database problem names its
fix (db/errors.py); anything else is a bug or a surprise whose text would read as advice: it is logged
and the attendant reads the caller's fixed, calm sentence.
"""

from __future__ import annotations

import logging

from clarity_tui.errors import UserFacingError
from db.errors import as_problem

log = logging.getLogger(__name__)


def error_text(exc: BaseException, fallback: str) -> str:
    """The message to show for `exc`: its own text when meant for the attendant, else `fallback`."""
    if isinstance(exc, UserFacingError):
        return str(exc)
    problem = as_problem(exc)
    if problem is not None:
        return str(problem)
    log.error("not shown to the attendant: %r", exc, exc_info=exc)
    return fallback
