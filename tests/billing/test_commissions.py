"""Operators' commissions (issue 18 item 6), on SQLite and PostgreSQL: earned when a membership order completes
(sale, migration, upgrade), credited to the operator who took it, at the manager's rate or the settings', once
per order however often completion is replayed, and taken back by a refund inside the clawback window."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, update
from sqlmodel import col, select

from clarity_tui.config import CommissionConfig
from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.services.actor import Actor
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.services.commissions import (
    CommissionRates,
    CommissionRefused,
    claw_back,
    earn,
    rate_for,
    reverse,
)
from clarity_tui.services.customers import CustomerService
from clarity_tui.services.migration import MigrationService
from clarity_tui.services.permissions import PermissionDenied
from db.models import AuditLog, Commission, Membership, Plan, SalesOrder, utcnow
from tests.helpers.actors import ATTENDANT, MANAGER
from tests.helpers.clock import TODAY
from tests.helpers.commissions import operator, race, refund, rows, sell, seller
from tests.helpers.lanes import Lanes, Legacy
from tests.helpers.migration import to_signed
from tests.helpers.sale import sign

pytestmark = pytest.mark.both_databases  # money rows, unique constraints and races: both databases


def plan(db, code: str) -> Plan:
    with db.read() as s:
        return s.exec(select(Plan).where(Plan.code == code)).one()


def order(db, order_id: int) -> SalesOrder:
    with db.read() as s:
        return s.get_one(SalesOrder, order_id)


def backdate(db, order_id: int, days: int) -> None:
    """The order completed (and earned) `days` ago."""
    then = utcnow() - dt.timedelta(days=days)
    with db.write() as s:
        s.exec(update(SalesOrder).where(col(SalesOrder.id) == order_id).values(completed_at=then))
        s.exec(update(Commission).where(col(Commission.order_id) == order_id).values(at=then))


# --- earning -------------------------------------------------------------------------------------------


def test_a_sale_credits_the_signed_in_operator_who_took_it(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    first = sell(seller(db, alex), lanes.ivana, "BASIC")
    assert rows(db, first) == [("earned", "sale", 500, alex.operator_id)]  # the settings' default per sale
    with db.read() as s:
        trail = s.exec(select(AuditLog).where(AuditLog.action == "commission.earned")).one()
    assert trail.entity_id == str(first) and (trail.after or {}).get("operator_id") == alex.operator_id


def test_the_operator_who_took_the_order_is_credited_whoever_completes_it(lanes: Lanes) -> None:
    """Morgan's sale is paid, then the terminal restarts and its recovery (a system actor) activates it."""
    db = lanes.db
    morgan = operator(db, "Morgan Manager", "lane-2-term")
    service = seller(db, morgan)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "DELUXE")
    sign(service, view.id)
    assert service.billing.start_sale(view.id, today=TODAY).completed  # paid; the crash came before activation
    restarted = seller(db, Actor.system("sale", "lane-2-term"))
    assert restarted.recover() == [view.id]
    assert rows(db, view.id) == [("earned", "sale", 500, morgan.operator_id)]


def test_an_order_nobody_signed_in_for_earns_nothing(lanes: Lanes) -> None:
    from tests.helpers.sale import sale_service

    order_id = sell(sale_service(lanes.db), lanes.ivana)  # the helper's actor has no operator id
    assert rows(lanes.db, order_id) == []


