"""Dunning: past-due text messages with a card-update link (issue 13, item 4).

Stripe's own retries are left on, and nothing here charges: dunning only tells the member, by text,
that the renewal failed, how much is due and where to update the card. The charge is Stripe's retry,
or the invoice paid when the card is updated (at the lane, or on the gateway's page).

    report = run_dunning(db, gateway, sms, settings, today=site_today, terminal="lane-1")

For each PAST_DUE membership with an open failed renewal invoice (`open_failed_invoices`), the
schedule day is the number of days since the invoice first failed. When it reaches a step of
`billing.dunning_days` (default 1, 4, 11) not yet handled for that invoice, ONE text goes out: only the
latest due step when several are due (after an outage), and never two texts for one invoice on one day.

Exactly once, across terminals and processes, on SQLite and PostgreSQL:
1. **claim**: insert the `dunning_message` row (status `claimed`). Its unique constraints, on
   (invoice, step) and on (invoice, day), make the insert the claim: a second terminal's insert
   fails and it moves on. A `failed` row (nothing was sent) is claimed again with a conditional
   UPDATE (`WHERE status = 'failed'`), which one process alone can win.
2. **link**: the card-update link is made through the payments outbox (operation `dunning.link`,
   key `make_key("dunning-<invoice>-<step>", "link")`), so a replay after a crash or an outage
   sends the same key. An unreachable gateway marks the row `failed`: nothing was sent, and a later
   run the same day claims it again.
3. **sending**: the row moves `claimed -> sending` (conditional on still being ours) and that is
   committed BEFORE the SMS provider is called.
4. **sent**: after the provider's answer, with the audit row (`dunning.sent`), in one transaction.
A process that dies while `sending` leaves the row there: the next run marks it `unknown` and never
sends it again (the text may or may not have gone out; nobody gets it twice). A provider failure that
surely sent nothing (the provider refused it, or could not be reached at all) marks the row `failed`,
to be claimed again by a later run the same day (at most MAX_TRIES tries; the next step has its own
day); any other failure (a timeout or a dropped connection mid-request) is `unknown`.
A row left `claimed` by a dead process (nothing was sent) becomes `failed`. While a row is claimed
or sending, its `detail` names the owner (`host:pid:token`) and the claim's time, for that check.

A customer with no mobile number (or a landline) is recorded `skipped`, with the reason, and the run
goes on. So is a link the gateway refuses for good.

Past 400 lines on purpose: one job, the dunning pass and its claim/send bookkeeping, which the
crash-safety argument above spans.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import secrets
import socket
import urllib.error
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.messaging.base import MessagingError, MessagingUnavailable, SmsProvider
from clarity_tui.payments.base import PaymentGateway
from clarity_tui.payments.errors import GatewayRejected
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.membership_payments import OpenFailedInvoice, open_failed_invoices
from clarity_tui.services.outbox import owner_alive, enqueue, make_key, payload_of
from clarity_tui.services.plan_pricing import money
from clarity_tui.sitetime import site_date, stored_utc
from db.models import Customer, Membership, MembershipStatus, Outbox, OutboxStatus, utcnow
from db.models_billing import DunningMessage

log = logging.getLogger(__name__)

DUNNING_LINK = "dunning.link"
# A claim older than this is abandoned even when its owner's process cannot be checked (another host).
CLAIM_LEASE = dt.timedelta(minutes=10)
# A text that failed before it was sent is tried again by later runs the same day, this many times in all
# (a provider that refuses the number would otherwise be asked on every billing pass).
MAX_TRIES = 5
_OWNER = "owner "
_TRIES = re.compile(r"\(try (\d+)\)$")


class DunningStatus:
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # nothing was sent: claimed again by a later run
    UNKNOWN = "unknown"  # a crash or an unclear failure while sending: never sent again
    SKIPPED = "skipped"  # no mobile number, or no link possible: the reason is in `detail`


# --- the outbox step -----------------------------------------------------------------------------


class DunningLink:
    """The gateway's card-update page for the customer (no money moves: no `recover` needed)."""

    def execute(self, db: Any, gateway: PaymentGateway, entry: Outbox) -> dict[str, Any]:
        p = payload_of(entry)
        with db.read() as s:
            c = s.get(Customer, p["customer_id"])
            cus = c.gateway_customer_id if c is not None else None
        if not cus:
            raise GatewayRejected("This customer is not known to the payment gateway, so there is no card page.")
        url = gateway.create_card_update_link(cus, return_url=p["return_url"], idempotency_key=entry.idempotency_key)
        return {"url": url}

    def apply(self, s: Session, entry: Outbox, result: dict[str, Any]) -> None:
        msg = s.get(DunningMessage, payload_of(entry).get("dunning_message_id"))
        if msg is not None and not msg.link_url:
            msg.link_url = result["url"]
            s.add(msg)


