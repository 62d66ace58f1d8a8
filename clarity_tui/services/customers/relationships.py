"""The Related tab's writes: relate two customers (household, business, contact, sold for), change the kind,
remove the relationship. One row relates both customers; each record shows it."""

from __future__ import annotations

from sqlmodel import col, or_, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.customer_input import NotFound, ValidationFailed
from clarity_tui.services.customers.base import CustomerServiceBase, saved_id
from clarity_tui.services.customers.views import RELATIONSHIP_LABELS, RelatedView
from clarity_tui.services.identity import display_name
from clarity_tui.services.permissions import Permission, require
from db.models import Customer, CustomerRelationship, RelationshipKind

_CHOOSE_KIND = "Choose the kind of relationship (household, business, contact or sold for)."


def _is_kind(kind: str) -> bool:
    return kind in {k.value for k in RelationshipKind}


class Relationships(CustomerServiceBase):
    def add_relationship(self, actor: Actor, customer_id: int, other: str | int, kind: str) -> RelatedView:
        require(actor, Permission.RELATIONSHIP)
        errors: dict[str, str] = {}
        if not _is_kind(kind):
            errors["kind"] = _CHOOSE_KIND
        with self.db.write() as s:
            me = self._customer(s, customer_id)
            if isinstance(other, int):
                target = s.get(Customer, other)
            else:
                number = (other or "").strip().upper()
                target = s.exec(select(Customer).where(Customer.customer_number == number)).first() if number else None
                if not number:
                    errors["other"] = "Enter the related customer's number, or search for them."
            if target is None and "other" not in errors:
                errors["other"] = f"No customer number '{other}': check it, or search for the customer."
            elif target is not None and target.id == me.id:
                errors["other"] = "A customer cannot be related to themselves."
            if errors:
                raise ValidationFailed(errors)
            assert target is not None
            me_id, target_id = saved_id(me), saved_id(target)
            dup = s.exec(select(CustomerRelationship).where(CustomerRelationship.kind == kind, or_(
                (col(CustomerRelationship.customer_id) == me_id) & (col(CustomerRelationship.related_customer_id) == target_id),
                (col(CustomerRelationship.customer_id) == target_id) & (col(CustomerRelationship.related_customer_id) == me_id),
            ))).first()
            if dup is not None:
                raise ValidationFailed({"other": f"{display_name(target.first_name, target.last_name)} is already related to this customer as "
                                                 f"{RELATIONSHIP_LABELS[RelationshipKind(kind)].lower()}."})
            rel = CustomerRelationship(customer_id=me_id, related_customer_id=target_id, kind=kind)
            s.add(rel)
            s.flush()
            audit.record(s, actor, "relationship.added", "customer", me_id,
                         after={"relationship_id": rel.id, "related": target.customer_number, "kind": kind})
            return RelatedView(saved_id(rel), kind, target_id, target.customer_number,
                               display_name(target.first_name, target.last_name), True)

    def update_relationship(self, actor: Actor, relationship_id: int, kind: str) -> None:
        require(actor, Permission.RELATIONSHIP)
        if not _is_kind(kind):
            raise ValidationFailed({"kind": _CHOOSE_KIND})
        with self.db.write() as s:
            rel = s.get(CustomerRelationship, relationship_id)
            if rel is None:
                raise NotFound("That relationship was removed on another terminal: reload the record.")
            before = {"kind": rel.kind}
            rel.kind = kind
            audit.record(s, actor, "relationship.updated", "customer", rel.customer_id, before=before,
                         after={"relationship_id": rel.id, "kind": kind})

    def remove_relationship(self, actor: Actor, relationship_id: int) -> None:
        require(actor, Permission.RELATIONSHIP)
        with self.db.write() as s:
            rel = s.get(CustomerRelationship, relationship_id)
            if rel is None:
                raise NotFound("That relationship was already removed: reload the record.")
            before = audit.snapshot(rel, ["id", "customer_id", "related_customer_id", "kind"])
            s.delete(rel)
            audit.record(s, actor, "relationship.removed", "customer", rel.customer_id, before=before)
