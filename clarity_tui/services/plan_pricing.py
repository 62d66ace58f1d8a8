"""Family plans and plan changes, priced in one place (every amount in cents; no database).

A plan's price covers `max_vehicles` vehicles; each one more costs `extra_vehicle_price_cents`, up to
the plan's hard limit (`vehicle_limit`). The subscription bills the extras every period as a second
item (the extra vehicle's price, quantity N), so the lane, the subscription and the screens use the
same `extra_vehicles()`.

A plan change: an upgrade is charged today the difference for the rest of the current period
(`prorated_difference`), and the gateway switches prices with no proration of its own, so the amount
shown before Agree is the amount charged; a downgrade takes effect at the next billing date.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from clarity_tui.payments.base import PlanSpec

# The hard limit of a plan whose extra vehicles cost money and that names none (migration 0008).
DEFAULT_VEHICLE_LIMIT = 5


def add_months(day: dt.date, months: int = 1) -> dt.date:
    """Same day N months later (or earlier), clamped to the month's end (Jan 31 -> Feb 28/29)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def plan_spec(plan: Any, currency: str = "usd") -> PlanSpec:
    """The gateway's view of a plan: its price and its extra vehicle's price."""
    return PlanSpec(plan.code, plan.name, plan.price_cents, plan.interval, currency, plan.extra_vehicle_price_cents)


def money(cents: int) -> str:
    """Cents as the attendant reads them: 123456 -> "$1,234.56" (the one money format of the screens)."""
    return f"${cents / 100:,.2f}"


def plain_amount(cents: int) -> str:
    """Cents as a spreadsheet reads them: 123456 -> "1234.56" (no symbol, no thousands separator)."""
    return f"{cents / 100:.2f}"


def _s(n: int, word: str = "vehicle") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- family plans ---------------------------------------------------------------------------------


def included_vehicles(plan: Any) -> int:
    return max(1, plan.max_vehicles)


def vehicle_limit(plan: Any) -> int:
    """The most vehicles the plan takes (never unlimited)."""
    if plan.vehicle_limit is not None:
        return max(1, plan.vehicle_limit)
    if plan.extra_vehicle_price_cents <= 0:
        return included_vehicles(plan)
    return max(included_vehicles(plan), DEFAULT_VEHICLE_LIMIT)


def extra_vehicles(plan: Any, vehicles: int) -> int:
    """Vehicles beyond those the price includes (billed each period as the extra vehicle item)."""
    if plan.extra_vehicle_price_cents <= 0:
        return 0
    return max(0, vehicles - included_vehicles(plan))


def subtotal(plan: Any, vehicles: int = 1) -> int:
    return plan.price_cents + extra_vehicles(plan, vehicles) * plan.extra_vehicle_price_cents


def limit_problem(plan: Any, vehicles: int) -> str | None:
    """What the attendant is told when `vehicles` do not fit on the plan (None: they fit)."""
    limit = vehicle_limit(plan)
    if vehicles <= limit:
        return None
    if plan.extra_vehicle_price_cents > 0:
        return (f"{plan.name} takes at most {_s(limit)} ({included_vehicles(plan)} included, "
                f"{money(plan.extra_vehicle_price_cents)} each extra), not {vehicles}.")
    return f"{plan.name} covers {_s(limit)}, not {vehicles}."


def full_message(plan: Any) -> str:
    """Adding one more vehicle than the plan takes."""
    limit = vehicle_limit(plan)
    if plan.extra_vehicle_price_cents > 0:
        return f"{plan.name} takes at most {_s(limit)} ({included_vehicles(plan)} included): no more can be added."
    return f"{plan.name} covers {_s(limit)}: choose the Family plan to add more."


def interval_months(interval: str) -> int:
    """How many months one billing period of this interval lasts: 12 for "year", else 1."""
    return 12 if interval == "year" else 1


def period_suffix(plan: Any) -> str:
    """What follows a plan's price: "/yr" for a yearly plan, "/mo" for a monthly one (anything with `interval`)."""
    return "/yr" if plan.interval == "year" else "/mo"


def interval_word(plan: Any) -> str:
    """How often a plan renews, in words: "yearly" or "monthly" (anything with `interval`)."""
    return "yearly" if plan.interval == "year" else "monthly"