def link_key(invoice_id: str, step: int) -> str:
    return make_key(f"dunning-{invoice_id}-{step}", "link")


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DunningOutcome:
    membership_id: int
    invoice_id: str
    step: int
    status: str  # a DunningStatus, or "busy" (another terminal has it)
    detail: str = ""


@dataclass
class DunningReport:
    today: dt.date
    enabled: bool = True
    outcomes: list[DunningOutcome] = field(default_factory=list)
    # Rows a dead process left behind, settled at the start of the run: {"unknown": n, "failed": n}.
    settled: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def sent(self) -> int:
        return self.count(DunningStatus.SENT)

    def summary(self) -> str:
        if not self.enabled:
            return "Dunning is off (billing.dunning_enabled = false)."
        parts = [f"{self.count(s)} {s}" for s in (DunningStatus.SENT, DunningStatus.FAILED, DunningStatus.SKIPPED,
                                                  DunningStatus.UNKNOWN, "busy") if self.count(s)]
        settled = [f"{n} left by a stopped terminal marked {s}" for s, n in self.settled.items() if n]
        return "Past-due texts: " + (", ".join(parts + settled) or "none due") + f" ({self.today})."


# --- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    invoice: OpenFailedInvoice
    step: int
    retry_id: int | None  # an earlier `failed` row for this step, claimed again
    tries: int = 0  # how often it was tried before


def run_dunning(db: Any, gateway: PaymentGateway, messaging: SmsProvider | None, settings: Any, *,
                today: dt.date, terminal: str | None, actor: Actor | None = None) -> DunningReport:
    """Send the past-due texts due `today` (the site's day). Safe to run from any number of terminals
    and processes at once, as often as wanted: each (invoice, step) is texted at most once."""
    cfg = settings.billing
    report = DunningReport(today, enabled=cfg.dunning_enabled)
    if not cfg.dunning_enabled or not cfg.dunning_days:
        return report
    actor = actor or Actor.system("dunning", terminal)
    report.settled = settle_abandoned(db, actor)
    runner = _Runner(db, gateway, messaging, settings, today, terminal, actor)
    for due in _due(db, today, list(cfg.dunning_days), settings.site.zone):
        report.outcomes.append(runner.one(due))
    return report


def dunning_pass(db: Any, settings: Any, *, today: dt.date | None = None, terminal: str | None = None,
                 gateway: PaymentGateway | None = None, messaging: SmsProvider | None = None,
                 actor: Actor | None = None) -> DunningReport:
    """The entry point for the app's periodic billing pass and `clarity-tui payments sync`: builds the
    gateway and the SMS provider from settings unless given, and runs `run_dunning` for the site's today."""
    from clarity_tui.sitetime import site_date as _site_date

    if gateway is None:
        from clarity_tui.payments import make_gateway

        gateway = make_gateway(settings, db)
    if messaging is None:
        from clarity_tui.messaging import make_sms_provider

        try:
            messaging = make_sms_provider(settings)
        except MessagingError as exc:  # SMS not set up: every due text is recorded failed, with why
            log.warning("dunning: %s", exc)
            messaging = None
    day = today or _site_date(dt.datetime.now(dt.UTC), settings.site.zone)
    return run_dunning(db, gateway, messaging, settings, today=day, terminal=terminal or settings.terminal_id,
                       actor=actor)


