"""The numbers operators watch (issue 18): one site day's figures, and the same over the last 30 days.

Each rule lives here once; the dashboard, `clarity-tui report --json` and the simulator read them from here.
- retail washes / member visits: `Wash` rows of kind "retail" / "member", by when the car was washed;
- limit refusals: `VisitRefusal` rows;
- memberships sold: finished (completed, or paid and waiting for the gateway) orders of kind "sale" (not
  migrations, plan changes or single washes), by when they finished; their operator (else their terminal);
- conversion rate: memberships sold / retail washes (None on a day with no retail wash);
- upsell credits: memberships sold with a single wash credited ("Join today": `credit_order_id`);
- renewals / failures: the billing engine's payment rows (renewals paid first time or after failing /
  failed attempts), as the shift report's billing lines count them;
- churn: memberships that ended (cancelled or expired) that day, on their end date (`expires_on`, else the
  day the row changed). Card failure: it ended owing a renewal invoice that failed and was never paid (the
  billing engine cancels after its last retry); voluntary: every other end (a cancel, a cancel at period end).
  A membership whose sale never finished (declined, cancelled) had no member: its end is not counted;
- visits per member: member visits from the 1st of the month to that day / memberships current that day;
- commissions: net `Commission` amounts (earned less clawbacks) by operator, by when each was recorded.

Days are the site's days. A 30-day series costs the same few queries as one day: each query sorts its rows
into day buckets in SQL (a CASE over the days' UTC boundaries), so DST days and odd offsets are exact.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case
from sqlmodel import Session, col, func, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services.actor import Actor
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plan_pricing import money
from clarity_tui.sitetime import day_window, site_date
from db.models import Membership, MembershipStatus, Operator, OrderKind, OrderState, SalesOrder
from db.models.wash import Commission, VisitRefusal, Wash, WashKind
from db.models_billing import MembershipPayment, PaymentKind
from db.states import CURRENT_MEMBERSHIP_STATES

SOLD_STATES = (OrderState.COMPLETED, OrderState.PENDING_SYNC)  # the shift report's "finished"
ENDED_STATES = (MembershipStatus.CANCELLED, MembershipStatus.EXPIRED)
PAID_RENEWALS = (PaymentKind.RENEWAL, PaymentKind.RECOVERED)
NO_OPERATOR = "(no operator)"
MAX_DAYS = 366


class MetricsError(UserFacingError, ValueError):
    """str() says what to change (too many days)."""


@dataclass(frozen=True)
class DayFigures:
    day: dt.date
    retail_washes: int = 0
    member_visits: int = 0
    limit_refusals: int = 0
    memberships_sold: int = 0
    conversion_rate: float | None = None
    upsell_credits: int = 0
    upsell_credit_cents: int = 0
    renewals: int = 0
    renewal_failures: int = 0
    churn_voluntary: int = 0
    churn_card_failure: int = 0
    visits_per_member: float | None = None
    current_members: int = 0
    commissions: dict[str, int] = field(default_factory=dict)
    sales_by_operator: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The figures as `clarity-tui report --json` prints them (rates to 4 decimals)."""
        out = asdict(self)
        out["day"] = self.day.isoformat()
        for key in ("conversion_rate", "visits_per_member"):
            if out[key] is not None:
                out[key] = round(out[key], 4)
        return out


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures_for(db: Any, end: dt.date, zone: dt.tzinfo, *, actor: Actor, days: int = 30) -> list[DayFigures]:
    """`series`, for someone who may read the whole site's figures (report.view: managers, support)."""
    require(actor, Permission.REPORT_VIEW)
    return series(db, end, zone, days)


def day_figures(db: Any, day: dt.date, zone: dt.tzinfo) -> DayFigures:
    """The site's day `day` (local midnight to local midnight in `zone`)."""
    return series(db, day, zone, days=1)[0]


