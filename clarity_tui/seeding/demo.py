"""The demo site for simulator mode: plans, the wash menu, ~200 customers, ~100 legacy members, terms,
operators.

Idempotent: if the demo data is there, nothing is added.

With `gateway=True` (simulator mode: `./dev demo`), the demo's memberships are real subscriptions at the
simulated gateway (issue 13); without it they stay local only, as before. Each member gets a simulated customer, their saved card (most approve; about one in
twelve declines when charged, so renewals fail), and a subscription trialing until the membership's next
billing date, spread over the coming month, so `payments clock advance` renews them day by day.
Past-due members have an open invoice whose renewal failed and is being retried; paused ones have
pause_collection (some with a date it ends); cancelled ones a cancelled subscription; a member with no
card ends their trial paused (Stripe's missing_payment_method = pause). The gateway ids go on our rows
(Customer.gateway_customer_id, the card's token, Membership.gateway_subscription_id, the plans' ids) and
`paid_through` is the next billing date (past due: the unpaid period's start). The simulated world is
written straight into the simulator's own store (sim_seed), with its own random stream, so the rest of
the demo data is the same with or without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlmodel import Session, col, func, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin
from clarity_tui.services.identity import customer_search_keys, display_name
from clarity_tui.services.membership_rules import CURRENT_STATUSES
from clarity_tui.services.plates import normalize_plate
from db.engine import Database
from db.models import (
    Customer,
    LegacyMember,
    LegacyMemberPlate,
    Membership,
    MembershipSource,
    MembershipStatus,
    MembershipVehicle,
    Operator,
    PaymentMethod,
    Plan,
    PlanWashItem,
    Promotion,
    PromotionKind,
    QuestionPrompt,
    Role,
    TermsVersion,
    Vehicle,
    VehicleClaim,
    WashItem,
    utcnow,
)

FIRST_NAMES = [
    "Ivana", "James", "Maria", "Robert", "Zoë", "Sean", "Aisha", "Wei", "Carlos", "Emily", "Noah", "Olivia",
    "Liam", "Sofia", "Mateo", "Chloé", "Lucas", "Amara", "Hiro", "Fatima", "Dmitri", "Grace", "Owen", "Priya",
    "Jack", "Harper", "Leo", "Isla", "Ethan", "Nora", "Diego", "Mia", "Kofi", "Elena", "Samuel", "Ava",
]
LAST_NAMES = [
    "Zoom", "Smith", "Garcia", "Johnson", "O'Brien", "Nguyen", "Patel", "Müller", "Kim", "Rossi", "Brown",
    "Martinez", "Lee", "Walker", "Hall", "Young", "Allen", "King", "Wright", "Lopez", "Hill", "Scott",
    "Green-Adams", "Baker", "Nelson", "Carter", "Mitchell", "Pérez", "Roberts", "Turner", "Phillips", "Evans",
]
VEHICLES = [
    ("Toyota", "Camry"), ("Honda", "Civic"), ("Ford", "F-150"), ("Tesla", "Model 3"), ("Chevrolet", "Silverado"),
    ("Nissan", "Altima"), ("Jeep", "Wrangler"), ("Subaru", "Outback"), ("BMW", "X5"), ("Hyundai", "Elantra"),
    ("Kia", "Sorento"), ("Ram", "1500"), ("Mazda", "CX-5"), ("Audi", "A4"), ("Volkswagen", "Jetta"),
]
COLOURS = ["White", "Black", "Silver", "Grey", "Blue", "Red", "Green", "Beige", "Brown"]
DEMO_VEHICLE_LIMIT = 5  # the family plan: 3 included, up to 5 with extras
PLAN_SPECS = [
    # code, name, tier, price, benefits, max_vehicles, extra vehicle price
    ("BASIC", "Basic Wash Club", 1, 1999, ["Exterior wash", "Spot-free rinse", "Free vacuums"], 1, 0),
    ("DELUXE", "Deluxe Wash Club", 2, 2999, ["Everything in Basic", "Underbody flush", "Triple foam", "Tire shine"], 1, 0),
    ("ULTIMATE", "Ultimate Wash Club", 3, 3999, ["Everything in Deluxe", "Ceramic seal", "Rain repellent", "Priority lane"], 1, 0),
    ("FAMILY", "Family Ultimate", 3, 5999, ["Everything in Ultimate", "For the whole family"], 3, 1500),
]
# The wash menu (issue 18): code, name, kind, price, tunnel code (a package's number, an extra's bit), and
# the plans that include it (Basic's wash in every plan; the top plans include every extra).
MENU_SPECS = [
    ("BASIC", "Basic wash", "package", 1000, 1, ("BASIC", "DELUXE", "ULTIMATE", "FAMILY")),
    ("DELUXE", "Deluxe wash", "package", 1500, 2, ("DELUXE", "ULTIMATE", "FAMILY")),
    ("ULTIMATE", "Ultimate wash", "package", 2000, 3, ("ULTIMATE", "FAMILY")),
    ("TIRE_SHINE", "Tire shine", "extra", 300, 0, ("DELUXE", "ULTIMATE", "FAMILY")),
    ("CERAMIC", "Ceramic seal", "extra", 500, 1, ("ULTIMATE", "FAMILY")),
    ("UNDERBODY", "Underbody flush", "extra", 400, 2, ("DELUXE", "ULTIMATE", "FAMILY")),
]
OPERATORS = [("Alex Attendant", Role.ATTENDANT, "123456"), ("Morgan Manager", Role.MANAGER, "654321"),
             ("Taylor Tech", Role.TECHNICIAN, "111111"), ("Sam Support", Role.SUPPORT, "999999")]
QUESTIONS = [
    ("heard_from", "How did you hear about us?", ["Drove by", "Friend", "Social media", "Radio", "Other"]),
    ("washes_per_month", "How often do you wash your car?", ["Weekly", "Twice a month", "Monthly", "Rarely"]),
]


def _pk(row: Any) -> int:
    """A row's id once it is flushed (SQLModel types it Optional until then)."""
    assert row.id is not None, "flush the row before using its id"
    return int(row.id)