def _due(db: Any, today: dt.date, days: list[int], zone: dt.tzinfo) -> list[_Due]:
    """The (invoice, step) pairs to text today: the latest due step of each open failed invoice of a
    PAST_DUE membership, unless that step (or any text for the invoice today) is already handled."""
    out = []
    with db.read() as s:
        past_due = set(s.exec(select(Membership.id).where(Membership.status == MembershipStatus.PAST_DUE)).all())
        invoices = [i for i in open_failed_invoices(s, sorted(past_due)) if i.membership_id in past_due]
        ids = [i.invoice_id for i in invoices]
        rows = s.exec(select(DunningMessage).where(col(DunningMessage.invoice_id).in_(ids))).all() if ids else []
    by_invoice: dict[str, list[DunningMessage]] = {}
    for r in rows:
        by_invoice.setdefault(r.invoice_id, []).append(r)
    for inv in invoices:
        day = (today - site_date(inv.first_failed_at, zone)).days
        steps = [d for d in days if d <= day]
        if not steps:
            continue
        step = max(steps)  # after an outage, only the latest due step
        handled = by_invoice.get(inv.invoice_id, [])
        if any(r.step > step for r in handled):
            continue
        mine = next((r for r in handled if r.step == step), None)
        if mine is not None and mine.status != DunningStatus.FAILED:
            continue  # claimed, sending, sent, unknown or skipped: never again
        tries = tries_of(mine.detail) if mine is not None else 0
        if mine is not None and (mine.sent_on != today or tries >= MAX_TRIES):
            continue  # a failed text is tried again the same day only, a few times
        if any(r.sent_on == today and r is not mine for r in handled):
            continue  # one text per invoice per day
        out.append(_Due(inv, step, mine.id if mine is not None else None, tries))
    return out


def settle_abandoned(db: Any, actor: Actor) -> dict[str, int]:
    """Rows a stopped process left: `sending` -> `unknown` (maybe sent: never again), `claimed` ->
    `failed` (surely not sent: claimed again). Only rows whose owner is gone or whose claim is stale."""
    now = utcnow()
    counts = {DunningStatus.UNKNOWN: 0, DunningStatus.FAILED: 0}
    with db.read() as s:
        rows = s.exec(select(DunningMessage).where(
            col(DunningMessage.status).in_([DunningStatus.CLAIMED, DunningStatus.SENDING]))).all()
    for r in rows:
        owner, since = _claim_of(r.detail)
        if owner is not None and owner_alive(owner) and since is not None and now - since < CLAIM_LEASE:
            continue
        to = DunningStatus.UNKNOWN if r.status == DunningStatus.SENDING else DunningStatus.FAILED
        why = ("the terminal stopped while sending: the text may have gone out, so it is not sent again"
               if to == DunningStatus.UNKNOWN else "the terminal stopped before sending: nothing was sent")
        with db.write() as s:
            changed = s.exec(update(DunningMessage).where(
                col(DunningMessage.id) == r.id, col(DunningMessage.status) == r.status,
                col(DunningMessage.detail) == r.detail).values(status=to, detail=why)).rowcount
            if changed == 1:
                counts[to] += 1
                audit.record(s, actor, f"dunning.{to}", "membership", r.membership_id,
                             after={"invoice_id": r.invoice_id, "step": r.step, "was": r.status, "reason": why})
    return counts


def _claim_of(detail: str | None) -> tuple[str | None, dt.datetime | None]:
    if not detail or not detail.startswith(_OWNER):
        return None, None
    owner, _, since = detail[len(_OWNER):].partition(" since ")
    try:
        return owner, stored_utc(dt.datetime.fromisoformat(since))
    except ValueError:
        return owner, None


def tries_of(detail: str | None) -> int:
    """How often a `failed` row was tried (its detail ends "(try N)")."""
    found = _TRIES.search(detail or "")
    return int(found.group(1)) if found else 1