def series(db: Any, end: dt.date, zone: dt.tzinfo, days: int = 30) -> list[DayFigures]:
    """The `days` site days up to and including `end`, oldest first; the same few queries for any `days`."""
    if not 1 <= days <= MAX_DAYS:
        raise MetricsError(f"{days} days cannot be shown: choose 1 to {MAX_DAYS}.")
    first = end - dt.timedelta(days=days - 1)
    # Visits per member counts from the 1st of the month: the buckets start there.
    cal = _Days(first.replace(day=1), end, zone)
    wanted = range(cal.position(first), len(cal.dates))
    with db.read() as s:
        washes = _washes(s, cal)
        refusals = _counts(s, cal, VisitRefusal.at)
        sold, credits = _sales(s, cal)
        payments = _payments(s, cal)
        commissions = _commissions(s, cal)
        members, churn = _memberships(s, cal, first)
    out = []
    month_visits = 0
    for i, day in enumerate(cal.dates):
        month_visits = (0 if day.day == 1 else month_visits) + washes[i, WashKind.MEMBER]
        if i not in wanted:
            continue
        retail, by_op = washes[i, WashKind.RETAIL], sold.get(i, {})
        n_sold = sum(by_op.values())
        out.append(DayFigures(
            day=day, retail_washes=retail, member_visits=washes[i, WashKind.MEMBER], limit_refusals=refusals[i],
            memberships_sold=n_sold, conversion_rate=ratio(n_sold, retail),
            upsell_credits=credits[i][0], upsell_credit_cents=credits[i][1],
            renewals=sum(payments[i, k] for k in PAID_RENEWALS), renewal_failures=payments[i, PaymentKind.RENEWAL_FAILED],
            churn_voluntary=churn[i, "voluntary"], churn_card_failure=churn[i, "card_failure"],
            visits_per_member=ratio(month_visits, members[i]), current_members=members[i],
            commissions=dict(sorted(commissions.get(i, {}).items())), sales_by_operator=dict(sorted(by_op.items()))))
    return out


@dataclass(frozen=True)
class Chart:
    """One figure as the dashboard shows it: its words, the last day's value, the period's, a value per day."""

    key: str
    title: str
    latest: str
    period: str
    values: list[float]


# The dashboard's figures, in the order `charts` gives them.
CHART_KEYS = ("conversion", "visits", "renewals", "renewal_failures", "churn_voluntary", "churn_card_failure")


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _total(days: list[DayFigures], name: str) -> int:
    return sum(getattr(d, name) for d in days)


def charts(days: list[DayFigures]) -> list[Chart]:
    """The dashboard's figures over `days` (a `series`): the last day's value and the whole period's."""
    last, n = days[-1], f"{len(days)} d"
    sold, retail = _total(days, "memberships_sold"), _total(days, "retail_washes")
    counted = (("renewals", "Renewals"), ("renewal_failures", "Renewal failures"),
               ("churn_voluntary", "Churn: cancelled"), ("churn_card_failure", "Churn: card failed"))
    visits = last.visits_per_member
    return [
        Chart("conversion", "Conversion", _pct(last.conversion_rate), f"{n} {_pct(ratio(sold, retail))}",
              [d.conversion_rate or 0.0 for d in days]),
        Chart("visits", "Visits/member (month)", "–" if visits is None else f"{visits:.2f}",
              f"{last.current_members} members", [d.visits_per_member or 0.0 for d in days]),
        *(Chart(name, title, str(getattr(last, name)), f"{n} {_total(days, name)}",
                [float(getattr(d, name)) for d in days]) for name, title in counted),
    ]


def operator_charts(days: list[DayFigures]) -> list[Chart]:
    """Memberships sold per operator, each day, most sold first; `latest` is the last day's, `period` the
    period's with its net commission."""
    sold: Counter[str] = Counter()
    earned: Counter[str] = Counter()
    for d in days:
        sold.update(d.sales_by_operator)
        earned.update(d.commissions)
    names = sorted(set(sold) | {k for k, v in earned.items() if v}, key=lambda k: (-sold[k], k))
    return [Chart(f"operator-{i}", name, str(days[-1].sales_by_operator.get(name, 0)),
                  f"{sold[name]} in {len(days)} d · {money(earned[name])}",
                  [float(d.sales_by_operator.get(name, 0)) for d in days]) for i, name in enumerate(names)]


