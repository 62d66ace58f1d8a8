"""End-of-shift report: memberships sold and migrated (by plan, by operator), single washes sold,
operators' commissions, promotion use, declines and pending syncs, for one shift or one day. Shown on
screen and exported as CSV.

Sources: finished orders (`SalesOrder` in completed / pending_sync, by `completed_at`, else
`updated_at`), memberships created (`Membership.source`), promotion use (orders with a
`promotion_id`), declines (the billing
service's `order.payment_failed` audit rows), and what is still waiting for the gateway
(orders in pending_sync, outbox rows pending). Single washes are the finished orders of kind "wash";
commissions are the `Commission` rows dated in the window (services/commissions.py): a clawback counts
in the window of the refund that caused it.

Who reads what: report.view for the day and anyone's shift (managers, support); report.own_shift
for an operator's own shift (attendants too). The actor is checked before the figures are read.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlmodel import col, func, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import csv_safe
from clarity_tui.services.actor import Actor
from clarity_tui.services.commissions import OperatorCommission, operator_commissions
from clarity_tui.services.operators import as_utc
from clarity_tui.services.permissions import Permission, allowed, require
from clarity_tui.services.plan_pricing import money, plain_amount
from clarity_tui.sitetime import day_window, stored_utc, zone_label
from db.models import (
    AuditLog,
    Membership,
    Operator,
    OperatorShift,
    OrderKind,
    OrderState,
    Outbox,
    OutboxStatus,
    Plan,
    Promotion,
    SalesOrder,
    utcnow,
)
from db.models_billing import MembershipPayment, PaymentKind

FINISHED = (OrderState.COMPLETED, OrderState.PENDING_SYNC)


class ReportError(UserFacingError, ValueError):
    """str() says what to change (an unknown shift, a bad date)."""


@dataclass
class Line:
    """One row of a section: a group (a plan, an operator, a code), how many and how much."""

    group: str
    count: int
    amount_cents: int = 0


@dataclass
class ShiftReport:
    title: str
    start: dt.datetime
    end: dt.datetime
    terminal: str | None = None
    operator: str | None = None
    sold_by_plan: list[Line] = field(default_factory=list)
    migrated_by_plan: list[Line] = field(default_factory=list)
    by_operator: list[Line] = field(default_factory=list)
    memberships_by_source: list[Line] = field(default_factory=list)
    promotions: list[Line] = field(default_factory=list)
    declines: list[Line] = field(default_factory=list)
    decline_messages: list[str] = field(default_factory=list)
    cancelled: int = 0
    pending_sync_orders: int = 0
    pending_outbox: int = 0
    # The billing engine's money in the window, site-wide (issue 13): renewals, failed renewals,
    # recovered payments, refunds and disputes, from the sync's payment rows.
    billing: list[Line] = field(default_factory=list)
    # Sales tax at the lane (issue 13): what finished orders charged today, and the tax in it.
    lane_charges: Line = field(default_factory=lambda: Line("lane_charges", 0))
    tax_collected: Line = field(default_factory=lambda: Line("tax_collected", 0))
    # The lane's day (issue 18): single washes sold (orders of kind "wash"), and commissions per operator.
    single_washes: Line = field(default_factory=lambda: Line("single_washes", 0))
    commissions: list[OperatorCommission] = field(default_factory=list)

    @property
    def sold(self) -> int:
        return sum(x.count for x in self.sold_by_plan)

    @property
    def migrated(self) -> int:
        return sum(x.count for x in self.migrated_by_plan)

    @property
    def declined(self) -> int:
        return sum(x.count for x in self.declines)

    def sections(self) -> list[tuple[str, list[Line]]]:
        return [
            ("sold_by_plan", self.sold_by_plan),
            ("migrated_by_plan", self.migrated_by_plan),
            ("by_operator", self.by_operator),
            ("memberships_by_source", self.memberships_by_source),
            ("promotions", self.promotions),
            ("declines_by_operator", self.declines),
            ("totals", [Line("sold", self.sold, sum(x.amount_cents for x in self.sold_by_plan)),
                        Line("migrated", self.migrated, sum(x.amount_cents for x in self.migrated_by_plan)),
                        Line("declined", self.declined), Line("cancelled", self.cancelled),
                        Line("pending_sync_orders", self.pending_sync_orders),
                        Line("pending_outbox", self.pending_outbox)]),
            ("sales_tax", self.tax_lines()),
            ("billing", self.billing),
            ("single_washes", [self.single_washes]),
            ("commissions_earned", [Line(c.operator, c.earned_count, c.earned_cents) for c in self.commissions]),
            # Negative amounts: a spreadsheet's SUM over the three commission sections is the net paid.
            ("commissions_clawed_back", [Line(c.operator, c.clawback_count, -c.clawback_cents)
                                         for c in self.commissions]),
            ("commissions_net", [Line(c.operator, c.earned_count, c.net_cents) for c in self.commissions]),
        ]

    def tax_lines(self) -> list[Line]:
        """Lane charges (orders that charged today, and how much), the sales tax in them, and the rest."""
        net = self.lane_charges.amount_cents - self.tax_collected.amount_cents
        return [self.lane_charges, self.tax_collected, Line("net_of_tax", self.lane_charges.count, net)]

    def to_csv(self) -> str:
        """One flat table: section, group, count, amount (dollars). A spreadsheet sums it as is."""
        out = io.StringIO()
        w = csv_safe.writer(out, lineterminator="\n")  # formula-injection safe (issue 15)
        w.writerow(["report", self.title, "from", self.start.isoformat(timespec="seconds"),
                    "to", self.end.isoformat(timespec="seconds")])
        w.writerow(["section", "group", "count", "amount"])
        for name, lines in self.sections():
            for line in lines:
                w.writerow([name, line.group, line.count, plain_amount(line.amount_cents)])
        return out.getvalue()


def _lines(counts: Counter[str], amounts: dict[str, int] | None = None) -> list[Line]:
    amounts = amounts or {}
    return [Line(k, n, amounts.get(k, 0)) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def shift_report(db, shift_id: int, now: dt.datetime | None = None, *, actor: Actor) -> ShiftReport:
    """One operator's shift at one terminal, from sign-in to sign-out (or now): the actor's own
    (report.own_shift) or anyone's (report.view)."""
    if not allowed(actor, Permission.REPORT_OWN_SHIFT):
        require(actor, Permission.REPORT_VIEW)
    with db.read() as s:
        row = s.exec(select(OperatorShift, Operator).join(Operator, col(Operator.id) == OperatorShift.operator_id)
                     .where(OperatorShift.id == shift_id)).first()
        if row is None:
            raise ReportError(f"There is no shift {shift_id}: `clarity-tui audit` or the Who's on view lists them.")
        shift, op = row
        if actor.operator_id is None or op.id != actor.operator_id:
            require(actor, Permission.REPORT_VIEW)  # someone else's shift
        start = stored_utc(shift.signed_in_at)
        end = as_utc(shift.signed_out_at) or (now or utcnow())
    report = _build_report(db, start, end, title=f"Shift {shift_id}: {op.name} at {shift.terminal}",
                           operator_id=op.id, terminal=shift.terminal)
    report.operator = op.name
    return report