def _surely_not_sent(exc: MessagingError) -> bool:
    """The provider refused the text (4xx) or said it is unavailable (503), or could not be reached at all
    (connection refused, unknown host): nothing went out. A timeout, a dropped connection or another 5xx
    mid-request may have sent it. (The providers raise `from None`; the original error is the context.)"""
    if not isinstance(exc, MessagingUnavailable):
        return True
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return cause.code == 503
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror))


def _phone_problem(e164: str | None, region: str) -> str | None:
    """Why this number cannot take a text, or None."""
    if not e164:
        return "no mobile number on file"
    try:
        import phonenumbers

        kind = phonenumbers.number_type(phonenumbers.parse(e164, region))
    except Exception:  # noqa: BLE001 - an unparseable stored number: let the provider judge it
        return None
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        return "the number on file is a landline"
    return None


def _hint(e164: str) -> str:
    return f"•••{e164[-4:]}"


class _Runner:
    def __init__(self, db: Any, gateway: PaymentGateway, messaging: SmsProvider | None, settings: Any,
                 today: dt.date, terminal: str | None, actor: Actor) -> None:
        from clarity_tui.services.billing import BillingService

        self.db, self.messaging, self.settings = db, messaging, settings
        self.today, self.terminal, self.actor = today, terminal, actor
        billing = BillingService(db, gateway, actor, backoff_first=settings.payments.replay_every_seconds)
        self.processor = billing.processor  # OPERATIONS has DUNNING_LINK (billing_steps.py)

    def one(self, due: _Due) -> DunningOutcome:
        inv, step = due.invoice, due.step
        tag = f"{_OWNER}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)} since {utcnow().isoformat()}"
        msg_id = self._claim(due, tag)
        if msg_id is None:
            return DunningOutcome(inv.membership_id, inv.invoice_id, step, "busy", "another terminal has it")
        with self.db.read() as s:
            customer = s.get(Customer, inv.customer_id) if inv.customer_id else None
            if customer is None:
                m = s.get(Membership, inv.membership_id)
                customer = s.get(Customer, m.customer_id) if m is not None else None
            phone = customer.phone_e164 if customer is not None else None
            customer_id = customer.id if customer is not None else None
        problem = _phone_problem(phone, self.settings.site.phone_region)
        if problem is not None or customer_id is None or phone is None:
            return self._finish(msg_id, tag, due, DunningStatus.SKIPPED, problem or "no customer on file",
                                from_=DunningStatus.CLAIMED)
        if self.messaging is None:
            return self._finish(msg_id, tag, due, DunningStatus.FAILED,
                                "text messages are not set up on this terminal (messaging settings)",
                                from_=DunningStatus.CLAIMED)
        url, why, final = self._link(msg_id, due, customer_id)
        if url is None:
            status = DunningStatus.SKIPPED if final else DunningStatus.FAILED
            return self._finish(msg_id, tag, due, status, why, from_=DunningStatus.CLAIMED)
        body = (f"{self.settings.site.name}: your membership payment of {money(inv.amount_cents)} did not go "
                f"through. Update your card to keep washing: {url}")
        # Committed before the provider is called: a crash from here on can never send it twice.
        with self.db.write() as s:
            moved = s.exec(update(DunningMessage).where(
                col(DunningMessage.id) == msg_id, col(DunningMessage.status) == DunningStatus.CLAIMED,
                col(DunningMessage.detail) == tag).values(status=DunningStatus.SENDING, phone=phone,
                                                          link_url=url)).rowcount
        if moved != 1:
            return DunningOutcome(inv.membership_id, inv.invoice_id, step, "busy", "the claim was taken over")
        try:
            sent = self.messaging.send(phone, body)
        except MessagingError as exc:
            status = DunningStatus.FAILED if _surely_not_sent(exc) else DunningStatus.UNKNOWN
            return self._finish(msg_id, tag, due, status, str(exc), from_=DunningStatus.SENDING, phone=phone)
        except Exception as exc:
            log.exception("dunning: the SMS provider failed while sending")
            return self._finish(msg_id, tag, due, DunningStatus.UNKNOWN, f"the SMS provider failed: {exc!r}",
                                from_=DunningStatus.SENDING, phone=phone)
        return self._finish(msg_id, tag, due, DunningStatus.SENT, f"message {sent.id}", from_=DunningStatus.SENDING,
                            phone=phone, extra={"message_id": sent.id, "provider": self.messaging.name})

    def _claim(self, due: _Due, tag: str) -> int | None:
        """The row's id when this process now owns (invoice, step); None when another one does."""
        inv = due.invoice
        try:
            with self.db.write() as s:
                if due.retry_id is not None:
                    won = s.exec(update(DunningMessage).where(
                        col(DunningMessage.id) == due.retry_id, col(DunningMessage.status) == DunningStatus.FAILED,
                    ).values(status=DunningStatus.CLAIMED, sent_on=self.today, terminal=self.terminal,
                             detail=tag)).rowcount
                    return due.retry_id if won == 1 else None
                row = DunningMessage(membership_id=inv.membership_id, invoice_id=inv.invoice_id, step=due.step,
                                     sent_on=self.today, status=DunningStatus.CLAIMED, terminal=self.terminal,
                                     detail=tag)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:  # the unique constraints: another process claimed it (or texted today)
            return None

    def _link(self, msg_id: int, due: _Due, customer_id: int) -> tuple[str | None, str, bool]:
        """(url, why not, final): the card-update link through the outbox."""
        inv = due.invoice
        with self.db.write() as s:
            row = enqueue(s, order_id=None, operation=DUNNING_LINK,
                          payload={"dunning_message_id": msg_id, "customer_id": customer_id,
                                   "return_url": self.settings.billing.card_update_return_url,
                                   "chain": f"dunning-{inv.invoice_id}-{due.step}"},
                          idempotency_key=link_key(inv.invoice_id, due.step))
            row_id, done = row.id, row.status == OutboxStatus.DONE
            assert row_id is not None  # flushed by enqueue
        run = None if done else self.processor.run_rows([row_id])
        with self.db.read() as s:
            row = s.get(Outbox, row_id)
            status, result, error = row.status, dict(row.result or {}), row.last_error
        if status == OutboxStatus.DONE and result.get("url"):
            return str(result["url"]), "", False
        if status == OutboxStatus.FAILED:
            return None, f"the payment gateway refused the card-update link: {error}", True
        why = str(run.error) if run is not None and run.error is not None else "another terminal is making it"
        return None, f"no card-update link yet ({why}); tried again on the next run", False

    def _finish(self, msg_id: int, tag: str, due: _Due, status: str, detail: str, *, from_: str,
                phone: str | None = None, extra: dict[str, Any] | None = None) -> DunningOutcome:
        inv = due.invoice
        with self.db.write() as s:
            # From our own claim; a row another run marked `unknown` meanwhile takes the truth (sent).
            q = update(DunningMessage).where(col(DunningMessage.id) == msg_id)
            q = q.where(col(DunningMessage.status) == from_, col(DunningMessage.detail) == tag) \
                if from_ == DunningStatus.CLAIMED else \
                q.where(col(DunningMessage.status).in_([DunningStatus.SENDING, DunningStatus.UNKNOWN]))
            if status == DunningStatus.FAILED:
                detail = f"{detail} (try {due.tries + 1})"
            values: dict[str, Any] = {"status": status, "detail": detail}
            if status == DunningStatus.SENT:
                values["sent_at"] = utcnow()
            if s.exec(q.values(**values)).rowcount != 1:  # our claim was settled by another run meanwhile
                return DunningOutcome(inv.membership_id, inv.invoice_id, due.step, "busy", "the claim was taken over")
            after = {"invoice_id": inv.invoice_id, "step": due.step, "amount_cents": inv.amount_cents,
                     **({"to": _hint(phone)} if phone else {}), **(extra or {})}
            if status != DunningStatus.SENT:
                after["reason"] = detail
            audit.record(s, self.actor, f"dunning.{status}", "membership", inv.membership_id, after=after)
        return DunningOutcome(inv.membership_id, inv.invoice_id, due.step, status, detail)
