"""The one base class of errors an attendant may read.

A screen shows `str(exc)` only for a `UserFacingError`: its message says what happened and what to do.
Anything else (a ValueError, a KeyError from a bug) is a programming error: the crash guard logs it and
the attendant gets the calm error screen, never the exception's text as if it were advice.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is written for the person at the terminal."""