def vehicle_terms(plan: Any) -> tuple[str, ...]:
    """The plan card's lines about vehicles: ("3 vehicles included", "Extra vehicle $15.00/mo", "Up to 5")."""
    if vehicle_limit(plan) <= 1:
        return ()
    lines = [f"{_s(included_vehicles(plan))} included"]
    if plan.extra_vehicle_price_cents > 0 and vehicle_limit(plan) > included_vehicles(plan):
        lines.append(f"Extra vehicle {money(plan.extra_vehicle_price_cents)}{period_suffix(plan)}")
        lines.append(f"Up to {_s(vehicle_limit(plan))}")
    return tuple(lines)


def price_lines(plan: Any, vehicles: int) -> tuple[tuple[str, int], ...]:
    """The price, itemised: (("Family Ultimate", 5999), ("2 extra vehicles × $15.00", 3000))."""
    lines = [(plan.name, plan.price_cents)]
    extra = extra_vehicles(plan, vehicles)
    if extra:
        lines.append((f"{_s(extra, 'extra vehicle')} × {money(plan.extra_vehicle_price_cents)}",
                      extra * plan.extra_vehicle_price_cents))
    return tuple(lines)


def itemised(plan: Any, vehicles: int) -> str:
    """"$59.99 + 2 extra vehicles × $15.00 = $89.99/mo" (just "$19.99/mo" without extras)."""
    lines = price_lines(plan, vehicles)
    total = money(sum(c for _, c in lines)) + period_suffix(plan)
    if len(lines) == 1:
        return total
    return f"{money(lines[0][1])} + {lines[1][0]} = {total}"


# --- plan changes ---------------------------------------------------------------------------------


def current_period(next_billing_on: dt.date, today: dt.date, interval: str) -> tuple[dt.date, dt.date]:
    """The billing period containing today: [start, end), where end is the next billing date.

    A stale next billing date (renewals since) rolls forward on the same anchor day, as the gateway
    bills. The start is one interval before the end (for an end clamped to a month's end this can be a
    few days later than the gateway's; the difference favours the customer)."""
    months = interval_months(interval)
    k = 0
    while add_months(next_billing_on, k * months) <= today:
        k += 1
    end = add_months(next_billing_on, k * months)
    # A first period longer than an interval (a migrated member's kept date) starts today at the latest.
    return min(add_months(next_billing_on, (k - 1) * months), today), end


def prorated_difference(old_cents: int, new_cents: int, today: dt.date, next_billing_on: dt.date,
                        interval: str) -> int:
    """An upgrade's charge today: (new - old) × days left in the period / days in the period.

    Today counts as a day left (the new plan starts today). Rounded half up to the cent; a cheaper
    plan costs nothing today (it waits for the next billing date)."""
    diff = new_cents - old_cents
    if diff <= 0:
        return 0
    start, end = current_period(next_billing_on, today, interval)
    days, left = (end - start).days, (end - today).days
    return (2 * diff * left + days) // (2 * days)


@dataclass(frozen=True)
class PlanChangeQuote:
    direction: str  # "upgrade" | "downgrade"
    old_subtotal_cents: int
    new_subtotal_cents: int
    due_today_cents: int
    next_billing_on: dt.date  # the end of the current period: the new price is billed from then
    effective_on: dt.date  # today for an upgrade, the next billing date for a downgrade

    @property
    def upgrade(self) -> bool:
        return self.direction == "upgrade"


def direction(old_plan: Any, new_plan: Any) -> str:
    """"upgrade" to a higher tier (or, within a tier, a dearer plan), else "downgrade": the one rule."""
    return "upgrade" if (new_plan.tier, new_plan.price_cents) > (old_plan.tier, old_plan.price_cents) else "downgrade"


def plan_relation(current_plan: Any | None, plan: Any) -> str:
    """How `plan` stands to the customer's current plan: "current", "upgrade", "downgrade", or "" (none)."""
    if current_plan is None:
        return ""
    if plan.id == current_plan.id:
        return "current"
    return direction(current_plan, plan)


def quote(old_plan: Any, old_vehicles: int, new_plan: Any, new_vehicles: int, today: dt.date,
          next_billing_on: dt.date | None, *, billed: bool = True) -> PlanChangeQuote:
    """What changing plan costs today and when it takes effect. `billed`: a gateway subscription bills
    the membership (a membership billed nowhere is charged nothing)."""
    way = direction(old_plan, new_plan)
    old, new = subtotal(old_plan, old_vehicles), subtotal(new_plan, new_vehicles)
    end = current_period(next_billing_on, today, new_plan.interval)[1] if next_billing_on else today
    due = prorated_difference(old, new, today, next_billing_on, new_plan.interval) \
        if (way == "upgrade" and billed and next_billing_on) else 0
    return PlanChangeQuote(way, old, new, due, end, today if way == "upgrade" else end)
