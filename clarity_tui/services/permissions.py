"""Who may do what. Checked in the services, never only in screens: every guarded entry point calls
`require()` before its first read or write, so a refusal leaves nothing behind. Screens and the CLI
may ask `allowed()` to grey out what the service would refuse anyway.

Permission matrix (✓ allowed, · refused). `system` is `Actor.system(...)`: code acting on its own
(the plate camera, the tunnel, billing sync, outbox replay, imports), never a person.
tests/site/test_permission_matrix.py checks that this table is `render_table()`, i.e. MATRIX.

| permission            | attendant | manager | support | technician | system |
|-----------------------|:---------:|:-------:|:-------:|:----------:|:------:|
| customer.view         |     ✓     |    ✓    |    ✓    |     ✓      |   ✓    |
| customer.create       |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| customer.edit_contact |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| customer.delete       |     ·     |    ✓    |    ·    |     ·      |   ·    |
| relationship.edit     |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| membership.manage     |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| membership.expiration |     ·     |    ✓    |    ·    |     ·      |   ·    |
| payment.refund        |     ·     |    ✓    |    ·    |     ·      |   ·    |
| weblogin.manage       |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| touchpoint.edit       |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| benefit.edit          |     ·     |    ✓    |    ✓    |     ·      |   ·    |
| note.edit             |     ✓     |    ✓    |    ✓    |     ·      |   ·    |
| note.operator_notice  |     ·     |    ✓    |    ✓    |     ·      |   ·    |
| sale.sell             |     ✓     |    ✓    |    ·    |     ·      |   ·    |
| legacy.migrate        |     ✓     |    ✓    |    ·    |     ·      |   ·    |
| legacy.inactive       |     ·     |    ✓    |    ·    |     ·      |   ·    |
| session.status        |     ✓     |    ✓    |    ·    |     ·      |   ✓    |
| billing.override      |     ·     |    ✓    |    ·    |     ·      |   ·    |
| operator.manage       |     ·     |    ✓    |    ·    |     ·      |   ·    |
| audit.view            |     ·     |    ✓    |    ✓    |     ·      |   ·    |
| report.view           |     ·     |    ✓    |    ✓    |     ·      |   ·    |
| report.own_shift      |     ✓     |    ✓    |    ✓    |     ·      |   ·    |

Why, the customer record: attendants serve customers at the lane (contact, notes, web login, plan
actions: pause/resume, plan change, cancel at period end, update card) but do not grant value
(benefits, expiration dates) or delete history. Support works remotely on the customer's behalf, so
it edits the record but does not delete records or move expiration dates.

Why, the lane and the site:
- sale.sell (a sale or plan change at the lane: open, plan, customer, card, terms, signature, pay,
  cancel) and legacy.migrate ("That's Me" to activation): attendants and managers, who stand with
  the customer, the card reader and the signature pad. Support is remote: it cannot put the pad in
  front of anyone, and changes an existing membership through the customer record instead.
- legacy.inactive (migrating a legacy member whose old membership is cancelled or terminated, with a
  reason that is audited): managers only, approved in place with their PIN. The old POS stopped
  billing them for a reason; a new subscription for them is a manager's decision.
- session.status (mark done, no sale, abandoned): whoever sees the car (attendants, managers) and
  the system (the tunnel reports a car washed; stale sessions expire on their own). Support cannot
  see the lane. Opening a session from a camera read is the device's path, not a status change.
- billing.override (a manager chooses a migrated member's first billing date; a past date would
  charge today), payment.refund (money back) and operator.manage (who may sign in, with which role
  and PIN): managers only. The override is checked on the manager whose PIN approved it.
- audit.view: managers, who answer for the site, and support, whose diagnosis starts with who did
  what. Not attendants: the trail shows every colleague's actions and customers' details.
- report.view (the whole day, every terminal, anyone's shift): managers and support (reading the
  figures when a site calls about them). report.own_shift: an attendant closes out their own shift
  and sees its report, not a colleague's.
- Technicians diagnose devices and look customers up; everything else is refused. A technician who
  must test a sale signs in as an attendant (the simulator's demo operators).
- The system decides nothing a person must answer for: no money, no identities, no reading the
  trail. Finishing an order already paid (SaleService.recover/activate) and recording plate reads
  are not guarded: they complete what a permitted person or an authenticated device started.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from clarity_tui.errors import UserFacingError
from clarity_tui.services.actor import Actor
from db.models import Role


class Permission(StrEnum):
    VIEW = "customer.view"
    CREATE = "customer.create"
    EDIT_CONTACT = "customer.edit_contact"
    DELETE = "customer.delete"
    RELATIONSHIP = "relationship.edit"
    MEMBERSHIP = "membership.manage"
    EXPIRATION = "membership.expiration"
    REFUND = "payment.refund"
    WEB_LOGIN = "weblogin.manage"
    TOUCHPOINT = "touchpoint.edit"
    BENEFIT = "benefit.edit"
    NOTE = "note.edit"
    OPERATOR_NOTICE = "note.operator_notice"
    SELL = "sale.sell"
    MIGRATE = "legacy.migrate"
    MIGRATE_INACTIVE = "legacy.inactive"
    SESSION_STATUS = "session.status"
    BILLING_OVERRIDE = "billing.override"
    OPERATORS = "operator.manage"
    AUDIT_VIEW = "audit.view"
    REPORT_VIEW = "report.view"
    REPORT_OWN_SHIFT = "report.own_shift"


# Not an operator's role (no operator signs in as it): what `Actor.system(...)` is checked as.
SYSTEM = "system"
ROLES: tuple[str, ...] = (Role.ATTENDANT, Role.MANAGER, Role.SUPPORT, Role.TECHNICIAN, SYSTEM)

_A, _M, _S, _T, _SYS = ROLES

MATRIX: dict[Permission, frozenset[str]] = {
    Permission.VIEW: frozenset({_A, _M, _S, _T, _SYS}),
    Permission.CREATE: frozenset({_A, _M, _S}),
    Permission.EDIT_CONTACT: frozenset({_A, _M, _S}),
    Permission.DELETE: frozenset({_M}),
    Permission.RELATIONSHIP: frozenset({_A, _M, _S}),
    Permission.MEMBERSHIP: frozenset({_A, _M, _S}),
    Permission.EXPIRATION: frozenset({_M}),
    Permission.REFUND: frozenset({_M}),
    Permission.WEB_LOGIN: frozenset({_A, _M, _S}),
    Permission.TOUCHPOINT: frozenset({_A, _M, _S}),
    Permission.BENEFIT: frozenset({_M, _S}),
    Permission.NOTE: frozenset({_A, _M, _S}),
    Permission.OPERATOR_NOTICE: frozenset({_M, _S}),
    Permission.SELL: frozenset({_A, _M}),
    Permission.MIGRATE: frozenset({_A, _M}),
    Permission.MIGRATE_INACTIVE: frozenset({_M}),
    Permission.SESSION_STATUS: frozenset({_A, _M, _SYS}),
    Permission.BILLING_OVERRIDE: frozenset({_M}),
    Permission.OPERATORS: frozenset({_M}),
    Permission.AUDIT_VIEW: frozenset({_M, _S}),
    Permission.REPORT_VIEW: frozenset({_M, _S}),
    Permission.REPORT_OWN_SHIFT: frozenset({_A, _M, _S}),
}

_WHAT = {
    Permission.VIEW: "look up customers",
    Permission.CREATE: "create customers",
    Permission.EDIT_CONTACT: "edit customer details",
    Permission.DELETE: "delete customers",
    Permission.RELATIONSHIP: "change related customers",
    Permission.MEMBERSHIP: "change memberships",
    Permission.EXPIRATION: "change membership expiration dates",
    Permission.REFUND: "refund payments",
    Permission.WEB_LOGIN: "manage web logins",
    Permission.TOUCHPOINT: "change touchpoints",
    Permission.BENEFIT: "change account benefits",
    Permission.NOTE: "change notes",
    Permission.OPERATOR_NOTICE: "set or clear operator notices",
    Permission.SELL: "sell memberships",
    Permission.MIGRATE: "migrate legacy members",
    Permission.MIGRATE_INACTIVE: "approve migrating a cancelled or terminated legacy member",
    Permission.SESSION_STATUS: "change a vehicle's status (done, no sale)",
    Permission.BILLING_OVERRIDE: "override billing dates",
    Permission.OPERATORS: "manage operators",
    Permission.AUDIT_VIEW: "view the audit trail",
    Permission.REPORT_VIEW: "view reports of the whole site or of other operators' shifts",
    Permission.REPORT_OWN_SHIFT: "view shift reports",
}


class PermissionDenied(UserFacingError, PermissionError):
    """str() says who was refused what, and who can do it."""


def role_of(actor: Actor) -> str:
    """The column of MATRIX that `actor` is checked against."""
    return SYSTEM if actor.is_system else str(Role(actor.role))


def allowed(actor: Actor, permission: Permission) -> bool:
    return role_of(actor) in MATRIX[permission]


def refusal(actor: Actor, permission: Permission) -> str:
    """'Taylor Tech (technician) may not sell memberships: ask an attendant or manager to do it.'"""
    people = [str(r) for r in ROLES if r in MATRIX[permission] and r != SYSTEM]
    if not people:
        who = "nobody can"
    else:
        names = people[0] if len(people) == 1 else f"{', '.join(people[:-1])} or {people[-1]}"
        who = f"ask {'an' if names[0] in 'aeiou' else 'a'} {names} to do it"
    return f"{actor.name} ({role_of(actor)}) may not {_WHAT[permission]}: {who}."


def require(actor: Actor, permission: Permission) -> None:
    if not allowed(actor, permission):
        raise PermissionDenied(refusal(actor, permission))


class GuardedService(Protocol):
    """A service whose @guarded methods check `permission` for `actor`."""

    actor: Actor
    permission: Permission


Service = TypeVar("Service", bound=GuardedService)
Params = ParamSpec("Params")
Result = TypeVar("Result")


def guarded(method: Callable[Concatenate[Service, Params], Result]) -> Callable[Concatenate[Service, Params], Result]:
    """A service method checked against `self.permission` for `self.actor`, before anything else."""

    @functools.wraps(method)
    def checked(self: Service, /, *args: Params.args, **kwargs: Params.kwargs) -> Result:
        require(self.actor, self.permission)
        return method(self, *args, **kwargs)

    return checked


def render_table() -> str:
    """The matrix as the Markdown table of this module's docstring."""
    width = max(len(p.value) for p in Permission)
    head = "| " + "permission".ljust(width) + " | " + " | ".join(ROLES) + " |"
    rule = "|" + "-" * (width + 2) + "|" + "|".join(":" + "-" * len(r) + ":" for r in ROLES) + "|"
    rows = [head, rule]
    for p in Permission:
        cells = [("✓" if r in MATRIX[p] else "·").center(len(r) + 2) for r in ROLES]
        rows.append("| " + p.value.ljust(width) + " |" + "|".join(cells) + "|")
    return "\n".join(rows)
