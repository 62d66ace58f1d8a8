""""Join today" (issue 18 item 4): the wash just paid comes off the membership's first charge, never below
zero; refusals; refunds of either order unwind the credit; two terminals cannot spend one wash twice.
On SQLite and PostgreSQL, with real charges and refunds on the simulated gateway."""

from __future__ import annotations

import queue
import time

import pytest
from sqlmodel import col, select

from clarity_tui.services.billing import BillingService
from clarity_tui.services.membership_actions import ActionRefused, MembershipActions
from clarity_tui.services.orders import SaleError, SaleService
from clarity_tui.services.upsell import UpsellRefused, credit_held, join_today
from db.engine import Database
from db.models import Outbox, SalesOrder, SimGatewayObject
from tests.helpers import forked
from tests.helpers.actors import MANAGER
from tests.helpers.clock import TODAY
from tests.helpers.lanes import Lanes
from tests.helpers.sale import EXCLUSIVE, sale_service, sign
from tests.helpers.upsell import paid_wash, race_process

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)


def succeeded_amounts(db: Database) -> list[int]:
    """Every successful payment on the simulated gateway, in order: the wash's, then the membership's."""
    with db.read() as s:
        rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")
                      .order_by(col(SimGatewayObject.created_at))).all()
        return [(r.data or {})["amount"] for r in rows if (r.data or {}).get("status") == "succeeded"]


def held(db: Database, wash_id: int) -> int:
    with db.read() as s:
        wash = s.get(SalesOrder, wash_id)
        assert wash is not None
        return credit_held(s, wash)


def load(db: Database, order_id: int) -> SalesOrder:
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        assert order is not None
        return order


def actions(db: Database) -> MembershipActions:
    from clarity_tui.payments.simulated import SimulatedGateway

    return MembershipActions(BillingService(db, SimulatedGateway(db)))


def sold_with_credit(lanes: Lanes, plan: str, wash_cents: int) -> tuple[SaleService, int, int]:
    """Ivana's wash paid, "Join today" on `plan`, signed and paid with her saved card: (service, wash, order)."""
    service = sale_service(lanes.db)
    wash_id = paid_wash(lanes.db, lanes.ivana, wash_cents)
    view = join_today(service, wash_id, session_id=lanes.ivana)
    service.choose_plan(view.id, plan)
    sign(service, view.id)
    assert service.pay(view.id).ok
    return service, wash_id, view.id


# --- amounts ---------------------------------------------------------------------------------------------


def test_credit_below_the_price_comes_off_the_first_charge_on_the_gateway(lanes: Lanes) -> None:
    service = sale_service(lanes.db)
    wash_id = paid_wash(lanes.db, lanes.ivana, 1500)
    view = join_today(service, wash_id, session_id=lanes.ivana)
    assert (view.credit_order_id, view.credit_cents, view.customer_id) == (wash_id, 1500, lanes.ivana_customer_id)
    view = service.choose_plan(view.id, "DELUXE")
    assert (view.due_today_cents, view.credit_cents, view.credit_note) == (1499, 1500, None)
    assert view.credit_line == "Today's wash credit  -$15.00"
    assert service.review(view.id).due_today_cents == 1499
    sign(service, view.id)
    assert service.pay(view.id).ok
    assert succeeded_amounts(lanes.db) == [1500, 1499]  # the wash, then the plan price less the wash
    order = load(lanes.db, view.id)
    assert (order.state, order.credit_order_id, order.credit_cents, order.due_today_cents) == (
        "completed", wash_id, 1500, 1499)
    assert held(lanes.db, wash_id) == 1500


def test_the_credit_comes_off_after_the_promotion_and_the_tax(lanes: Lanes) -> None:
    """Promotion first, then tax on what is left, then the wash (money already paid, tax and all)."""
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.actor import Actor

    service = SaleService(lanes.db, SimulatedGateway(lanes.db), Actor(name="attendant", terminal="lane-1-term"),
                          terminal="lane-1-term", today=lambda: TODAY, tax=EXCLUSIVE)
    view = join_today(service, paid_wash(lanes.db, lanes.ivana, 1500))
    service.choose_plan(view.id, "DELUXE")
    view = service.review(view.id)
    assert (view.subtotal_cents, view.tax_cents, view.due_today_cents) == (2999, 247, 1746)  # 3246 - 1500
    service.apply_promotion(view.id, "save20")
    view = service.review(view.id)
    assert (view.discount_cents, view.tax_cents, view.due_today_cents) == (600, 198, 1097)  # 2399 + 198 - 1500