def test_rates_manager_plan_then_manager_every_plan_then_settings_per_plan_then_per_sale(lanes: Lanes) -> None:
    db = lanes.db
    settings = CommissionConfig(per_sale_cents=400, per_plan_cents={"DELUXE": 700}, per_migration_cents=250)
    basic, deluxe = plan(db, "BASIC"), plan(db, "DELUXE")

    def rate(kind: str, p: Plan) -> int:
        with db.read() as s:
            return rate_for(s, kind, p, settings)

    assert (rate("sale", basic), rate("sale", deluxe), rate("migration", deluxe), rate("upgrade", deluxe)) \
        == (400, 700, 250, 0)
    rates = CommissionRates(db, settings)
    rates.set("sale", 300, actor=MANAGER)  # every plan: wins over both settings
    assert (rate("sale", basic), rate("sale", deluxe)) == (300, 300)
    rates.set("SALE", 900, "deluxe", actor=MANAGER)  # one plan: wins over every plan
    assert (rate("sale", basic), rate("sale", deluxe)) == (300, 900)
    rates.set("sale", 350, actor=MANAGER)  # set again: the one row changes
    assert rate("sale", basic) == 350
    listed = {(r.kind, r.plan_code): (r.amount_cents, r.source) for r in rates.list()}
    assert listed[("sale", None)] == (350, "manager") and listed[("sale", "DELUXE")] == (900, "manager")
    assert listed[("migration", None)] == (250, "settings")
    # A real sale of Deluxe by Alex earns the manager's Deluxe rate.
    alex = operator(db)
    order_id = sell(seller(db, alex, settings), lanes.ivana, "DELUXE")
    assert rows(db, order_id) == [("earned", "sale", 900, alex.operator_id)]
    # Cleared: the settings apply again.
    assert rates.clear("sale", "DELUXE", actor=MANAGER) and not rates.clear("sale", "DELUXE", actor=MANAGER)
    assert rate("sale", deluxe) == 350
    with db.read() as s:
        actions = [a.action for a in s.exec(select(AuditLog).where(AuditLog.entity == "commission_rate"))]
    assert actions == ["commission_rate.set"] * 3 + ["commission_rate.cleared"]


def test_only_a_manager_sets_rates_and_bad_input_says_what_to_do(lanes: Lanes) -> None:
    rates = CommissionRates(lanes.db)
    with pytest.raises(PermissionDenied):
        rates.set("sale", 100, actor=ATTENDANT)
    with pytest.raises(CommissionRefused, match="choose sale, migration or upgrade"):
        rates.set("bonus", 100, actor=MANAGER)
    with pytest.raises(CommissionRefused, match="There is no plan 'GOLD': choose one of BASIC"):
        rates.set("sale", 100, "gold", actor=MANAGER)
    with pytest.raises(CommissionRefused, match=r"whole number from 0 to 100000 cents \(\$1,000.00\)"):
        rates.set("sale", -5, actor=MANAGER)
    with lanes.db.read() as s:
        assert s.exec(select(AuditLog).where(AuditLog.entity == "commission_rate")).first() is None


def test_a_migration_earns_the_migration_rate(legacy: Legacy) -> None:
    db = legacy.db
    alex = operator(db)
    svc = MigrationService(db, SimulatedGateway(db), alex, terminal=alex.terminal, today=lambda: TODAY,
                           sms=SimulatedSms(reply_after=0.0))
    svc.steps.commissions = CommissionConfig(per_migration_cents=250)
    order_id = to_signed(svc, legacy)
    assert svc.pay(order_id).ok
    assert rows(db, order_id) == [("earned", "migration", 250, alex.operator_id)]


