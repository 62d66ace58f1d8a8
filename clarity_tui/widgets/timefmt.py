from __future__ import annotations

import datetime as dt


def wait_label(arrived_at: dt.datetime, now: dt.datetime) -> str:
    """'45s', '3m 05s', '1h 02m': short enough for a 20-column bubble."""
    if arrived_at.tzinfo is None:
        arrived_at = arrived_at.replace(tzinfo=dt.UTC)
    seconds = max(0, int((now - arrived_at).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