def test_credit_equal_to_the_price_charges_nothing_and_still_saves_the_card(lanes: Lanes) -> None:
    _, wash_id, order_id = sold_with_credit(lanes, "BASIC", 1999)
    order = load(lanes.db, order_id)
    assert (order.due_today_cents, order.credit_cents, order.gateway_payment_id) == (0, 1999, None)
    assert succeeded_amounts(lanes.db) == [1999]  # the wash only
    with lanes.db.read() as s:
        steps = [(r.operation, r.status) for r in s.exec(select(Outbox).where(Outbox.order_id == order_id)
                                                         .order_by(col(Outbox.id)))]
    # The card is saved (a SetupIntent) for the renewals, and the subscription bills from next period.
    assert ("card.save", "done") in steps and ("subscription.create", "done") in steps
    assert not any(op == "payment.charge" for op, _ in steps)
    assert order.gateway_subscription_id and held(lanes.db, wash_id) == 1999


def test_credit_above_the_price_is_a_zero_charge_with_a_clear_message(lanes: Lanes) -> None:
    service = sale_service(lanes.db)
    wash_id = paid_wash(lanes.db, lanes.ivana, 2500)
    view = join_today(service, wash_id)
    view = service.choose_plan(view.id, "BASIC")
    assert (view.due_today_cents, view.credit_cents) == (0, 1999)  # never below zero
    assert view.credit_note is not None
    assert "first charge is $0.00" in view.credit_note and "$5.01" in view.credit_note
    sign(service, view.id)
    assert service.pay(view.id).ok
    assert held(lanes.db, wash_id) == 1999
    # The $5.01 the plan did not use stays refundable on the wash; the rest is held.
    with pytest.raises(ActionRefused, match=r"at most \$5\.01"):
        actions(lanes.db).refund(MANAGER, wash_id, 502)
    assert actions(lanes.db).refund(MANAGER, wash_id, 501).status == "done"


def test_a_credit_needs_a_saved_card_when_nothing_is_taken_on_the_reader(lanes: Lanes) -> None:
    from clarity_tui.services.card_present import mark_card_present

    service = sale_service(lanes.db)
    view = join_today(service, paid_wash(lanes.db, lanes.ivana, 2500))
    service.choose_plan(view.id, "BASIC")
    mark_card_present(lanes.db, view.id, service.actor)
    with pytest.raises(SaleError, match="read the card to save it"):
        service.review(view.id)


# --- refusals ----------------------------------------------------------------------------------------------


def test_refusals_say_what_happened(lanes: Lanes) -> None:
    db, service = lanes.db, sale_service(lanes.db)
    unpaid = paid_wash(db, lanes.unknown, state="payment_pending", charged=False)
    with pytest.raises(UpsellRefused, match="not paid yet"):
        join_today(service, unpaid)
    refunded = paid_wash(db, lanes.ivana)
    actions(db).refund(MANAGER, refunded)
    with pytest.raises(UpsellRefused, match="was refunded"):
        join_today(service, refunded)
    wash = paid_wash(db, lanes.ivana)
    with pytest.raises(UpsellRefused, match="another car's session"):
        join_today(service, wash, session_id=lanes.unknown)
    member_wash = paid_wash(db, lanes.member)
    with pytest.raises(UpsellRefused, match="already a member"):
        join_today(service, member_wash)
    with pytest.raises(UpsellRefused, match="not a single wash"):
        join_today(service, 999_999)
    with db.read() as s:  # nothing was opened by a refusal
        assert s.exec(select(SalesOrder).where(SalesOrder.kind == "sale")).all() == []


def test_only_sellers_join_today(lanes: Lanes) -> None:
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.services.permissions import PermissionDenied
    from tests.helpers.actors import SUPPORT, TECHNICIAN

    wash_id = paid_wash(lanes.db, lanes.ivana)
    for actor in (SUPPORT, TECHNICIAN):
        with pytest.raises(PermissionDenied):
            join_today(SaleService(lanes.db, SimulatedGateway(lanes.db), actor, terminal="ssh"), wash_id)
    assert held(lanes.db, wash_id) == 0


def test_a_wash_credits_one_membership_only(lanes: Lanes) -> None:
    _, wash_id, order_id = sold_with_credit(lanes, "DELUXE", 1500)
    with pytest.raises(UpsellRefused, match=f"already credited to membership order #{order_id}"):
        join_today(sale_service(lanes.db, "lane-2-term"), wash_id)
    # Joining twice on the same terminal before paying reuses the order: still one credit.
    service = sale_service(lanes.db)
    other = paid_wash(lanes.db, lanes.unknown, 1200)
    first = join_today(service, other)
    assert join_today(service, other).id == first.id
    assert held(lanes.db, other) == 1200


