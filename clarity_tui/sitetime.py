"""The site's own calendar. Times are stored in UTC; days are the site's days.

A wash in Texas closes its books, bills members and judges "today" on Central time: at
8 pm there it is already tomorrow in UTC, so a UTC date would refuse a legacy billing date
of tomorrow as "today" and put the evening's sales in the next day's report.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def site_zone(name: str | None) -> dt.tzinfo:
    """The IANA zone `name`, or this terminal's own zone when the site names none."""
    if name:
        return ZoneInfo(name)
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


def check_zone_name(name: str) -> str:
    """`name` if it is a known IANA zone, else ValueError with the fix."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as America/Chicago") from None
    return name


def zone_label(zone: dt.tzinfo) -> str:
    return getattr(zone, "key", None) or dt.datetime.now(zone).tzname() or "local"


def stored_utc(when: dt.datetime) -> dt.datetime:
    """A stored time as an aware one: SQLite hands back naive datetimes, and they are UTC."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def site_date(when: dt.datetime, zone: dt.tzinfo) -> dt.date:
    """The site's calendar day at the instant `when` (naive means UTC, as stored)."""
    return stored_utc(when).astimezone(zone).date()


def day_window(day: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the site's day `day`, in UTC (23 or 25 hours long on a DST change)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_time(when: dt.datetime, zone: dt.tzinfo, fmt: str = "%b %d, %Y %H:%M") -> str:
    """`when` on the site's clock, with the zone's abbreviation (e.g. "Nov 22, 2026 20:30 CST")."""
    local = stored_utc(when).astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()}"
