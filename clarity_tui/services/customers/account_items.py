"""The record's small rows: touchpoints (tasks for staff), account benefits (free washes, tokens, credit)
and notes (an operator notice is a note every screen showing the customer must show)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import NotFound, ValidationFailed, parse_date, parse_int
from clarity_tui.services.customers.base import CustomerServiceBase, saved_id
from clarity_tui.services.customers.views import BENEFIT_TYPES
from clarity_tui.services.permissions import Permission, require
from db.models import AccountBenefit, Note, Operator, Touchpoint, utcnow


def benefit_values(kind: str, description: str, quantity: str | int, remaining: str | int | None,
                   expires_on: str | dt.date | None) -> dict[str, Any]:
    """A benefit's typed values, checked (ValidationFailed per field); an empty `remaining` is the quantity."""
    errors: dict[str, str] = {}
    if kind not in BENEFIT_TYPES:
        errors["kind"] = f"Choose a benefit type: {', '.join(BENEFIT_TYPES)}."
    qty = parse_int(quantity, "Quantity", errors, "quantity", minimum=1)
    left = qty if remaining is None or remaining == "" else parse_int(remaining, "Remaining", errors, "remaining", minimum=0)
    if "quantity" not in errors and "remaining" not in errors and left > qty:
        errors["remaining"] = f"Remaining ({left}) cannot be more than the quantity ({qty})."
    date = parse_date(expires_on, "Expiry date", errors, "expires_on")
    description = (description or "").strip()
    if len(description) > 200:
        errors["description"] = "The description is longer than 200 characters."
    if errors:
        raise ValidationFailed(errors)
    return {"kind": kind, "description": description or None, "quantity": qty, "remaining": left, "expires_on": date}


def _note_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed({"body": "Write the note first."})
    if len(body) > 4000:
        raise ValidationFailed({"body": "The note is longer than 4000 characters."})
    return body


