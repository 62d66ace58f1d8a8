"""What the customer record shows: the typed views the service returns and the screens display."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from clarity_tui.services.identity import display_name, display_phone
from db.models import AccountBenefit, Customer, PaymentMethod, QuestionPrompt, RelationshipKind

RELATIONSHIP_LABELS = {
    RelationshipKind.HOUSEHOLD: "Household",
    RelationshipKind.BUSINESS: "Business",
    RelationshipKind.CONTACT: "Contact",
    RelationshipKind.SOLD_FOR: "Sold for",
}
BENEFIT_TYPES = ["Free wash", "Wash upgrade", "Vacuum token", "Gift credit", "Courtesy rewash"]


@dataclass
class ContactForm:
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    email: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    answers: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, c: Customer, phone_region: str = "US") -> ContactForm:
        return cls(c.first_name, c.last_name, display_phone(c.phone_e164, phone_region), c.email or "", c.address_line1 or "",
                   c.address_line2 or "", c.city or "", c.region or "", c.postal_code or "", c.country or "",
                   dict(c.question_answers or {}))


@dataclass(frozen=True)
class RelatedView:
    relationship_id: int
    kind: str
    other_id: int
    other_number: str
    other_name: str
    # True when this record is the one the relationship was added on ("Mrs is household of Mr").
    outgoing: bool

    @property
    def label(self) -> str:
        return RELATIONSHIP_LABELS.get(RelationshipKind(self.kind), self.kind)


@dataclass(frozen=True)
class MembershipInfo:
    id: int
    plan_code: str
    plan_name: str
    tier: int
    status: str
    started_on: dt.date
    expires_on: dt.date | None
    next_billing_on: dt.date | None
    cancel_at_period_end: bool
    pending_sync: bool
    version: int
    gateway_subscription_id: str | None
    vehicles: tuple[str, ...]
    benefits: tuple[str, ...]
    max_vehicles: int
    # A downgrade waiting for the next billing date: "changes to Basic Wash Club on 2026-12-14".
    scheduled_change: str | None = None
    vehicle_limit: int = 1


@dataclass(frozen=True)
class WebLoginView:
    id: int
    username: str
    has_password: bool
    must_change_password: bool
    reset_sent_at: dt.datetime | None


@dataclass(frozen=True)
class TouchpointView:
    id: int
    title: str
    due_on: dt.date | None
    assignee_id: int | None
    assignee_name: str
    done: bool


@dataclass(frozen=True)
class NoteView:
    id: int
    body: str
    operator_notice: bool
    author: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass
class CustomerRecord:
    customer: Customer
    related: list[RelatedView]
    memberships: list[MembershipInfo]
    web_login: WebLoginView | None
    touchpoints: list[TouchpointView]
    benefits: list[AccountBenefit]
    notes: list[NoteView]
    prompts: list[QuestionPrompt]
    operators: list[tuple[int, str]]
    plans: list[tuple[str, str, int]]
    cards: list[PaymentMethod]

    @property
    def notices(self) -> list[NoteView]:
        return [n for n in self.notes if n.operator_notice]

    @property
    def name(self) -> str:
        return display_name(self.customer.first_name, self.customer.last_name)