def terms_text() -> str:
    return resources.files("clarity_tui.data").joinpath("terms.txt").read_text(encoding="utf-8")


def random_plate(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(rng.choice(letters) for _ in range(3)) + "-" + "".join(rng.choice("0123456789") for _ in range(4))


def random_phone(rng: random.Random) -> str:
    # 555-01xx is reserved for fiction; phonenumbers rejects it, so use real-looking area codes.
    area = rng.choice(["512", "737", "214", "469", "713", "832", "210", "817"])
    return f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"


@dataclass
class DemoSummary:
    created: bool
    customers: int
    legacy_members: int
    plans: int


def ensure_reference_data(s: Session) -> dict[str, Plan]:
    """Plans, promotions, question prompts, terms and operators (idempotent)."""
    plans = {p.code: p for p in s.exec(select(Plan))}
    for code, name, tier, price, benefits, max_vehicles, extra in PLAN_SPECS:
        if code not in plans:
            plan = Plan(code=code, name=name, tier=tier, price_cents=price, benefits=benefits, max_vehicles=max_vehicles,
                        extra_vehicle_price_cents=extra, vehicle_limit=DEMO_VEHICLE_LIMIT if extra else None)
            s.add(plan)
            plans[code] = plan
    if s.exec(select(func.count()).select_from(Promotion)).one() == 0:
        now = utcnow()
        s.add_all([
            Promotion(code="FIRSTMONTH", kind=PromotionKind.AMOUNT_OFF, value=1000, description="$10 off the first month"),
            Promotion(code="SAVE20", kind=PromotionKind.PERCENT_OFF, value=20, description="20% off"),
            Promotion(code="SUMMER25", kind=PromotionKind.PERCENT_OFF, value=25, description="Summer 25% off", expires_at=now - dt.timedelta(days=60)),
            Promotion(code="LAUNCH50", kind=PromotionKind.PERCENT_OFF, value=50, description="Launch day", max_redemptions=100, times_redeemed=100),
            Promotion(code="ULTIMATE10", kind=PromotionKind.AMOUNT_OFF, value=1000, description="$10 off Ultimate", plan_codes=["ULTIMATE", "FAMILY"]),
        ])
    if s.exec(select(func.count()).select_from(QuestionPrompt)).one() == 0:
        for position, (key, text, choices) in enumerate(QUESTIONS):
            s.add(QuestionPrompt(key=key, text=text, choices=choices, position=position))
    text = terms_text()
    sha = hashlib.sha256(text.encode()).hexdigest()
    if s.exec(select(TermsVersion).where(TermsVersion.sha256 == sha)).first() is None:
        s.add(TermsVersion(label="2026-01", text=text, sha256=sha))
    if s.exec(select(func.count()).select_from(Operator)).one() == 0:
        for name, role, pin in OPERATORS:
            s.add(Operator(name=name, role=role, pin_hash=hash_pin(pin)))
    s.flush()
    ensure_wash_menu(s, plans)
    return plans


def ensure_wash_menu(s: Session, plans: dict[str, Plan]) -> None:
    """The demo's wash menu, when the site has none (a menu set by a manager or the settings is kept)."""
    if s.exec(select(func.count()).select_from(WashItem)).one() > 0:
        return
    for position, (code, name, kind, price, tunnel_code, plan_codes) in enumerate(MENU_SPECS):
        item = WashItem(code=code, name=name, kind=kind, price_cents=price, tunnel_code=tunnel_code, position=position)
        s.add(item)
        s.flush()
        s.add_all(PlanWashItem(plan_id=_pk(plans[p]), item_id=_pk(item)) for p in plan_codes if p in plans)
    s.flush()


def _seed_gateway(s: Session, members: list[tuple[Customer, Membership, PaymentMethod | None]],
                  plans: dict[str, Plan], today: dt.date, seed: int) -> None:
    """The members' customers, cards and subscriptions at the simulated gateway (see the module docstring)."""
    from clarity_tui.payments.sim_seed import SimSeeder
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.plan_pricing import plan_spec
    from db.models import SimGatewayObject

    rng = random.Random(f"{seed}:gateway")
    seeder = SimSeeder(dt.datetime.now(dt.UTC))
    prices: dict[int, str] = {}
    ids = {p.code: SimulatedGateway.catalogue_ids(plan_spec(p)) for p in plans.values()}
    existing = set(s.exec(select(SimGatewayObject.id).where(col(SimGatewayObject.id).in_(
        [x for c in ids.values() for x in (c.product_id, c.price_id, c.extra_price_id) if x]))).all())
    for code, plan in plans.items():
        cat = ids[code]
        seeder.catalogue(plan_spec(plan), cat.product_id, cat.price_id, cat.extra_price_id, existing)
        plan.gateway_product_id = plan.gateway_product_id or cat.product_id
        plan.gateway_price_id = plan.gateway_price_id or cat.price_id
        prices[_pk(plan)] = cat.price_id
        s.add(plan)
    for c, m, card in members:
        key = c.customer_number.lower()
        cus_id, sub_id = f"cus_sim_demo_{key}", f"sub_sim_demo_{key}"
        outcome = "charge_decline" if rng.random() < 0.08 else "ok"
        if card is None:  # a membership is always sold with a card on file: renewals need one
            card = PaymentMethod(customer_id=_pk(c), gateway="simulated", gateway_token=f"pm_sim_demo_{key}",
                                 brand="Visa", last4=f"{rng.randint(0, 9999):04d}", exp_month=rng.randint(1, 12),
                                 exp_year=today.year + rng.randint(1, 4), is_default=True)
            s.add(card)
        seeder.customer(cus_id, c.customer_number, display_name(c.first_name, c.last_name), c.email, c.phone_e164,
                        card.gateway_token if card else None)
        if card is not None:
            seeder.card(card.gateway_token, cus_id, card.brand, card.last4, card.exp_month, card.exp_year, outcome)
        meta = {"clarity_membership": str(m.id), "demo": "1"}
        price = prices[m.plan_id]
        m.paid_through, m.gateway_status = m.next_billing_on, "trialing"
        if m.status == MembershipStatus.PAST_DUE:
            failed_on = today - dt.timedelta(days=rng.randint(1, 12))
            m.next_billing_on = seeder.past_due(
                sub_id, f"in_sim_demo_{key}", cus_id, price, failed_on, metadata=meta,
                card=card.gateway_token if card else None,
                decline="generic_decline" if outcome == "charge_decline" else "insufficient_funds")
            m.paid_through, m.gateway_status = failed_on, "past_due"
        elif m.status == MembershipStatus.CANCELLED:
            ended = today - dt.timedelta(days=rng.randint(1, 60))
            seeder.canceled(sub_id, cus_id, price, ended, metadata=meta)
            m.paid_through, m.gateway_status = ended, "canceled"
        else:
            resumes = (today + dt.timedelta(days=rng.randint(5, 40))
                       if m.status == MembershipStatus.PAUSED and rng.random() < 0.5 else None)
            assert m.next_billing_on is not None, "seed_demo gives every membership its next billing date"
            seeder.subscription(sub_id, cus_id, price, m.next_billing_on, metadata=meta,
                                paused=m.status == MembershipStatus.PAUSED, pause_resumes=resumes,
                                missing_payment_method="pause" if card is None else None)
            m.resumes_on = resumes
        c.gateway_customer_id = cus_id
        m.gateway_subscription_id = sub_id
        s.add(c)
        s.add(m)
    s.add_all(seeder.rows)


def seed_demo(db: Database, customers: int = 200, legacy: int = 100, seed: int = 7, *,
              gateway: bool = False) -> DemoSummary:
    """The demo site; with `gateway` (simulator mode), its memberships are subscriptions at the simulated
    gateway. Off by default: tests that seed a demo site count the gateway's objects from nothing."""
    rng = random.Random(seed)
    actor = Actor.system("demo-seed")
    with db.write() as s:
        plans = ensure_reference_data(s)
        existing = s.exec(select(func.count()).select_from(Customer)).one()
        if existing >= customers:
            return DemoSummary(False, existing, s.exec(select(func.count()).select_from(LegacyMember)).one(), len(plans))
        today = dt.date.today()
        used_plates: set[str] = set(s.exec(select(Vehicle.plate_normalized)).all())

        def fresh_plate() -> str:
            while True:
                plate = random_plate(rng)
                if normalize_plate(plate) not in used_plates:
                    used_plates.add(normalize_plate(plate))
                    return plate

        plan_list = list(plans.values())
        members: list[tuple[Customer, Membership, PaymentMethod | None]] = []
        for i in range(existing, customers):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            if i == 0:
                first, last = "Ivana", "Zoom"  # the seed article's customer
            phone = random_phone(rng)
            email = f"{first}.{last}{i}@example.com".lower().replace("'", "").replace("ë", "e").replace("ü", "u").replace("é", "e")
            search_keys: dict[str, Any] = customer_search_keys(first, last, email, phone)
            c = Customer(customer_number=f"C{100000 + i}", first_name=first, last_name=last, phone_e164=phone, email=email,
                         city="Austin", region="TX", country="US", **search_keys)
            s.add(c)
            s.flush()
            vehicles = []
            for _ in range(1 if rng.random() < 0.85 else 2):
                make, model = rng.choice(VEHICLES)
                plate = fresh_plate()
                v = Vehicle(customer_id=c.id, plate=plate, plate_region="US-TX", plate_normalized=normalize_plate(plate),
                            make=make, model=model, colour=rng.choice(COLOURS), year=rng.randint(2008, 2026))
                s.add(v)
                vehicles.append(v)
            s.flush()
            card = None
            if rng.random() < 0.75 or i == 0:
                brand, last4 = rng.choice([("Visa", "4242"), ("Mastercard", "4444"), ("Amex", "8431"), ("Visa", "1881")])
                card = PaymentMethod(customer_id=_pk(c), gateway="simulated", gateway_token=f"pm_sim_demo_{i}", brand=brand,
                                     last4=last4, exp_month=rng.randint(1, 12), exp_year=today.year + rng.randint(1, 4),
                                     is_default=True)
                s.add(card)
            roll = rng.random()
            if i != 0 and roll < 0.6:
                status = MembershipStatus.ACTIVE if roll < 0.5 else rng.choice([MembershipStatus.PAST_DUE, MembershipStatus.PAUSED, MembershipStatus.CANCELLED])
                plan = rng.choice(plan_list)
                start = today - dt.timedelta(days=rng.randint(30, 900))
                m = Membership(customer_id=_pk(c), plan_id=_pk(plan), status=status, source=MembershipSource.SALE, started_on=start,
                               next_billing_on=today + dt.timedelta(days=rng.randint(1, 30)))
                s.add(m)
                s.flush()
                members.append((c, m, card))
                for v in vehicles[: plan.max_vehicles]:
                    s.add(MembershipVehicle(membership_id=_pk(m), vehicle_id=_pk(v)))
                    if status in CURRENT_STATUSES:  # the car is this member's: no other sale may take it
                        s.add(VehicleClaim(vehicle_id=_pk(v), membership_id=m.id, holder=display_name(c.first_name, c.last_name)))
        if gateway and members:
            _seed_gateway(s, members, plans, today, seed)
        legacy_existing = s.exec(select(func.count()).select_from(LegacyMember)).one()
        for j in range(legacy_existing, legacy):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            plan_name = rng.choice(["Basic Club", "Deluxe Club", "Ultimate Club"])
            plan_code = {"Basic Club": "BASIC", "Deluxe Club": "DELUXE", "Ultimate Club": "ULTIMATE"}[plan_name]
            plate = fresh_plate()
            make, model = rng.choice(VEHICLES)
            phone = random_phone(rng)
            lm = LegacyMember(source_system="sitewatch", legacy_id=f"SW{50000 + j}", first_name=first, last_name=last,
                              phone_e164=phone, vehicle_desc=f"{rng.choice(COLOURS)} {make} {model}", plan_name=plan_name,
                              plan_id=plans[plan_code].id, status="active", next_bill_on=today + dt.timedelta(days=rng.randint(2, 28)),
                              joined_on=today - dt.timedelta(days=rng.randint(100, 2000)),
                              raw={"plate": plate, "plan": plan_name})
            s.add(lm)
            s.flush()
            s.add(LegacyMemberPlate(legacy_member_id=_pk(lm), plate_raw=plate, plate_normalized=normalize_plate(plate)))
        audit.record(s, actor, "demo.seeded", "site", None, after={"customers": customers, "legacy": legacy})
        return DemoSummary(True, customers, legacy, len(plans))
