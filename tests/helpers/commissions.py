"""Commissions in tests: operators as they sign in, a membership sold by one of them, the rows it earned,
and the commission child process two of which race (tests/billing/commission_child.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.actor import Actor
from clarity_tui.services.billing import BillingService
from clarity_tui.services.commissions import CommissionSettings
from clarity_tui.services.membership_actions import ActionOutcome, MembershipActions
from clarity_tui.services.orders import SaleService
from db.engine import Database
from db.models import Commission, Operator, Role
from tests.helpers import forked
from tests.helpers.actors import MANAGER
from tests.helpers.clock import TODAY
from tests.helpers.sale import sign

REPO = Path(__file__).resolve().parents[2]


def operator(db: Database, name: str = "Alex Attendant", terminal: str = "lane-1-term") -> Actor:
    """The demo operator `name` as signed in at `terminal` (their real operator id)."""
    with db.read() as s:
        op = s.exec(select(Operator).where(Operator.name == name)).one()
    return Actor(op.name, Role(op.role), terminal, op.id)


def seller(db: Database, actor: Actor, commissions: CommissionSettings | None = None) -> SaleService:
    service = SaleService(db, SimulatedGateway(db), actor, terminal=actor.terminal, today=lambda: TODAY)
    service.steps.commissions = commissions
    return service


def sell(service: SaleService, session_id: int, plan: str = "BASIC") -> int:
    """A membership sold and paid at the lane by the service's operator: the order's id."""
    view = service.choose_plan(service.open_for_session(session_id).id, plan)
    sign(service, view.id)
    assert service.pay(view.id).ok
    return view.id


def rows(db: Database, order_id: int | None = None) -> list[tuple[str, str, int, int | None]]:
    """(entry, kind, amount, operator id) of the commission rows (of one order), oldest first."""
    with db.read() as s:
        q = select(Commission).order_by(col(Commission.id))
        if order_id is not None:
            q = q.where(Commission.order_id == order_id)
        return [(r.entry, r.kind, r.amount_cents, r.operator_id) for r in s.exec(q)]


def refund(db: Database, order_id: int, cents: int | None = None) -> ActionOutcome:
    """A manager gives money back on the order (through the outbox, on the simulated gateway)."""
    return MembershipActions(BillingService(db, SimulatedGateway(db))).refund(MANAGER, order_id, cents)


class Child:
    """One process (tests/billing/commission_child.py), connected and waiting at the start line."""

    def __init__(self, db_url: str, *args: Any) -> None:
        self.args = args
        self.p = forked.popen(["-m", "tests.billing.commission_child", db_url, *map(str, args)], cwd=REPO,
                              stdin=forked.PIPE, stdout=forked.PIPE, stderr=forked.PIPE, text=True)
        assert self.p.stdin is not None and self.p.stdout is not None and self.p.stderr is not None  # PIPEs
        self.stdin, stdout, stderr = self.p.stdin, self.p.stdout, self.p.stderr
        line = stdout.readline()
        if line.strip() != "ready":
            self.p.kill()
            raise AssertionError(f"child {args} did not start: {line!r} {stderr.read()}")

    def go(self) -> None:
        self.stdin.write("go\n")
        self.stdin.flush()

    def finish(self, timeout: float = 120) -> str:
        out, err = self.p.communicate(timeout=timeout)
        assert self.p.returncode == 0, f"{self.args}: rc={self.p.returncode}\n{out}\n{err[-3000:]}"
        return out.strip().splitlines()[-1]


def race(db_url: str, *jobs: tuple[Any, ...]) -> list[str]:
    """Start every child, let them all go at once, and return each one's last line."""
    children = [Child(db_url, *job) for job in jobs]
    for child in children:  # every one is connected and waiting: they leave together
        child.go()
    return [child.finish() for child in children]