def day_report(db, day: dt.date, zone: dt.tzinfo = dt.UTC, *, actor: Actor) -> ShiftReport:
    """Every terminal's sales of the site's day `day`: local midnight to local midnight."""
    require(actor, Permission.REPORT_VIEW)
    start, end = day_window(day, zone)
    return _build_report(db, start, end, title=f"Day {day.isoformat()} ({zone_label(zone)}), every terminal")


def _build_report(db, start: dt.datetime, end: dt.datetime, *, title: str,
                  operator_id: int | None = None, terminal: str | None = None) -> ShiftReport:
    report = ShiftReport(title=title, start=start, end=end, terminal=terminal)
    with db.read() as s:
        when = func.coalesce(SalesOrder.completed_at, SalesOrder.updated_at)
        q = (select(SalesOrder, Plan.name, Operator.name, Promotion.code)
             .join(Plan, col(Plan.id) == SalesOrder.plan_id, isouter=True)
             .join(Operator, col(Operator.id) == SalesOrder.operator_id, isouter=True)
             .join(Promotion, col(Promotion.id) == SalesOrder.promotion_id, isouter=True)
             .where(when >= start, when < end))
        if operator_id is not None:
            q = q.where(SalesOrder.operator_id == operator_id)
        if terminal is not None:
            q = q.where(SalesOrder.terminal == terminal)
        sold: Counter[str] = Counter()
        migrated: Counter[str] = Counter()
        by_op: Counter[str] = Counter()
        promos: Counter[str] = Counter()
        sold_amt: dict[str, int] = defaultdict(int)
        mig_amt: dict[str, int] = defaultdict(int)
        op_amt: dict[str, int] = defaultdict(int)
        promo_amt: dict[str, int] = defaultdict(int)
        for order, plan, operator, code in s.exec(q):
            if order.state == OrderState.CANCELLED:
                report.cancelled += 1
                continue
            if order.state not in FINISHED:
                continue
            if order.kind == OrderKind.WASH:  # a single wash: no membership, its own line
                report.single_washes.count += 1
                report.single_washes.amount_cents += order.due_today_cents
                _count_tax(report, order)
                continue
            plan, operator = plan or "?", operator or order.terminal or "?"
            if order.kind == OrderKind.MIGRATION:
                migrated[plan] += 1
                mig_amt[plan] += order.due_today_cents
            else:
                sold[plan] += 1
                sold_amt[plan] += order.due_today_cents
            by_op[operator] += 1
            op_amt[operator] += order.due_today_cents
            _count_tax(report, order)
            if code:
                promos[code] += 1
                promo_amt[code] += order.discount_cents
        report.sold_by_plan, report.migrated_by_plan = _lines(sold, sold_amt), _lines(migrated, mig_amt)
        report.by_operator, report.promotions = _lines(by_op, op_amt), _lines(promos, promo_amt)

        mq = select(Membership.source, func.count()).where(Membership.created_at >= start, Membership.created_at < end)
        # Only memberships an order made (a sale or a migration at a terminal), not seeded or bulk-loaded
        # ones; for a shift, only that shift's orders.
        sub = select(SalesOrder.membership_id).where(col(SalesOrder.membership_id).is_not(None))
        if operator_id is not None:
            sub = sub.where(SalesOrder.operator_id == operator_id)
        if terminal is not None:
            sub = sub.where(SalesOrder.terminal == terminal)
        mq = mq.where(col(Membership.id).in_(sub))
        report.memberships_by_source = [Line(src, n) for src, n in s.exec(mq.group_by(Membership.source)
                                                                          .order_by(Membership.source))]

        dq = select(AuditLog).where(AuditLog.action == "order.payment_failed", AuditLog.at >= start, AuditLog.at < end)
        if operator_id is not None:
            dq = dq.where(AuditLog.operator_id == operator_id)
        if terminal is not None:
            dq = dq.where(AuditLog.terminal == terminal)
        declines: Counter[str] = Counter()
        for row in s.exec(dq.order_by(col(AuditLog.id))):
            declines[row.actor] += 1
            error = (row.after or {}).get("error") or "declined"
            report.decline_messages.append(f"order {row.entity_id}: {error}")
        report.declines = _lines(declines)

        pq = select(func.count()).select_from(SalesOrder).where(SalesOrder.state == OrderState.PENDING_SYNC)
        if terminal is not None:
            pq = pq.where(SalesOrder.terminal == terminal)
        report.pending_sync_orders = s.exec(pq).one()
        report.pending_outbox = s.exec(select(func.count()).select_from(Outbox)
                                       .where(Outbox.status == OutboxStatus.PENDING)).one()
        report.billing = _billing_lines(s, start, end)
        report.commissions = operator_commissions(s, start, end, operator_id)
    return report


