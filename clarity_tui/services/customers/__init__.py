"""The customer record: contact details and question prompts, related customers, memberships,
web login, touchpoints, account benefits and notes.

    views.py          what the record shows (CustomerRecord, ContactForm, MembershipInfo, ...)
    base.py           the service's parts, `from_services`, the checks each write starts with
    record.py         reading the record
    contact.py        the General tab: create, edit, delete
    relationships.py  the Related tab
    web_login.py      the Web Login tab and the portal's password reset
    account_items.py  touchpoints, account benefits, notes
    memberships.py    the Membership tab's actions (glue to services/membership_actions.py)
    service.py        CustomerService, all of the above

Every change checks the actor's permission (`services.permissions`, matrix in its docstring),
validates its input (raising `ValidationFailed` with a message per field, so a form keeps what
was typed), and writes an audit row with before/after in the same transaction.
Membership changes are optimistic on `Membership.version`, as contact edits are on `Customer.version`,
and call the payment gateway (injected) for memberships billed by a gateway subscription, outside any
database transaction. The refusals (CustomerError and its kinds) are in services/customer_input.py.
"""

from __future__ import annotations

from clarity_tui.services.customer_input import (
    CustomerError,
    InUse,
    NotFound,
    StaleRecord,
    ValidationFailed,
)
from clarity_tui.services.customers.account_items import benefit_values
from clarity_tui.services.customers.service import CustomerService
from clarity_tui.services.customers.views import (
    BENEFIT_TYPES,
    RELATIONSHIP_LABELS,
    ContactForm,
    CustomerRecord,
    MembershipInfo,
    NoteView,
    RelatedView,
    TouchpointView,
    WebLoginView,
)
from clarity_tui.services.identity import display_phone
from clarity_tui.services.permissions import PermissionDenied

__all__ = [
    "BENEFIT_TYPES", "RELATIONSHIP_LABELS", "ContactForm", "CustomerError", "CustomerRecord", "CustomerService",
    "InUse", "MembershipInfo", "NotFound", "NoteView", "PermissionDenied", "RelatedView", "StaleRecord",
    "TouchpointView", "ValidationFailed", "WebLoginView", "benefit_values", "display_phone",
]
