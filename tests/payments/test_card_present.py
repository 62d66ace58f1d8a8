"""The first payment at the lane is card present (issue 12 item 9).

Real parts: SQLite files, the outbox, the simulated gateway and reader, the stripe SDK against a
replaying HTTP client for what localstripe lacks (card_present PaymentIntents, Terminal, Checkout),
and localstripe for keyed entry.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.payments import CardDeclined, ManualCard, PaymentError
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.payments.stripe_gateway import StripeGateway
from clarity_tui.services.billing import OPERATIONS
from clarity_tui.services.card_present import (
    CARD_PRESENT_CHARGE,
    CARD_PRESENT_OPERATIONS,
    NOT_ATTENDED,
    CardPresentCharge,
    enqueue_charge,
    keyed_entry_mode,
    mark_card_present,
    reader_attended,
    takes_first_payment_on_reader,
)
from clarity_tui.services.outbox import OutboxProcessor, enqueue, make_key
from db.models import Customer, Outbox, OutboxStatus, PaymentMethod, SalesOrder
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from tests.helpers.stripe_replay import READER, ReplayHTTPClient, Step, payment_action, reader
from tests.helpers.actors import ATTENDANT
from tests.helpers.localstripe import API_KEY
from tests.helpers.orders import new_order
from tests.helpers.stripe_bodies import customer_body, pi_body

OPS = {**OPERATIONS, **CARD_PRESENT_OPERATIONS}
R = f"/v1/terminal/readers/{READER}"
FUTURE = dt.date.today().year + 3


@pytest.fixture
def site_db(small_site_db):  # noqa: ANN001, ANN201
    return small_site_db  # tests/payments/conftest.py


def card_present_order(db, due: int = 2999, gateway_customer: str | None = None) -> int:  # noqa: ANN001
    """A signed sale flagged card present, with what BillingService._start enqueues for it."""
    order_id = new_order(db, "DELUXE")
    mark_card_present(db, order_id, ATTENDANT)
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        order.due_today_cents = due
        customer = s.get(Customer, order.customer_id)
        if gateway_customer:
            customer.gateway_customer_id = gateway_customer
            s.add(customer)
        else:
            enqueue(s, order_id=order_id, operation="customer.ensure", payload={"customer_id": customer.id},
                    idempotency_key=make_key(order.idempotency_key, "customer"))
        s.add(order)
        enqueue_charge(s, order, currency="usd")
    return order_id


def rows(db, order_id: int) -> list[Outbox]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(Outbox).where(Outbox.order_id == order_id).order_by(Outbox.id)).all())


def order_and_card(db, order_id: int) -> tuple[SalesOrder, PaymentMethod | None]:  # noqa: ANN001
    with db.read() as s:
        order = s.get(SalesOrder, order_id)
        pm = s.get(PaymentMethod, order.payment_method_id) if order.payment_method_id else None
        return order, pm


def sim_pis(gw: SimulatedGateway, db) -> list[dict[str, Any]]:  # noqa: ANN001
    from db.models import SimGatewayObject

    with db.read() as s:
        return [dict(r.data) | {"id": r.id} for r in s.exec(select(SimGatewayObject).where(
            SimGatewayObject.kind == "payment_intent")).all()]


# --- the simulated gateway and reader, end to end through the outbox -----------------------------------


def test_first_payment_is_taken_on_the_reader_and_its_card_pays_the_renewals(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    with reader_attended(SimulatedCardReader(delay=0)):
        result = OutboxProcessor(site_db, gw, OPS).run_order(order_id)
    assert result.error is None and result.done == ["customer.ensure", CARD_PRESENT_CHARGE]
    order, pm = order_and_card(site_db, order_id)
    (pi,) = sim_pis(gw, site_db)
    assert order.gateway_payment_id == pi["id"] and pi["status"] == "succeeded" and pi["amount"] == 2999
    assert pi["card_present"] and pi["setup_future_usage"] == "off_session"
    assert pi["metadata"]["order_key"] == order.idempotency_key
    # The reusable card is the generated one (not the card_present one), saved as the default here and there.
    assert pm is not None and pm.gateway_token == pi["reusable"] != pi["payment_method"]
    assert (pm.brand, pm.last4, pm.is_default) == ("visa", "4242", True)
    with site_db.read() as s:
        cus = s.get(Customer, order.customer_id).gateway_customer_id
    assert [(c.payment_method_id, c.is_default) for c in gw.list_cards(cus)] == [(pm.gateway_token, True)]
    # No card was saved first (no SetupIntent) and nothing was charged off-session.
    assert gw.counts("setup_intent") == 0
    # The renewals' card works for a later off-session charge.
    assert gw.charge(cus, pm.gateway_token, 2999, idempotency_key="renewal-1").status == "succeeded"


def test_a_decline_on_the_reader_cancels_the_payment_and_the_next_attempt_gets_a_new_key(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    device = SimulatedCardReader(delay=0, outcome=Outcome.INSUFFICIENT_FUNDS)
    processor = OutboxProcessor(site_db, gw, OPS)
    with reader_attended(device):
        result = processor.run_order(order_id)
    assert isinstance(result.error, CardDeclined) and "insufficient funds" in str(result.error)
    assert [p["status"] for p in sim_pis(gw, site_db)] == ["canceled"]  # it can never be paid later
    first = rows(site_db, order_id)[-1]
    assert first.status == OutboxStatus.FAILED
    with site_db.write() as s:
        again = enqueue_charge(s, s.get(SalesOrder, order_id))
        assert again.idempotency_key != first.idempotency_key
        assert enqueue_charge(s, s.get(SalesOrder, order_id)).id == again.id  # pending: the same row
    device.set_outcome(Outcome.APPROVE)
    with reader_attended(device):
        assert processor.run_order(order_id).error is None
    assert sorted(p["status"] for p in sim_pis(gw, site_db)) == ["canceled", "succeeded"]


def test_a_replay_with_nobody_at_the_reader_never_lights_it_up(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    result = OutboxProcessor(site_db, gw, OPS).run_order(order_id)  # the timer, `payments replay`
    assert str(result.error) == NOT_ATTENDED and not result.error.transient
    assert [p["status"] for p in sim_pis(gw, site_db)] == ["canceled"]
    order, pm = order_and_card(site_db, order_id)
    assert order.gateway_payment_id is None and pm is None


def test_a_crash_after_the_reader_approved_is_recorded_on_replay_without_paying_twice(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    processor = OutboxProcessor(site_db, gw, OPS)

    def crash(point: str, entry: Outbox) -> None:
        if entry.operation == CARD_PRESENT_CHARGE and point == "after_call":
            raise SystemExit("power cut after the reader approved")

    processor.observers.append(crash)
    with reader_attended(SimulatedCardReader(delay=0)), pytest.raises(SystemExit):
        processor.run_order(order_id)
    assert rows(site_db, order_id)[-1].status == OutboxStatus.PENDING
    processor.observers.clear()
    result = processor.run_order(order_id)  # on restart, nobody at the reader
    assert result.error is None
    (pi,) = sim_pis(gw, site_db)
    order, pm = order_and_card(site_db, order_id)
    assert pi["status"] == "succeeded" and order.gateway_payment_id == pi["id"] and pm.gateway_token == pi["reusable"]


def test_recover_finds_the_paid_payment_by_the_order_key(site_db) -> None:
    """What a replay a day late asks (idempotency keys expire after 24 hours)."""
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    with reader_attended(SimulatedCardReader(delay=0)):
        OutboxProcessor(site_db, gw, OPS).run_order(order_id)
    row = rows(site_db, order_id)[-1]
    late = Outbox(id=row.id, order_id=order_id, operation=CARD_PRESENT_CHARGE, payload=row.payload,
                  idempotency_key=make_key("expired", "card_present"), attempts=2)
    found = CardPresentCharge().recover(site_db, gw, late)
    assert found is not None and found["payment_id"] == row.result["payment_id"]
    assert len(sim_pis(gw, site_db)) == 1
    other = card_present_order(site_db)
    assert CardPresentCharge().recover(site_db, gw, Outbox(order_id=other, operation=CARD_PRESENT_CHARGE,
                                                            payload={}, idempotency_key="x", attempts=2)) is None


def test_nothing_due_today_cannot_be_a_card_present_payment(site_db) -> None:
    order_id = new_order(site_db, "DELUXE")
    with site_db.write() as s, pytest.raises(PaymentError) as info:
        enqueue_charge(s, s.get(SalesOrder, order_id))
    assert "Nothing is due today" in str(info.value)


# --- Stripe: the exact requests (localstripe has no card_present PaymentIntents nor Terminal) -----------


def stripe_pair(steps: list[Step], **reader_kw: Any) -> tuple[StripeGateway, StripeTerminalReader, ReplayHTTPClient]:
    """The gateway and the Terminal driver on one replaying client: the interleaved sequence is asserted."""
    http = ReplayHTTPClient(steps)
    gw = StripeGateway("sk_test_replay", http_client=http)
    device = StripeTerminalReader(client=gw.client, reader_id=READER, poll_interval=0, **reader_kw)
    return gw, device, http


def create_step(order_id: int, order_key: str, *, moto: bool = False) -> Step:
    return Step("POST", "/v1/payment_intents", {
        "amount": "2999", "currency": "usd", "customer": "cus_9",
        "payment_method_types[0]": "card" if moto else "card_present", "capture_method": "automatic",
        "setup_future_usage": "off_session", "metadata[clarity_order]": str(order_id),
        "metadata[order_key]": order_key}, pi_body("requires_payment_method", moto=moto))


def test_stripe_card_present_payment_runs_the_documented_sequence(site_db) -> None:
    order_id = card_present_order(site_db, gateway_customer="cus_9")
    order, _ = order_and_card(site_db, order_id)
    (row,) = rows(site_db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, order.idempotency_key),
        Step("POST", f"{R}/process_payment_intent",
             {"payment_intent": "pi_cp", "process_config[allow_redisplay]": "always"},
             reader(payment_action("in_progress", pi="pi_cp"))),
        Step("GET", R, {}, reader(payment_action("in_progress", pi="pi_cp"))),
        Step("GET", R, {}, reader(payment_action("succeeded", pi="pi_cp"))),
        Step("GET", "/v1/payment_intents/pi_cp", {"expand[0]": "latest_charge"}, pi_body("succeeded")),
        Step("POST", "/v1/customers/cus_9", {"invoice_settings[default_payment_method]": "pm_gen_7"},
             customer_body()),
    ])
    with reader_attended(device):
        result = OutboxProcessor(site_db, gw, OPS).run_order(order_id)
    assert result.error is None and http.done
    keys = [r.headers.get("Idempotency-Key") for r in http.recorded]
    assert keys[0] == row.idempotency_key and keys[-1] == f"{row.idempotency_key}:default"
    order, pm = order_and_card(site_db, order_id)
    assert order.gateway_payment_id == "pi_cp"
    assert (pm.gateway_token, pm.brand, pm.last4, pm.exp_month, pm.exp_year, pm.is_default) == (
        "pm_gen_7", "mastercard", "4444", 8, 2029, True)


def test_stripe_moto_keys_the_card_on_the_reader_and_keeps_that_card(site_db) -> None:
    order_id = card_present_order(site_db, gateway_customer="cus_9")
    order, _ = order_and_card(site_db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, order.idempotency_key, moto=True),
        Step("POST", f"{R}/process_payment_intent", {"payment_intent": "pi_cp", "process_config[moto]": "true",
                                                    "process_config[allow_redisplay]": "always"},
             reader(payment_action("in_progress", pi="pi_cp"))),
        Step("GET", R, {}, reader(payment_action("succeeded", pi="pi_cp"))),
        Step("GET", "/v1/payment_intents/pi_cp", None, pi_body("succeeded", moto=True)),
        Step("POST", "/v1/customers/cus_9", {"invoice_settings[default_payment_method]": "pm_keyed_1"},
             customer_body()),
    ], moto_enabled=True)
    with reader_attended(device, moto=True):
        assert OutboxProcessor(site_db, gw, OPS).run_order(order_id).error is None
    assert http.done
    assert order_and_card(site_db, order_id)[1].gateway_token == "pm_keyed_1"


def test_stripe_card_that_needs_the_pin_gets_its_own_message_and_nothing_is_charged(site_db) -> None:
    order_id = card_present_order(site_db, gateway_customer="cus_9")
    order, _ = order_and_card(site_db, order_id)
    (row,) = rows(site_db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, order.idempotency_key),
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress", pi="pi_cp"))),
        Step("GET", R, {}, reader(payment_action("failed", pi="pi_cp", failure="card_declined"))),
        Step("GET", "/v1/payment_intents/pi_cp", None,
             pi_body("requires_payment_method", decline="online_or_offline_pin_required")),
        Step("POST", "/v1/payment_intents/pi_cp/cancel", {}, pi_body("canceled")),
    ])
    with reader_attended(device):
        result = OutboxProcessor(site_db, gw, OPS).run_order(order_id)
    assert http.done and http.recorded[-1].headers.get("Idempotency-Key") == f"{row.idempotency_key}:cancel"
    assert isinstance(result.error, CardDeclined) and result.error.decline_code == "authentication_required"
    assert "PIN on the reader" in str(result.error) and "Nothing was charged" in str(result.error)
    assert rows(site_db, order_id)[-1].status == OutboxStatus.FAILED
    assert order_and_card(site_db, order_id)[0].gateway_payment_id is None


def test_stripe_payment_without_a_generated_card_is_refunded(site_db) -> None:
    """A phone wallet: paid, but no reusable card for the renewals."""
    order_id = card_present_order(site_db, gateway_customer="cus_9")
    order, _ = order_and_card(site_db, order_id)
    (row,) = rows(site_db, order_id)
    gw, device, http = stripe_pair([
        create_step(order_id, order.idempotency_key),
        Step("POST", f"{R}/process_payment_intent", None, reader(payment_action("in_progress", pi="pi_cp"))),
        Step("GET", R, {}, reader(payment_action("succeeded", pi="pi_cp"))),
        Step("GET", "/v1/payment_intents/pi_cp", None, pi_body("succeeded", generated=None)),
        Step("POST", "/v1/refunds", {"payment_intent": "pi_cp",
                                     "metadata[refund_key]": f"{row.idempotency_key}:refund"},
             {"id": "re_1", "object": "refund", "amount": 2999, "status": "succeeded", "payment_intent": "pi_cp"}),
    ])
    with reader_attended(device):
        result = OutboxProcessor(site_db, gw, OPS).run_order(order_id)
    assert http.done
    assert isinstance(result.error, CardDeclined) and "refunded" in str(result.error)
    assert order_and_card(site_db, order_id)[0].gateway_payment_id is None


# --- keyed entry -------------------------------------------------------------------------------------------


def keyed() -> ManualCard:
    return ManualCard.parse("4242424242424242", f"12/{FUTURE % 100:02d}", "123")


def test_stripe_keyed_entry_is_refused_without_raw_card_data_access(localstripe, recorder) -> None:
    gw = StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder)
    assert not gw.keyed_entry_allowed
    with pytest.raises(PaymentError) as info:
        gw.tokenize_card(keyed(), idempotency_key="k1:tok")
    assert info.value.code == "raw_card_data_disabled" and "reader" in str(info.value)
    assert recorder.recorded == []  # the number never left the process
    allowed = StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder, raw_card_data_access=True)
    assert allowed.tokenize_card(keyed(), idempotency_key="k1:tok").last4 == "4242"


def test_from_settings_carries_raw_card_data_access() -> None:
    on = Settings(payments={"gateway": "stripe", "stripe": {"api_key": "sk_test_x", "raw_card_data_access": True}})
    assert StripeGateway.from_settings(on).keyed_entry_allowed
    assert not StripeGateway.from_settings(Settings(payments={"stripe": {"api_key": "sk_test_x"}})).keyed_entry_allowed


def test_the_simulated_gateway_keeps_local_keyed_entry(site_db) -> None:
    gw = SimulatedGateway(site_db)
    assert gw.keyed_entry_allowed and keyed_entry_mode(Settings(), gw, SimulatedCardReader()) == "local"
    assert gw.tokenize_card(keyed(), idempotency_key="k2:tok").last4 == "4242"


@pytest.mark.parametrize(("stripe_cfg", "moto_reader", "mode"), [
    ({}, False, "hosted_page"),
    ({"moto_enabled": True}, True, "reader_moto"),
    ({"moto_enabled": True}, False, "hosted_page"),
    ({"keyed_entry": "hosted_page", "moto_enabled": True}, True, "hosted_page"),
    ({"keyed_entry": "raw"}, False, "hosted_page"),  # raw without the account's access: never
    ({"keyed_entry": "raw", "raw_card_data_access": True}, False, "raw"),
])
def test_keyed_entry_mode(stripe_cfg: dict, moto_reader: bool, mode: str) -> None:
    settings = Settings(payments={"gateway": "stripe", "stripe": {"api_key": "sk_test_x", **stripe_cfg}})
    gw = StripeGateway.from_settings(settings)
    from tests.helpers.stripe_replay import client_for

    device = StripeTerminalReader(client=client_for([])[0], reader_id=READER, moto_enabled=moto_reader)
    assert keyed_entry_mode(settings, gw, device) == mode
    assert takes_first_payment_on_reader(settings, gw, device)
    assert not takes_first_payment_on_reader(settings, gw, SimulatedCardReader())
    off = Settings(payments={"gateway": "stripe", "stripe": {"api_key": "k", "card_present_first_payment": False}})
    assert not takes_first_payment_on_reader(off, gw, device)


# --- from the UI's event loop ------------------------------------------------------------------------------


async def test_pay_at_reader_runs_billing_in_a_thread_and_esc_cancels_on_the_reader(site_db) -> None:
    """The lane's path: billing in a worker thread, the reader's action on the app's loop, so the
    attendant's Cancel (reader.cancel() on the loop) stops it; nothing is charged."""
    import asyncio

    from clarity_tui.services.card_present import pay_at_reader
    from hardware.base import DeviceState

    gw = SimulatedGateway(site_db)
    device = SimulatedCardReader(delay=30)  # a customer who never taps
    await device.open()
    waiting = asyncio.Event()
    loop = asyncio.get_running_loop()
    device.add_status_listener(lambda _d, status: status.state is DeviceState.BUSY and loop.call_soon_threadsafe(
        waiting.set))
    order_id = card_present_order(site_db)
    processor = OutboxProcessor(site_db, gw, OPS)
    paying = asyncio.create_task(pay_at_reader(device, processor.run_order, order_id))
    await asyncio.wait_for(waiting.wait(), 30)
    await device.cancel()  # Esc on the lane
    result = await asyncio.wait_for(paying, 30)
    assert result.error is not None and result.error.code == "cancelled" and "nothing was charged" in str(result.error)
    assert [p["status"] for p in sim_pis(gw, site_db)] == ["canceled"]
    device.set_outcome(Outcome.APPROVE)
    device.delay = 0
    with site_db.write() as s:
        enqueue_charge(s, s.get(SalesOrder, order_id))
    assert (await pay_at_reader(device, processor.run_order, order_id)).error is None