# The report's words for the payment rows' kinds, in the order shown.
BILLING_LINES = ((PaymentKind.RENEWAL, "renewals"), (PaymentKind.RENEWAL_FAILED, "failed_renewals"),
                 (PaymentKind.RECOVERED, "recovered"), (PaymentKind.REFUND, "refunds"),
                 (PaymentKind.DISPUTE, "disputes"))


def _billing_lines(s, start: dt.datetime, end: dt.datetime) -> list[Line]:
    found = {kind: (n, amount or 0) for kind, n, amount in s.exec(
        select(MembershipPayment.kind, func.count(), func.sum(MembershipPayment.amount_cents))
        .where(MembershipPayment.occurred_at >= start, MembershipPayment.occurred_at < end)
        .group_by(MembershipPayment.kind))}
    lines = [Line(name, *found.get(kind, (0, 0))) for kind, name in BILLING_LINES]
    # The sales tax in the renewals the gateway collected (its tax rates), beside the lane's.
    taxed, tax = s.exec(select(func.count(), func.coalesce(func.sum(MembershipPayment.tax_cents), 0)).where(
        MembershipPayment.occurred_at >= start, MembershipPayment.occurred_at < end,
        col(MembershipPayment.kind).in_((PaymentKind.RENEWAL, PaymentKind.RECOVERED)),
        MembershipPayment.tax_cents > 0)).one()
    return [*lines, Line("renewal_tax", taxed, tax)]


