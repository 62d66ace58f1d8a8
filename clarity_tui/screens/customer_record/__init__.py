"""The customer record: one screen, eight tabs, one module each.

    screen.py       CustomerRecordScreen: the tabs, the keys, New / Edit / Delete per tab
    base.py         what the tabs share: the record, the service, dialogs, approvals, workers
    general.py      contact details and question prompts (F2 saves)
    related.py      related customers
    membership.py   memberships, their payments, and the membership actions
    web_login.py    the customer's web portal sign-in
    touchpoints.py  tasks for staff
    benefits.py     account benefits
    notes.py        notes and operator notices
    washes.py       the wash history (member visits and single washes), read-only

Thin: every change goes through CustomerService in a worker. Other screens open a record by posting
`OpenCustomer` (clarity_tui/messages.py) to the app, never by importing this package.
"""

from __future__ import annotations

from clarity_tui.screens.customer_record.screen import CustomerRecordScreen

__all__ = ["CustomerRecordScreen"]
