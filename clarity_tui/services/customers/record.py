"""Reading the customer record: every tab's rows in one read, and the question prompts of a new record."""

from __future__ import annotations

from sqlmodel import Session, col, or_, select

from clarity_tui.services.customers.base import CustomerServiceBase, customer_gone, saved_id
from clarity_tui.services.customers.views import (
    CustomerRecord,
    MembershipInfo,
    NoteView,
    RelatedView,
    TouchpointView,
    WebLoginView,
)
from clarity_tui.services.identity import display_name
from clarity_tui.services.membership_rules import current_rank
from db.models import (
    AccountBenefit,
    Customer,
    CustomerRelationship,
    Membership,
    MembershipVehicle,
    Note,
    Operator,
    PaymentMethod,
    Plan,
    QuestionPrompt,
    Touchpoint,
    Vehicle,
    WebLogin,
)

class RecordReads(CustomerServiceBase):
    def find_by_number(self, number: str) -> Customer | None:
        with self.db.read() as s:
            return s.exec(select(Customer).where(Customer.customer_number == number.strip().upper())).first()

    def record(self, customer_id: int) -> CustomerRecord:
        with self.db.read() as s:
            c = s.get(Customer, customer_id)
            if c is None:
                raise customer_gone(customer_id)
            operators = {saved_id(o): o.name for o in s.exec(select(Operator).order_by(col(Operator.name)))}

            def operator_name(operator_id: int | None) -> str:
                return operators.get(operator_id, "") if operator_id else ""

            return CustomerRecord(
                customer=c,
                related=self._related(s, customer_id),
                memberships=self._memberships(s, customer_id),
                web_login=self._web_login(s, customer_id),
                touchpoints=[
                    TouchpointView(saved_id(t), t.title, t.due_on, t.assignee_operator_id,
                                   operator_name(t.assignee_operator_id), t.done)
                    for t in s.exec(select(Touchpoint).where(Touchpoint.customer_id == customer_id)
                                    .order_by(col(Touchpoint.done), col(Touchpoint.due_on), col(Touchpoint.id)))
                ],
                benefits=list(s.exec(select(AccountBenefit).where(AccountBenefit.customer_id == customer_id)
                                     .order_by(col(AccountBenefit.id)))),
                notes=[
                    NoteView(saved_id(n), n.body, n.operator_notice, operator_name(n.author_operator_id),
                             n.created_at, n.updated_at)
                    for n in s.exec(select(Note).where(Note.customer_id == customer_id).order_by(col(Note.id)))
                ],
                prompts=self._prompts(s),
                operators=list(operators.items()),
                plans=[(p.code, p.name, p.tier) for p in s.exec(
                    select(Plan).where(col(Plan.active).is_(True)).order_by(col(Plan.tier), col(Plan.price_cents)))],
                cards=list(s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id,
                                                              col(PaymentMethod.detached_at).is_(None))
                                  .order_by(col(PaymentMethod.id)))),
            )

    def prompts(self) -> list[QuestionPrompt]:
        with self.db.read() as s:
            return self._prompts(s)

    @staticmethod
    def _prompts(s: Session) -> list[QuestionPrompt]:
        return list(s.exec(select(QuestionPrompt).where(col(QuestionPrompt.active).is_(True))
                           .order_by(col(QuestionPrompt.position))))

    def _related(self, s: Session, customer_id: int) -> list[RelatedView]:
        rows = s.exec(select(CustomerRelationship).where(or_(
            col(CustomerRelationship.customer_id) == customer_id,
            col(CustomerRelationship.related_customer_id) == customer_id,
        )).order_by(col(CustomerRelationship.id))).all()
        other_ids = {r.related_customer_id if r.customer_id == customer_id else r.customer_id for r in rows}
        others = {saved_id(c): c for c in s.exec(select(Customer).where(col(Customer.id).in_(other_ids)))} \
            if other_ids else {}
        out = []
        for r in rows:
            outgoing = r.customer_id == customer_id
            other = others[r.related_customer_id if outgoing else r.customer_id]
            out.append(RelatedView(saved_id(r), r.kind, saved_id(other), other.customer_number,
                                   display_name(other.first_name, other.last_name), outgoing))
        return out

    def _memberships(self, s: Session, customer_id: int) -> list[MembershipInfo]:
        from clarity_tui.services.membership_actions import effective_plan_id
        from clarity_tui.services.plan_changes import scheduled_note
        from clarity_tui.services.plan_pricing import vehicle_limit

        out = []
        rows = s.exec(select(Membership, Plan).join(Plan, col(Plan.id) == Membership.plan_id)
                      .where(Membership.customer_id == customer_id).order_by(col(Membership.id))).all()
        for m, plan in rows:
            vehicles = s.exec(select(Vehicle).join(MembershipVehicle, col(MembershipVehicle.vehicle_id) == Vehicle.id)
                              .where(MembershipVehicle.membership_id == m.id).order_by(col(Vehicle.id))).all()
            # A downgrade whose date has passed shows as done, before the billing sync applies it.
            plan = s.get(Plan, effective_plan_id(m, self.today())) or plan
            scheduled = s.get(Plan, m.scheduled_plan_id) if m.scheduled_plan_id and plan.id != m.scheduled_plan_id \
                else None
            out.append(MembershipInfo(
                saved_id(m), plan.code, plan.name, plan.tier, m.status, m.started_on, m.expires_on, m.next_billing_on,
                m.cancel_at_period_end, m.pending_sync, m.version, m.gateway_subscription_id,
                tuple(" ".join(x for x in (v.plate, v.colour, v.make, v.model) if x) for v in vehicles),
                tuple(plan.benefits or ()), plan.max_vehicles,
                scheduled_note(scheduled.name, m.scheduled_plan_on) if scheduled else None, vehicle_limit(plan),
            ))
        return sorted(out, key=lambda m: (current_rank(m.status), -m.id))  # current memberships first

    def _web_login(self, s: Session, customer_id: int) -> WebLoginView | None:
        w = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
        if w is None:
            return None
        return WebLoginView(saved_id(w), w.username, bool(w.password_hash), w.must_change_password, w.reset_sent_at)
