"""CustomerService: the record's parts, one class for the screens and the flows to call."""

from __future__ import annotations

from clarity_tui.services.customers.account_items import AccountItems
from clarity_tui.services.customers.contact import ContactEdits
from clarity_tui.services.customers.memberships import CustomerMemberships
from clarity_tui.services.customers.record import RecordReads
from clarity_tui.services.customers.relationships import Relationships
from clarity_tui.services.customers.web_login import WebLogins


class CustomerService(RecordReads, ContactEdits, Relationships, WebLogins, AccountItems, CustomerMemberships):
    """Built with `CustomerService(db, ...)` in tests and tools, `CustomerService.from_services(services)`
    in the app (clarity_tui/wiring.py)."""
