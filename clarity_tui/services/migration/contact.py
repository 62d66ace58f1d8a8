"""The migrated member's contact and garage: the email asked for by SMS, and the legacy plates as vehicles."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import InvalidEmail, normalize_email
from clarity_tui.services.migration_guard import MigrationError, split_vehicle
from clarity_tui.services.orders.checkout import OrderSteps
from clarity_tui.services.membership_rules import current_membership
from clarity_tui.services.plates import plate_match_score
from db.models import Customer, LegacyMember, LegacyMemberPlate, OrderState, Plan, SalesOrder, VehicleSession

_EMAIL_TOKEN = re.compile(r"[^\s<>(),;:\"'\[\]]+@[^\s<>(),;:\"'\[\]]+")


@dataclass(frozen=True)
class EmailReply:
    email: str | None  # a valid address found in the reply
    text: str | None  # what the customer wrote (None: no reply yet)
    problem: str | None = None


def email_request(site_name: str, first_name: str | None) -> str:
    """The text asking a legacy member for their email."""
    return (f"{site_name}: Hi {first_name or 'there'}, we are moving your wash club membership to our new system. "
            "Reply to this text with your email address. Nothing is charged today.")


def email_in_replies(replies: Sequence[Any]) -> EmailReply:
    """The first valid address in the customer's replies (the newest reply first)."""
    if not replies:
        return EmailReply(None, None)
    text = replies[-1].body.strip()
    for reply in reversed(replies):
        for token in _EMAIL_TOKEN.findall(reply.body):
            try:
                return EmailReply(normalize_email(token.rstrip(".!?")), reply.body.strip())
            except InvalidEmail:
                continue
    return EmailReply(None, text, f"The customer replied “{text[:60]}”, which has no valid email address: "
                                  "ask them for it and type it in.")


def refuse_a_member(s: Session, customer_id: int) -> None:
    """"Use that customer" is refused when they are gone, or already a member (they would be billed twice)."""
    customer = s.get(Customer, customer_id)
    if customer is None:
        raise MigrationError("That customer no longer exists: check the details and Confirm again.")
    current = current_membership(s, customer_id)
    if current is not None:
        plan = s.get(Plan, current.plan_id)
        raise MigrationError(
            f"{customer.first_name} {customer.last_name} (#{customer.customer_number}) already has a "
            f"{plan.name if plan else 'current'} membership: migrating onto them would bill them twice. "
            "Go back and check the details, or change their membership on their record.")


def put_customer_on_order(s: Session, steps: OrderSteps, order: SalesOrder, lm: LegacyMember,
                          customer: Customer) -> None:
    """The order migrates the legacy member onto `customer`, with the legacy plates the plan takes."""
    plan = s.get(Plan, order.plan_id) if order.plan_id is not None else None
    if plan is None:
        raise MigrationError("The plan of this migration no longer exists: start again from the session.")
    order.customer_id, order.vehicle_ids = customer.id, legacy_vehicles(s, steps, order, lm, customer)
    steps.limit_vehicles(order, plan)
    steps.touch(s, order, OrderState.DRAFT)


def legacy_vehicles(s: Session, steps: OrderSteps, order: SalesOrder, lm: LegacyMember,
                    customer: Customer) -> list[int]:
    """The legacy plates become the customer's vehicles; the session's car is linked to its match
    (the camera may have misread it), or added when the legacy record does not have it."""
    vs = s.get(VehicleSession, order.session_id) if order.session_id else None
    region = vs.plate_region if vs else ""
    colour, make, model = split_vehicle(lm.vehicle_desc)
    ids: list[int] = []
    session_vehicle_id: int | None = None
    best = 0.0
    for p in s.exec(select(LegacyMemberPlate).where(LegacyMemberPlate.legacy_member_id == lm.id)
                    .order_by(col(LegacyMemberPlate.id))):
        score = plate_match_score(vs.plate, p.plate_normalized) if vs else 0.0
        details = (vs.make or make, vs.model or model, vs.colour or colour) if vs and score > best else (make, model, colour)
        vehicle_id = _vehicle_id(steps.garage_vehicle(s, customer, p.plate_raw, region, *details))
        if vehicle_id not in ids:
            ids.append(vehicle_id)
        if score > best:
            best, session_vehicle_id = score, vehicle_id
    if vs is None:
        return ids
    if session_vehicle_id is None:
        session_vehicle_id = _vehicle_id(steps.garage_vehicle(s, customer, vs.plate, vs.plate_region, vs.make,
                                                              vs.model, vs.colour))
    else:
        ids.remove(session_vehicle_id)
    ids.insert(0, session_vehicle_id)
    _link_session(s, steps.actor, vs, customer, session_vehicle_id)
    return ids


def _vehicle_id(vehicle: Any) -> int:
    assert vehicle.id is not None, "a vehicle flushed to the database"
    return int(vehicle.id)


def _link_session(s: Session, actor: Actor, vs: VehicleSession, customer: Customer, vehicle_id: int) -> None:
    before = audit.snapshot(vs, ["customer_id", "vehicle_id"])
    vs.customer_id, vs.vehicle_id = customer.id, vehicle_id
    vs.version += 1
    s.add(vs)
    audit.record(s, actor, "session.customer_linked", "vehicle_session", vs.id, before=before,
                 after=audit.snapshot(vs, ["customer_id", "vehicle_id"]))
