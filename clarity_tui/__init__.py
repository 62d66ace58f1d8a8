"""Clarity TUI: the lane point-of-sale kiosk for express car washes.

Kept import-light on purpose: the CLI must start fast, so nothing heavy
(Textual, SQLAlchemy) is imported here.
"""

__version__ = "0.1.0"
