"""A lane's day written as rows: washes, refusals, membership sales, renewals, ends and commissions, each at a
given instant, for the figures of clarity_tui/services/lane_metrics.py (no service runs: the rows are the input)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from sqlmodel import col, select

from db.engine import Database
from db.models import Customer, Lane, Membership, Operator, OrderKind, OrderState, Plan, SalesOrder, Vehicle, VehicleSession
from db.models.wash import Commission, CommissionEntry, VisitRefusal, Wash
from db.models_billing import MembershipPayment
from db.states import SessionStatus


class LaneDay:
    """Writes one row (and what it needs: a plan, a customer, a car, a session) per call."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._n = itertools.count(1)
        with db.write() as s:
            lane_id = s.exec(select(Lane.id).order_by(col(Lane.id))).first()
            assert lane_id is not None
            self.lane_id: int = lane_id
            plan = s.exec(select(Plan).where(Plan.code == "METRICS")).first()
            if plan is None:
                plan = Plan(code="METRICS", name="Metrics Club", price_cents=2999)
                s.add(plan)
                s.flush()
            assert plan.id is not None
            self.plan_id: int = plan.id
            customer = Customer(customer_number=f"M{uuid.uuid4().hex[:8]}", first_name="Mia", last_name="Metric")
            s.add(customer)
            s.flush()
            assert customer.id is not None
            self.customer_id: int = customer.id
        self.operators: dict[str, int] = {}

    def operator(self, name: str) -> int:
        if name not in self.operators:
            with self.db.write() as s:
                op = Operator(name=name, role="attendant", pin_hash="x")
                s.add(op)
                s.flush()
                assert op.id is not None
                self.operators[name] = op.id
        return self.operators[name]

    def _car(self, s, at: dt.datetime) -> tuple[int, int]:
        plate = f"MT{next(self._n):05d}"
        car = Vehicle(customer_id=self.customer_id, plate=plate, plate_normalized=plate)
        s.add(car)
        s.flush()
        session = VehicleSession(lane_id=self.lane_id, plate=plate, plate_normalized=plate, arrived_at=at,
                                 status=SessionStatus.DONE, vehicle_id=car.id, closed_at=at)
        s.add(session)
        s.flush()
        assert car.id is not None and session.id is not None
        return car.id, session.id

    def wash(self, kind: str, at: dt.datetime) -> None:
        with self.db.write() as s:
            car, session = self._car(s, at)
            s.add(Wash(session_id=session, kind=kind, plate="MT", vehicle_id=car, lane_id=self.lane_id, at=at))

    def refusal(self, at: dt.datetime, membership: int) -> None:
        with self.db.write() as s:
            car, session = self._car(s, at)
            s.add(VisitRefusal(session_id=session, vehicle_id=car, membership_id=membership, at=at))

    def sale(self, at: dt.datetime, operator: str | None = None, *, kind: str = OrderKind.SALE,
             state: str = OrderState.COMPLETED, credit_cents: int = 0, membership_id: int | None = None) -> int:
        """A membership order finished at `at`; with credit_cents, it credits a single wash paid just before."""
        operator_id = self.operator(operator) if operator else None
        with self.db.write() as s:
            credit_order = None
            if credit_cents:
                wash_order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=OrderKind.WASH, state=OrderState.COMPLETED,
                                        due_today_cents=credit_cents, completed_at=at, updated_at=at)
                s.add(wash_order)
                s.flush()
                credit_order = wash_order.id
            order = SalesOrder(idempotency_key=uuid.uuid4().hex, kind=kind, state=state, plan_id=self.plan_id,
                               customer_id=self.customer_id, terminal="lane-1-term", membership_id=membership_id,
                               operator_id=operator_id,
                               credit_order_id=credit_order, credit_cents=credit_cents,
                               completed_at=at if state == OrderState.COMPLETED else None, updated_at=at)
            s.add(order)
            s.flush()
            assert order.id is not None
            return order.id

    def commission(self, operator: str, cents: int, at: dt.datetime, order_id: int,
                   entry: str = CommissionEntry.EARNED) -> None:
        operator_id = self.operator(operator)
        with self.db.write() as s:
            s.add(Commission(order_id=order_id, operator_id=operator_id, kind="sale", entry=entry,
                             amount_cents=cents, at=at))

    def membership(self, started_on: dt.date, status: str = "active", *, expires_on: dt.date | None = None,
                   updated_at: dt.datetime | None = None) -> int:
        with self.db.write() as s:
            m = Membership(customer_id=self.customer_id, plan_id=self.plan_id, status=status, started_on=started_on,
                           expires_on=expires_on)
            if updated_at is not None:
                m.updated_at = updated_at
            s.add(m)
            s.flush()
            assert m.id is not None
            return m.id

    def payment(self, kind: str, at: dt.datetime, membership_id: int | None = None, invoice: str | None = None) -> None:
        with self.db.write() as s:
            key = f"{invoice or uuid.uuid4().hex}#{next(self._n)}"
            s.add(MembershipPayment(membership_id=membership_id, kind=kind, gateway_object_id=key,
                                    invoice_id=invoice, amount_cents=2999, occurred_at=at))
