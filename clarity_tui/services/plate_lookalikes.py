"""The right car: a misread of a current customer's plate (issue 14).

A camera that reads RMK-323I for Sofia Evans's RMK-3231 opens a walk-up session; without a hint the
attendant could sell her a second membership, or link her and give her a second car. The site's own
vehicles are searched exactly as the legacy plates are (services/legacy_match.py): the read's shape and
its one-edit neighbours (plates.shape_variants) probe the expression index on the vehicles' plate shape
(db.models.plate_shape_sql, migration 0010), then plates.plate_match_score ranks what comes back.

- `customer_lookalikes`: the vehicles of current customers that a read may be (exact plates excluded).
- `session_lookalikes` / `member_lookalike`: the same for a walk-up session (the session screen's hint,
  and the question asked before a sale to a look-alike of a current member).
- `correct_session_plate`: one key on the session screen; the session becomes the customer's car.
- `garage_lookalike` + `apply_correction`: "Search & link" from a misread corrects the session's plate
  to the customer's existing vehicle instead of adding the misread as a second car (SaleService.link_customer).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.identity import display_name
from clarity_tui.services.membership_rules import CURRENT_STATUSES
from clarity_tui.services.permissions import Permission, require
from clarity_tui.services.plates import normalize_plate, plate_match_score, shape_variants
from db.models import (
    OPEN_ORDER_STATES,
    OPEN_SESSION_STATES,
    Customer,
    Lane,
    Membership,
    MembershipVehicle,
    Plan,
    SalesOrder,
    Vehicle,
    VehicleSession,
    plate_shape_sql,
)

# A plate that differs only by camera confusions (O/0, I/1, B/8 ...): the same car, as far as a
# correction without a question goes. One character missing, extra or wrong (0.7) is only a hint:
# two cars of one family can have neighbouring plates.
SAME_SHAPE = 0.9
ONE_OFF = 0.7
_CORRECTED_FIELDS = ["plate", "plate_normalized", "plate_region", "customer_id", "vehicle_id", "legacy_member_id"]


class PlateCorrectionRefused(UserFacingError, ValueError):
    """The plate cannot be corrected (another open session has it, a sale is open, ...): nothing changed."""


@dataclass(frozen=True)
class LookAlike:
    """A current customer's vehicle that a read may be."""

    vehicle_id: int
    plate: str
    customer_id: int
    customer_name: str
    plan_name: str | None  # the current membership that covers the car (None: a customer, not a member)
    score: float
    read_plate: str = ""  # the plate as the session has it (RMK-323I)

    @property
    def member(self) -> bool:
        return self.plan_name is not None

    @property
    def standing(self) -> str:
        """"Basic member" (the plan's first word, as on the board), or "customer"."""
        return f"{self.plan_name.split()[0]} member" if self.plan_name else "customer"

    @property
    def label(self) -> str:
        """"RMK-3231 (Sofia Evans, Basic member)"."""
        return f"{self.plate} ({self.customer_name}, {self.standing})"

    @property
    def whose(self) -> str:
        """"Sofia Evans's car (Basic member)"."""
        return f"{self.customer_name}'s car ({self.standing})"


def customer_lookalikes(s: Session, plate: str, *, min_score: float = ONE_OFF, limit: int = 3) -> list[LookAlike]:
    """Vehicles of customers whose plate the read may be (not the read's own plate), members first,
    then the closest match."""
    read = normalize_plate(plate)
    variants = shape_variants(read)
    if not variants:
        return []
    rows = s.exec(select(col(Vehicle.id), col(Vehicle.plate), col(Vehicle.plate_normalized), Customer)
                  .join(Customer, col(Customer.id) == col(Vehicle.customer_id))
                  .where(plate_shape_sql(Vehicle.plate_normalized).in_(sorted(variants)),
                         col(Vehicle.plate_normalized) != read)).all()
    found = []
    for vehicle_id, shown, normalized, customer in rows:
        score = plate_match_score(read, normalized)
        if score >= min_score and vehicle_id is not None and customer.id is not None:
            name = display_name(customer.first_name, customer.last_name) or "a customer"
            found.append(LookAlike(vehicle_id, shown, customer.id, name, _current_plan(s, vehicle_id), score))
    found.sort(key=lambda a: (not a.member, -a.score, a.vehicle_id))
    return found[:limit]


def _current_plan(s: Session, vehicle_id: int) -> str | None:
    return s.exec(select(Plan.name).join(Membership, col(Membership.plan_id) == Plan.id)
                  .join(MembershipVehicle, col(MembershipVehicle.membership_id) == Membership.id)
                  .where(MembershipVehicle.vehicle_id == vehicle_id, col(Membership.status).in_(CURRENT_STATUSES))
                  .order_by(col(Membership.id))).first()


def _walk_up(vs: VehicleSession | None) -> bool:
    return vs is not None and vs.customer_id is None


