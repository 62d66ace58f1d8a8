"""Who may do what on a customer record. Checked in the services, never only in screens.

Permission matrix (✓ allowed, · refused):

| permission                | attendant | manager | support | technician |
|---------------------------|:---------:|:-------:|:-------:|:----------:|
| customer.view (search)    |     ✓     |    ✓    |    ✓    |     ✓      |
| customer.create           |     ✓     |    ✓    |    ✓    |     ·      |
| customer.edit_contact     |     ✓     |    ✓    |    ✓    |     ·      |
| customer.delete           |     ·     |    ✓    |    ·    |     ·      |
| relationship.edit         |     ✓     |    ✓    |    ✓    |     ·      |
| membership.manage         |     ✓     |    ✓    |    ✓    |     ·      |
|   (pause/resume, plan change, cancel at period end, update card)          |
| membership.expiration     |     ·     |    ✓    |    ·    |     ·      |
| payment.refund            |     ·     |    ✓    |    ·    |     ·      |
| weblogin.manage           |     ✓     |    ✓    |    ✓    |     ·      |
| touchpoint.edit           |     ✓     |    ✓    |    ✓    |     ·      |
| benefit.edit              |     ·     |    ✓    |    ✓    |     ·      |
| note.edit                 |     ✓     |    ✓    |    ✓    |     ·      |
| note.operator_notice      |     ·     |    ✓    |    ✓    |     ·      |

Why: attendants serve customers at the lane (contact, notes, web login, plan actions)
but do not grant value (benefits, expiration dates) or delete history. Support works
remotely on the customer's behalf, so it edits the record but does not delete records
or move expiration dates. Technicians look (search, show) to diagnose, never edit.
"""

from __future__ import annotations

from enum import StrEnum

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


_A, _M, _S, _T = Role.ATTENDANT, Role.MANAGER, Role.SUPPORT, Role.TECHNICIAN

MATRIX: dict[Permission, frozenset[Role]] = {
    Permission.VIEW: frozenset({_A, _M, _S, _T}),
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
}


class PermissionDenied(PermissionError):
    """str() says who was refused what, and who can do it."""


def allowed(actor: Actor, permission: Permission) -> bool:
    return Role(actor.role) in MATRIX[permission]


def require(actor: Actor, permission: Permission) -> None:
    if allowed(actor, permission):
        return
    who = sorted(str(r) for r in MATRIX[permission])
    can = " or ".join(who) if who else "nobody"
    raise PermissionDenied(
        f"{actor.name} ({actor.role}) may not {_WHAT[permission]}: ask a {can} to do it."
    )