class _Days:
    """The site days `first`..`last` and their UTC boundaries; `bucket(column)` is the day's index in SQL."""

    def __init__(self, first: dt.date, last: dt.date, zone: dt.tzinfo) -> None:
        self.dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        self.zone = zone
        self.bounds = [day_window(d, zone)[0] for d in self.dates] + [day_window(last, zone)[1]]
        self.start, self.end = self.bounds[0], self.bounds[-1]

    def position(self, day: dt.date) -> int:
        return (day - self.dates[0]).days

    def bucket(self, column: Any) -> Any:
        return case(*((column < bound, i) for i, bound in enumerate(self.bounds[1:])), else_=None)

    def within(self, column: Any) -> tuple[Any, Any]:
        return column >= self.start, column < self.end


def _counts(s: Session, cal: _Days, at: Any, *where: Any) -> Counter[int]:
    sub = select(cal.bucket(at).label("day")).where(*cal.within(at), *where).subquery()
    # Grouped outside the bucketing: PostgreSQL would not match a GROUP BY on the CASE's own parameters.
    return Counter({day: n for day, n in s.exec(select(sub.c.day, func.count()).group_by(sub.c.day))})


def _washes(s: Session, cal: _Days) -> Counter[tuple[int, str]]:
    sub = select(cal.bucket(Wash.at).label("day"), col(Wash.kind).label("kind")).where(*cal.within(Wash.at)).subquery()
    rows = s.exec(select(sub.c.day, sub.c.kind, func.count()).group_by(sub.c.day, sub.c.kind))
    return Counter({(day, kind): n for day, kind, n in rows})


def _sales(s: Session, cal: _Days) -> tuple[dict[int, dict[str, int]], defaultdict[int, tuple[int, int]]]:
    """Memberships sold per day and operator; and per day, how many had a wash credited, and how much."""
    when = func.coalesce(SalesOrder.completed_at, SalesOrder.updated_at)
    credited = case((col(SalesOrder.credit_order_id).is_not(None), 1), else_=0)
    sub = (select(cal.bucket(when).label("day"), func.coalesce(Operator.name, SalesOrder.terminal, "?").label("who"),
                  credited.label("credited"), col(SalesOrder.credit_cents).label("credit_cents"))
           .join(Operator, col(Operator.id) == SalesOrder.operator_id, isouter=True)
           .where(SalesOrder.kind == OrderKind.SALE, col(SalesOrder.state).in_(SOLD_STATES), *cal.within(when))
           .subquery())
    sold: dict[int, dict[str, int]] = defaultdict(dict)
    credits: defaultdict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    totals = select(  # type: ignore[call-overload]  # sqlmodel's select is typed for four columns at most
        sub.c.day, sub.c.who, func.count(), func.sum(sub.c.credited), func.sum(sub.c.credit_cents))
    for day, who, n, n_credited, cents in s.exec(totals.group_by(sub.c.day, sub.c.who)):
        sold[day][who] = n
        had, total = credits[day]
        credits[day] = (had + int(n_credited or 0), total + int(cents or 0))
    return sold, credits


def _payments(s: Session, cal: _Days) -> Counter[tuple[int, str]]:
    at = MembershipPayment.occurred_at
    sub = select(cal.bucket(at).label("day"), col(MembershipPayment.kind).label("kind")).where(
        *cal.within(at), col(MembershipPayment.kind).in_((*PAID_RENEWALS, PaymentKind.RENEWAL_FAILED))).subquery()
    rows = s.exec(select(sub.c.day, sub.c.kind, func.count()).group_by(sub.c.day, sub.c.kind))
    return Counter({(day, kind): n for day, kind, n in rows})