# --- refunds unwind the credit -----------------------------------------------------------------------------


def test_the_wash_refunds_only_what_the_membership_does_not_hold(lanes: Lanes) -> None:
    _, wash_id, order_id = sold_with_credit(lanes, "DELUXE", 1500)
    with pytest.raises(ActionRefused, match=f"credited to membership order #{order_id}") as info:
        actions(lanes.db).refund(MANAGER, wash_id)
    assert "at most $0.00" in str(info.value)
    # The membership refunded in full releases the credit: the wash can then be refunded in full.
    assert actions(lanes.db).refund(MANAGER, order_id).status == "done"
    assert held(lanes.db, wash_id) == 0
    assert actions(lanes.db).refund(MANAGER, wash_id).status == "done"
    assert (load(lanes.db, wash_id).refunded_cents, load(lanes.db, order_id).refunded_cents) == (1500, 1499)


def test_a_partial_membership_refund_keeps_the_credit(lanes: Lanes) -> None:
    _, wash_id, order_id = sold_with_credit(lanes, "DELUXE", 1500)
    actions(lanes.db).refund(MANAGER, order_id, 500)
    assert held(lanes.db, wash_id) == 1500
    with pytest.raises(ActionRefused, match="credited to membership order"):
        actions(lanes.db).refund(MANAGER, wash_id, 100)


@pytest.mark.parametrize("how", ["cancel", "decline_terms"])
def test_cancelling_the_membership_before_payment_releases_the_credit(lanes: Lanes, how: str) -> None:
    service = sale_service(lanes.db)
    wash_id = paid_wash(lanes.db, lanes.ivana, 1500)
    view = join_today(service, wash_id)
    service.choose_plan(view.id, "DELUXE")
    service.review(view.id)
    service.checkout(view.id)
    with pytest.raises(ActionRefused, match="credited to membership order"):
        actions(lanes.db).refund(MANAGER, wash_id)
    view = getattr(service, how)(view.id)
    assert (view.state, view.credit_order_id) == ("cancelled", None)  # only sold orders keep the link
    assert held(lanes.db, wash_id) == 0
    assert actions(lanes.db).refund(MANAGER, wash_id).status == "done"


# --- two terminals at once, in real processes --------------------------------------------------------------


def race(db: Database, wash_id: int, steps: list[tuple[str, str]]) -> dict[str, tuple[str, object]]:
    """Each (terminal, "join" | "refund") in its own process, started together; their outcomes by terminal."""
    ctx = forked.context()
    results, barrier = ctx.Queue(), ctx.Barrier(len(steps))
    procs = [ctx.Process(target=race_process, args=(db.url, what, wash_id, terminal, barrier, results))
             for terminal, what in steps]
    for p in procs:
        p.start()
    got: dict[str, tuple[str, object]] = {}
    deadline = time.monotonic() + 120
    while len(got) < len(procs):
        try:
            terminal, outcome, detail = results.get(timeout=0.5)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a terminal process died (exit codes {dead})"
            assert time.monotonic() < deadline, "the terminals did not finish"
            continue
        assert outcome != "error", f"{terminal} failed:\n{detail}"
        got[terminal] = (outcome, detail)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return got


def test_two_terminals_joining_with_the_same_wash_make_one_credit(lanes: Lanes) -> None:
    wash_id = paid_wash(lanes.db, lanes.ivana, 1500)
    got = race(lanes.db, wash_id, [("lane-1-term", "join"), ("lane-2-term", "join")])
    assert sorted(outcome for outcome, _ in got.values()) == ["joined", "refused"], got
    with lanes.db.read() as s:
        holders = s.exec(select(SalesOrder).where(SalesOrder.credit_order_id == wash_id)).all()
    assert [(o.credit_cents, o.state) for o in holders] == [(1500, "draft")]
    assert held(lanes.db, wash_id) == 1500


def test_a_join_and_a_refund_of_the_same_wash_at_once_never_both_win(lanes: Lanes) -> None:
    wash_id = paid_wash(lanes.db, lanes.ivana, 1500)
    got = race(lanes.db, wash_id, [("lane-1-term", "join"), ("office-term", "refund")])
    outcomes = {terminal: outcome for terminal, (outcome, _) in got.items()}
    assert outcomes in ({"lane-1-term": "joined", "office-term": "refused"},
                        {"lane-1-term": "refused", "office-term": "refunded"}), got
    wash = load(lanes.db, wash_id)
    assert (wash.refunded_cents, held(lanes.db, wash_id)) in ((0, 1500), (1500, 0))