def test_moto_chosen_for_the_order_keeps_the_keyed_card(site_db) -> None:
    """K on the payment step with MOTO: at pay time the card is keyed on the reader (a `card` payment
    that itself is the reusable card) rather than presented."""
    gw = SimulatedGateway(site_db)
    order_id = card_present_order(site_db)
    mark_card_present(site_db, order_id, ATTENDANT, moto=True)
    with reader_attended(SimulatedCardReader(delay=0)):
        assert OutboxProcessor(site_db, gw, OPS).run_order(order_id).error is None
    (pi,) = sim_pis(gw, site_db)
    assert pi["moto"] and pi["reusable"] == pi["payment_method"]
    assert order_and_card(site_db, order_id)[1].gateway_token == pi["payment_method"]


def test_card_present_and_hosted_card_services_are_headless() -> None:
    import json
    import subprocess
    import sys

    # A fresh interpreter, not a fork (tests/helpers/forked.py): the test is what a new process imports.
    code = ("import json, sys\nimport clarity_tui.services.card_present, clarity_tui.services.hosted_card\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textual')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


# --- wired into the sale: BillingService.start_sale enqueues the card-present row ------------------------


def test_start_sale_of_a_card_present_order_pays_on_the_reader_then_subscribes(site_db) -> None:
    from clarity_tui.services.billing import BillingService

    gw = SimulatedGateway(site_db)
    order_id = new_order(site_db, "DELUXE")
    mark_card_present(site_db, order_id, ATTENDANT)
    billing = BillingService(site_db, gw)
    with reader_attended(SimulatedCardReader(delay=0)):
        outcome = billing.start_sale(order_id)
    assert outcome.completed, outcome.message
    ops = [r.operation for r in rows(site_db, order_id)]
    assert ops == ["customer.ensure", CARD_PRESENT_CHARGE, "subscription.create"]  # no card.save, no payment.charge
    order, pm = order_and_card(site_db, order_id)
    (pi,) = sim_pis(gw, site_db)
    assert pi["card_present"] and order.gateway_payment_id == pi["id"] and pi["amount"] == order.due_today_cents
    assert pm is not None and pm.is_default and pm.gateway_token == pi["reusable"]
    assert gw.counts("setup_intent") == 0 and gw.counts("subscription") == 1


def test_a_card_present_order_replayed_with_nobody_at_the_reader_charges_nothing(site_db) -> None:
    from clarity_tui.services.billing import BillingService

    gw = SimulatedGateway(site_db)
    order_id = new_order(site_db, "DELUXE")
    mark_card_present(site_db, order_id, ATTENDANT)
    outcome = BillingService(site_db, gw).start_sale(order_id)  # no reader_attended: the timer or the CLI
    assert outcome.state == "payment_pending" and "Take the payment again" in outcome.message
    assert [p["status"] for p in sim_pis(gw, site_db)] == ["canceled"]