def test_an_upgrade_earns_only_where_the_site_pays_for_upgrades(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    sell(seller(db, alex), lanes.ivana, "BASIC")
    # Settings' default: upgrades earn nothing.
    to_deluxe = sell(seller(db, alex), lanes.ivana, "DELUXE")
    assert rows(db, to_deluxe) == []
    # This site pays $1.50 per upgrade.
    to_ultimate = sell(seller(db, alex, CommissionConfig(per_upgrade_cents=150)), lanes.ivana, "ULTIMATE")
    assert order(db, to_ultimate).kind == "plan_change"
    assert rows(db, to_ultimate) == [("earned", "upgrade", 150, alex.operator_id)]
    # A downgrade never earns.
    to_basic = sell(seller(db, alex, CommissionConfig(per_upgrade_cents=150)), lanes.ivana, "BASIC")
    assert rows(db, to_basic) == []


def test_an_upgrade_from_the_customer_record_earns_the_managers_rate(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    sell(seller(db, alex), lanes.ivana, "BASIC")
    CommissionRates(db).set("upgrade", 125, actor=MANAGER)
    with db.read() as s:
        m = s.exec(select(Membership).where(Membership.customer_id == lanes.ivana_customer_id,
                                            Membership.status == "active")).one()
    svc = CustomerService(db, gateway=SimulatedGateway(db), today=lambda: TODAY)
    assert m.id is not None and svc.change_plan(alex, m.id, m.version, "ULTIMATE") == "upgrade"
    with db.read() as s:
        order_id = s.exec(select(SalesOrder.id).where(SalesOrder.kind == "plan_change")).one()
    assert rows(db, order_id) == [("earned", "upgrade", 125, alex.operator_id)]


def test_a_replayed_completion_gives_one_row(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    service = seller(db, alex)
    order_id = sell(service, lanes.ivana)
    assert service.pay(order_id).ok  # a double tap on Agree
    assert service.activate(order_id) and service.recover() == []
    with db.write() as s:  # the hook itself, once more
        again = earn(s, s.get_one(SalesOrder, order_id), CommissionConfig(per_sale_cents=999))
        assert again is not None and again.amount_cents == 500  # fixed when earned
    assert rows(db, order_id) == [("earned", "sale", 500, alex.operator_id)]


# --- clawback ------------------------------------------------------------------------------------------


def test_a_refund_inside_the_window_reverses_the_whole_commission_once(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    order_id = sell(seller(db, alex), lanes.ivana)
    backdate(db, order_id, 29)  # inside the default 30 days
    assert refund(db, order_id, 500).status == "done"  # a partial refund: the sale did not stick
    assert rows(db, order_id) == [("earned", "sale", 500, alex.operator_id),
                                  ("clawback", "sale", -500, alex.operator_id)]
    assert refund(db, order_id).status == "done"  # the rest: still one clawback
    assert [r[0] for r in rows(db, order_id)] == ["earned", "clawback"]
    assert order(db, order_id).refunded_cents == 1999


def test_a_refund_outside_the_window_keeps_the_commission(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    order_id = sell(seller(db, alex), lanes.ivana)
    backdate(db, order_id, 31)
    assert refund(db, order_id).status == "done"
    assert rows(db, order_id) == [("earned", "sale", 500, alex.operator_id)]
    # A site with a 60-day window would take it back (the window comes with the refund).
    with db.write() as s:
        row = claw_back(s, order_id, 60)
        assert row is not None and row.amount_cents == -500


def test_an_order_cancelled_after_it_earned_is_reversed_whatever_its_age(lanes: Lanes) -> None:
    db = lanes.db
    alex = operator(db)
    order_id = sell(seller(db, alex), lanes.ivana)
    backdate(db, order_id, 100)
    with db.write() as s:
        assert reverse(s, order_id) is not None and reverse(s, order_id) is not None  # a replay: the same row
    assert rows(db, order_id)[1:] == [("clawback", "sale", -500, alex.operator_id)]


def test_a_refund_of_an_order_that_earned_nothing_writes_nothing(lanes: Lanes) -> None:
    from tests.helpers.sale import sale_service

    order_id = sell(sale_service(lanes.db), lanes.ivana)
    assert refund(lanes.db, order_id, 100).status == "done"
    assert rows(lanes.db) == []


# --- two processes at once -------------------------------------------------------------------------------


def test_two_processes_completing_and_refunding_the_same_order_give_one_row_each(lanes: Lanes,
                                                                                db_url: str) -> None:
    db = lanes.db
    alex = operator(db)
    service = seller(db, alex)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "BASIC")
    sign(service, view.id)
    assert service.billing.start_sale(view.id, today=TODAY).completed  # paid, not yet activated
    assert rows(db, view.id) == []
    assert race(db_url, ("activate", view.id), ("activate", view.id)) == ["ok|True", "ok|True"]
    assert rows(db, view.id) == [("earned", "sale", 500, alex.operator_id)]
    assert race(db_url, ("refund", view.id, 300), ("refund", view.id, 400)) == ["ok|done", "ok|done"]
    assert rows(db, view.id) == [("earned", "sale", 500, alex.operator_id),
                                 ("clawback", "sale", -500, alex.operator_id)]
    assert order(db, view.id).refunded_cents == 700


def test_two_processes_earning_the_same_order_at_once_write_one_row(lanes: Lanes, db_url: str) -> None:
    db = lanes.db
    alex = operator(db)
    service = seller(db, alex)
    view = service.choose_plan(service.open_for_session(lanes.ivana).id, "BASIC")
    sign(service, view.id)
    assert service.billing.start_sale(view.id, today=TODAY).completed
    for _ in range(3):  # a few rounds: the inserts meet at the constraint more than once
        with db.write() as s:
            s.exec(delete(Commission).where(col(Commission.order_id) == view.id))
        assert race(db_url, ("earn", view.id), ("earn", view.id)) == ["ok|500", "ok|500"]
        assert rows(db, view.id) == [("earned", "sale", 500, alex.operator_id)]