def _commissions(s: Session, cal: _Days) -> dict[int, dict[str, int]]:
    sub = (select(cal.bucket(Commission.at).label("day"), func.coalesce(Operator.name, NO_OPERATOR).label("who"),
                  col(Commission.amount_cents).label("cents"))
           .join(Operator, col(Operator.id) == Commission.operator_id, isouter=True)
           .where(*cal.within(Commission.at)).subquery())
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for day, who, cents in s.exec(select(sub.c.day, sub.c.who, func.sum(sub.c.cents)).group_by(sub.c.day, sub.c.who)):
        out[day][who] = int(cents or 0)
    return out


def _memberships(s: Session, cal: _Days, first: dt.date) -> tuple[list[int], Counter[tuple[int, str]]]:
    """Memberships current on each day; and the ends per day, voluntary or card failure."""
    last = cal.dates[-1]
    live_before = s.exec(select(func.count()).select_from(Membership).where(
        col(Membership.status).in_(CURRENT_MEMBERSHIP_STATES), Membership.started_on <= cal.dates[0])).one()
    live_from: dict[dt.date, int] = dict(s.exec(select(col(Membership.started_on), func.count()).where(
        col(Membership.status).in_(CURRENT_MEMBERSHIP_STATES), Membership.started_on > cal.dates[0],
        Membership.started_on <= last).group_by(col(Membership.started_on))).all())
    # Ended memberships that were still current on some day shown: by their end date. One whose order was
    # declined or cancelled before it finished never had a member: its end is no churn.
    orders = select(SalesOrder.id).where(SalesOrder.membership_id == Membership.id)
    was_a_member = ~orders.exists() | orders.where(col(SalesOrder.state).in_(SOLD_STATES)).exists()
    ended = s.exec(select(col(Membership.id), col(Membership.started_on), col(Membership.expires_on),
                          col(Membership.updated_at)).where(
        col(Membership.status).in_(ENDED_STATES), was_a_member,
        (col(Membership.expires_on) >= cal.dates[0])
        | (col(Membership.expires_on).is_(None) & (col(Membership.updated_at) >= cal.start)))).all()
    ends: dict[int, dt.date] = {mid: expires or site_date(updated, cal.zone) for mid, _, expires, updated in ended
                                if mid is not None}
    failed = _owing_a_failed_renewal(s, [mid for mid, end in ends.items() if first <= end <= last])
    members, churn, running = [], Counter[tuple[int, str]](), live_before
    for i, day in enumerate(cal.dates):
        running += live_from.get(day, 0) if i else 0
        members.append(running + sum(1 for mid, start, _, _ in ended if mid in ends and start <= day < ends[mid]))
    for mid, end in ends.items():
        if first <= end <= last:
            churn[cal.position(end), "card_failure" if mid in failed else "voluntary"] += 1
    return members, churn


def _owing_a_failed_renewal(s: Session, membership_ids: list[int]) -> set[int]:
    """Of these memberships, those with a renewal invoice that failed and was never paid."""
    if not membership_ids:
        return set()
    failed: dict[int, set[str]] = defaultdict(set)
    paid: dict[int, set[str]] = defaultdict(set)
    for mid, kind, invoice in s.exec(select(col(MembershipPayment.membership_id), col(MembershipPayment.kind),
                                            col(MembershipPayment.invoice_id)).where(
            col(MembershipPayment.membership_id).in_(membership_ids), col(MembershipPayment.invoice_id).is_not(None),
            col(MembershipPayment.kind).in_((*PAID_RENEWALS, PaymentKind.RENEWAL_FAILED)))):
        if mid is not None and invoice is not None:  # both are in the WHERE; this tells the type checker
            (failed if kind == PaymentKind.RENEWAL_FAILED else paid)[mid].add(invoice)
    return {mid for mid, invoices in failed.items() if invoices - paid[mid]}