class AccountItems(CustomerServiceBase):
    # --- touchpoints ---------------------------------------------------------------------------------------

    def _touchpoint_values(self, s: Session, title: str, due_on: str | dt.date | None, assignee_id: int | None) -> dict[str, Any]:
        errors: dict[str, str] = {}
        title = (title or "").strip()
        if not title:
            errors["title"] = "Enter what needs doing."
        elif len(title) > 200:
            errors["title"] = "The task is longer than 200 characters."
        date = parse_date(due_on, "Due date", errors, "due_on")
        if assignee_id is not None and s.get(Operator, assignee_id) is None:
            errors["assignee"] = "That operator no longer exists: choose another."
        if errors:
            raise ValidationFailed(errors)
        return {"title": title, "due_on": date, "assignee_operator_id": assignee_id}

    def add_touchpoint(self, actor: Actor, customer_id: int, title: str, due_on: str | dt.date | None = None,
                       assignee_id: int | None = None, done: bool = False) -> int:
        require(actor, Permission.TOUCHPOINT)
        with self.db.write() as s:
            self._customer(s, customer_id)
            tp = Touchpoint(customer_id=customer_id, done=done, done_at=utcnow() if done else None,
                            **self._touchpoint_values(s, title, due_on, assignee_id))
            s.add(tp)
            s.flush()
            audit.record(s, actor, "touchpoint.added", "customer", customer_id, after=audit.snapshot(tp, ["id", "title", "due_on", "assignee_operator_id", "done"]))
            return saved_id(tp)

    def update_touchpoint(self, actor: Actor, touchpoint_id: int, title: str, due_on: str | dt.date | None,
                          assignee_id: int | None, done: bool) -> None:
        require(actor, Permission.TOUCHPOINT)
        fields = ["title", "due_on", "assignee_operator_id", "done"]
        with self.db.write() as s:
            tp = s.get(Touchpoint, touchpoint_id)
            if tp is None:
                raise NotFound("That touchpoint was removed on another terminal: reload the record.")
            before = audit.snapshot(tp, fields)
            for key, value in self._touchpoint_values(s, title, due_on, assignee_id).items():
                setattr(tp, key, value)
            if done != tp.done:
                tp.done, tp.done_at = done, (utcnow() if done else None)
            audit.record(s, actor, "touchpoint.updated", "customer", tp.customer_id, before=before, after=audit.snapshot(tp, fields))

    def delete_touchpoint(self, actor: Actor, touchpoint_id: int) -> None:
        require(actor, Permission.TOUCHPOINT)
        with self.db.write() as s:
            tp = s.get(Touchpoint, touchpoint_id)
            if tp is None:
                raise NotFound("That touchpoint was already removed: reload the record.")
            before = audit.snapshot(tp, ["id", "title", "due_on", "done"])
            s.delete(tp)
            audit.record(s, actor, "touchpoint.removed", "customer", tp.customer_id, before=before)

    # --- account benefits --------------------------------------------------------------------------------------

    def add_benefit(self, actor: Actor, customer_id: int, kind: str, description: str = "", quantity: str | int = 1,
                    remaining: str | int | None = None, expires_on: str | dt.date | None = None) -> int:
        require(actor, Permission.BENEFIT)
        values = benefit_values(kind, description, quantity, remaining, expires_on)
        with self.db.write() as s:
            self._customer(s, customer_id)
            b = AccountBenefit(customer_id=customer_id, **values)
            s.add(b)
            s.flush()
            audit.record(s, actor, "benefit.added", "customer", customer_id, after=audit.snapshot(b, ["id", *values]))
            return saved_id(b)

    def update_benefit(self, actor: Actor, benefit_id: int, kind: str, description: str, quantity: str | int,
                       remaining: str | int | None, expires_on: str | dt.date | None) -> None:
        require(actor, Permission.BENEFIT)
        values = benefit_values(kind, description, quantity, remaining, expires_on)
        with self.db.write() as s:
            b = s.get(AccountBenefit, benefit_id)
            if b is None:
                raise NotFound("That benefit was removed on another terminal: reload the record.")
            before = audit.snapshot(b, list(values))
            for key, value in values.items():
                setattr(b, key, value)
            audit.record(s, actor, "benefit.updated", "customer", b.customer_id, before=before, after=audit.snapshot(b, list(values)))

    def remove_benefit(self, actor: Actor, benefit_id: int) -> None:
        require(actor, Permission.BENEFIT)
        with self.db.write() as s:
            b = s.get(AccountBenefit, benefit_id)
            if b is None:
                raise NotFound("That benefit was already removed: reload the record.")
            before = audit.snapshot(b, ["id", "kind", "description", "quantity", "remaining", "expires_on"])
            s.delete(b)
            audit.record(s, actor, "benefit.removed", "customer", b.customer_id, before=before)

    # --- notes ---------------------------------------------------------------------------------------------------

    def add_note(self, actor: Actor, customer_id: int, body: str, operator_notice: bool = False) -> int:
        require(actor, Permission.NOTE)
        if operator_notice:
            require(actor, Permission.OPERATOR_NOTICE)
        text = _note_body(body)
        with self.db.write() as s:
            self._customer(s, customer_id)
            n = Note(customer_id=customer_id, body=text, operator_notice=operator_notice, author_operator_id=actor.operator_id)
            s.add(n)
            s.flush()
            audit.record(s, actor, "note.added", "customer", customer_id, after={"note_id": n.id, "body": text, "operator_notice": operator_notice})
            return saved_id(n)

    def update_note(self, actor: Actor, note_id: int, body: str, operator_notice: bool) -> None:
        require(actor, Permission.NOTE)
        text = _note_body(body)
        with self.db.write() as s:
            n = s.get(Note, note_id)
            if n is None:
                raise NotFound("That note was removed on another terminal: reload the record.")
            if n.operator_notice or operator_notice:
                require(actor, Permission.OPERATOR_NOTICE)
            before = {"body": n.body, "operator_notice": n.operator_notice}
            n.body, n.operator_notice, n.updated_at = text, operator_notice, utcnow()
            audit.record(s, actor, "note.updated", "customer", n.customer_id, before=before, after={"note_id": n.id, "body": text, "operator_notice": operator_notice})

    def delete_note(self, actor: Actor, note_id: int) -> None:
        require(actor, Permission.NOTE)
        with self.db.write() as s:
            n = s.get(Note, note_id)
            if n is None:
                raise NotFound("That note was already removed: reload the record.")
            if n.operator_notice:
                require(actor, Permission.OPERATOR_NOTICE)
            before = {"note_id": n.id, "body": n.body, "operator_notice": n.operator_notice}
            s.delete(n)
            audit.record(s, actor, "note.removed", "customer", n.customer_id, before=before)