def _count_tax(report: ShiftReport, order: SalesOrder) -> None:
    if order.due_today_cents > 0:
        report.lane_charges.count += 1
        report.lane_charges.amount_cents += order.due_today_cents
    if order.tax_cents > 0:
        report.tax_collected.count += 1
        report.tax_collected.amount_cents += order.tax_cents


def render_text(report: ShiftReport) -> str:
    """The report as plain text: the screen and `clarity-tui report` show this."""
    out = [report.title, f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC", ""]
    out.append(f"Memberships sold: {report.sold}    migrated: {report.migrated}    "
               f"declines: {report.declined}    cancelled: {report.cancelled}")
    out.append(f"Pending sync: {report.pending_sync_orders} orders, {report.pending_outbox} gateway calls waiting")
    if report.tax_collected.amount_cents:
        lane, tax = report.lane_charges.amount_cents, report.tax_collected.amount_cents
        out.append(f"Lane charges: {money(lane)} · sales tax collected {money(tax)} "
                   f"({report.tax_collected.count} orders) · net {money(lane - tax)}")
    for heading, lines, amount in (("Sold by plan", report.sold_by_plan, "taken today"),
                                   ("Migrated by plan", report.migrated_by_plan, "taken today"),
                                   ("By operator", report.by_operator, "taken today"),
                                   ("Memberships created by orders, by source", report.memberships_by_source, ""),
                                   ("Promotions used", report.promotions, "discount"),
                                   ("Declines, by operator", report.declines, "")):
        out.append("")
        out.append(heading + ":")
        if not lines:
            out.append("  (none)")
        for line in lines:
            extra = f"  {amount} {money(line.amount_cents)}" if amount else ""
            out.append(f"  {line.group:<28} {line.count:>5}{extra}")
    out.append("")
    out.append(f"Single washes sold: {report.single_washes.count}    "
               f"taken {money(report.single_washes.amount_cents)}")
    out.append("")
    out.append("Commissions, by operator:")
    if not report.commissions:
        out.append("  (none)")
    for c in report.commissions:
        out.append(f"  {c.operator:<28} earned {money(c.earned_cents)} ({c.earned_count})  clawed back "
                   f"{money(c.clawback_cents)} ({c.clawback_count})  net {money(c.net_cents)}")
    if any(line.count for line in report.billing):
        out.append("")
        out.append("Memberships billed by the gateway (site-wide):")
        for line in report.billing:
            out.append(f"  {line.group.replace('_', ' '):<28} {line.count:>5}  {money(line.amount_cents)}")
    if report.decline_messages:
        out.append("")
        out.append("Decline messages:")
        out.extend(f"  {m}" for m in report.decline_messages[-20:])
    return "\n".join(out)