def session_lookalikes(db: Any, session_id: int) -> list[LookAlike]:
    """For a walk-up session (no customer on file for its plate): the customers' cars it may be."""
    with db.read() as s:
        vs = s.get(VehicleSession, session_id)
        if vs is None or not _walk_up(vs):
            return []
        return [replace(a, read_plate=vs.plate) for a in customer_lookalikes(s, vs.plate_normalized)]


def member_lookalike(db: Any, session_id: int) -> LookAlike | None:
    """The current member's car a walk-up session most likely is, asked about before a sale opens; None
    when there is none, or when a sale is open for the session already (it was asked when it opened)."""
    with db.read() as s:
        if _open_order(s, session_id) is not None:
            return None
    return next((a for a in session_lookalikes(db, session_id) if a.member), None)


def note_sell_anyway(db: Any, session_id: int, lookalike: LookAlike, actor: Actor) -> None:
    """The attendant checked the car and sells to it although its plate looks like a member's: audited."""
    with db.write() as s:
        audit.record(s, actor, "session.lookalike_sold_anyway", "vehicle_session", session_id,
                     after={"plate": lookalike.read_plate, "looks_like": lookalike.plate,
                            "customer_id": lookalike.customer_id, "vehicle_id": lookalike.vehicle_id})


def _open_order(s: Session, session_id: int) -> int | None:
    return s.exec(select(SalesOrder.id).where(SalesOrder.session_id == session_id,
                                              col(SalesOrder.state).in_(OPEN_ORDER_STATES))).first()


def correct_session_plate(db: Any, session_id: int, vehicle_id: int, actor: Actor) -> str:
    """The session was a misread of this vehicle: it becomes that car (plate, customer, membership).
    Whoever sees the car may do it (session.status). Audited. Returns the corrected plate."""
    require(actor, Permission.SESSION_STATUS)
    with db.write() as s:
        vs = s.exec(select(VehicleSession).where(VehicleSession.id == session_id).with_for_update()).first()
        if vs is None:
            raise PlateCorrectionRefused(f"Session {session_id} no longer exists: go back to the board.")
        vehicle = s.get(Vehicle, vehicle_id)
        if vehicle is None or vehicle.customer_id is None:
            raise PlateCorrectionRefused("That vehicle is no longer on file: check the plate on the car.")
        if vs.vehicle_id == vehicle.id:
            return vehicle.plate  # corrected already (a second tap, or another terminal)
        if not _walk_up(vs):
            raise PlateCorrectionRefused(f"{vs.plate} is already a customer's car: open their record to change it.")
        if _open_order(s, session_id) is not None:
            raise PlateCorrectionRefused(f"A sale is open for {vs.plate}: finish or cancel it before correcting "
                                         "the plate.")
        apply_correction(s, vs, vehicle, actor, "session.plate_corrected")
        return vehicle.plate


def apply_correction(s: Session, vs: VehicleSession, vehicle: Vehicle, actor: Actor, action: str) -> None:
    """In the caller's transaction: the session takes the vehicle's plate and customer (audited as `action`).

    Raises PlateCorrectionRefused when that car already has an open session (the board shows it)."""
    other = s.exec(select(VehicleSession, Lane.name).join(Lane, col(Lane.id) == VehicleSession.lane_id)
                   .where(VehicleSession.plate_normalized == vehicle.plate_normalized,
                          col(VehicleSession.status).in_(OPEN_SESSION_STATES), VehicleSession.id != vs.id)).first()
    if other is not None:
        raise PlateCorrectionRefused(f"{vehicle.plate} is already on the board in {other[1]}: serve the car there, "
                                     f"or mark one of the two done.")
    before = audit.snapshot(vs, _CORRECTED_FIELDS)
    vs.plate, vs.plate_normalized, vs.plate_region = vehicle.plate, vehicle.plate_normalized, vehicle.plate_region
    vs.customer_id, vs.vehicle_id, vs.legacy_member_id = vehicle.customer_id, vehicle.id, None
    vs.make, vs.model, vs.colour = vs.make or vehicle.make, vs.model or vehicle.model, vs.colour or vehicle.colour
    vs.version += 1
    s.add(vs)
    try:
        s.flush()  # the one-open-session-per-car index speaks here if the real plate was read meanwhile
    except IntegrityError as exc:
        raise PlateCorrectionRefused(f"{vehicle.plate} was just read on the board: serve the car there, or mark "
                                     "one of the two done.") from exc
    audit.record(s, actor, action, "vehicle_session", vs.id, before=before,
                 after=audit.snapshot(vs, _CORRECTED_FIELDS))


def garage_lookalike(s: Session, customer_id: int, plate: str) -> Vehicle | None:
    """The customer's own vehicle that this read is a camera misread of (same shape: O/0, I/1, B/8 ...),
    when no vehicle has the plate exactly. None: the plate is a car of its own."""
    read = normalize_plate(plate)
    if s.exec(select(Vehicle.id).where(Vehicle.plate_normalized == read)).first() is not None:
        return None
    cars = s.exec(select(Vehicle).where(Vehicle.customer_id == customer_id).order_by(col(Vehicle.id))).all()
    return next((v for v in cars if plate_match_score(read, v.plate_normalized) >= SAME_SHAPE), None)
