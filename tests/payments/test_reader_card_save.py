"""A card saved on the lane's reader goes through the payments outbox (issue 12 item 1).

Real parts: SQLite files, the outbox, the simulated gateway and reader, and the stripe SDK against a
replaying HTTP client for what localstripe lacks (card_present SetupIntents, Terminal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from clarity_tui.payments import CardDeclined, PaymentError
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.payments.stripe_gateway import StripeGateway
from clarity_tui.services.billing import OPERATIONS, BillingService
from clarity_tui.services.card_present import reader_attended
from clarity_tui.services.reader_card import (
    CARD_PRESENT_SAVE,
    NOT_ATTENDED,
    CardPresentSave,
    enqueue_save,
    save_card_on_reader,
    saves_card_on_reader,
)
from db.models import Customer, Outbox, OutboxStatus, PaymentMethod, SalesOrder, SimGatewayObject
from hardware.card_reader.simulated import Outcome, SimulatedCardReader
from hardware.card_reader.stripe_terminal import StripeTerminalReader
from tests.helpers.stripe_replay import READER, ReplayHTTPClient, Step, card_payment_method, client_for, reader, setup_action, setup_intent
from tests.helpers.orders import new_order

R = f"/v1/terminal/readers/{READER}"


@pytest.fixture
def site_db(small_site_db):  # noqa: ANN001, ANN201
    return small_site_db  # tests/payments/conftest.py


def order_for(db, gateway_customer: str | None = None) -> tuple[int, int, str]:  # noqa: ANN001
    """A sale at its payment step: (order id, customer id, order key)."""
    order_id = new_order(db, "DELUXE")
    with db.write() as s:
        order = s.get(SalesOrder, order_id)
        customer = s.get(Customer, order.customer_id)
        customer.gateway_customer_id = gateway_customer
        s.add(customer)
        return order_id, customer.id, order.idempotency_key


def save_rows(db) -> list[Outbox]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(Outbox).where(Outbox.operation == CARD_PRESENT_SAVE).order_by(Outbox.id)).all())


def cards(db, customer_id: int) -> list[PaymentMethod]:  # noqa: ANN001
    """The customer's cards, but the demo data's own."""
    with db.read() as s:
        return [pm for pm in s.exec(select(PaymentMethod).where(PaymentMethod.customer_id == customer_id)
                                    .order_by(PaymentMethod.id)).all()
                if not pm.gateway_token.startswith("pm_sim_demo_")]


def sim_setis(db) -> list[dict[str, Any]]:  # noqa: ANN001
    with db.read() as s:
        return [dict(r.data) | {"id": r.id} for r in s.exec(select(SimGatewayObject).where(
            SimGatewayObject.kind == "setup_intent")).all()]


def stripe_pair(steps: list[Step]) -> tuple[StripeGateway, StripeTerminalReader, ReplayHTTPClient]:
    """The gateway and the Terminal driver on one replaying client: the interleaved sequence is asserted."""
    http = ReplayHTTPClient(steps)
    gw = StripeGateway("sk_test_replay", http_client=http)
    return gw, StripeTerminalReader(client=gw.client, reader_id=READER, poll_interval=0), http


def create_params(row: Outbox, order_id: int, order_key: str) -> dict[str, str]:
    return {"customer": "cus_9", "payment_method_types[0]": "card_present", "usage": "off_session",
            "metadata[save_key]": row.idempotency_key, "metadata[clarity_customer]": "C100000",
            "metadata[clarity_order]": str(order_id), "metadata[order_key]": order_key}


def pending_save(db, order_id: int, customer_id: int) -> Outbox:  # noqa: ANN001
    """What `save_card_on_reader` enqueues (it reuses this pending row)."""
    with db.write() as s:
        return enqueue_save(s, s.get(Customer, customer_id), order=s.get(SalesOrder, order_id))[-1]


# --- Stripe: the exact requests ------------------------------------------------------------------------


def test_stripe_reader_card_is_a_setup_intent_of_the_outbox(site_db) -> None:
    order_id, customer_id, order_key = order_for(site_db, "cus_9")
    row = pending_save(site_db, order_id, customer_id)
    gw, device, http = stripe_pair([
        Step("POST", "/v1/setup_intents", create_params(row, order_id, order_key), setup_intent()),
        Step("POST", f"{R}/process_setup_intent", {"setup_intent": "seti_123", "allow_redisplay": "always"},
             reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("succeeded", generated="pm_gen_1"))),
        Step("GET", "/v1/setup_intents/seti_123", {"expand[0]": "latest_attempt"},
             setup_intent("succeeded", generated="pm_gen_1")),
        Step("GET", "/v1/payment_methods/pm_gen_1", {}, card_payment_method("pm_gen_1")),
    ])
    token = save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    assert http.done and http.recorded[0].headers.get("Idempotency-Key") == row.idempotency_key
    assert (token.payment_method_id, token.brand, token.last4, token.exp_month, token.exp_year) == (
        "pm_gen_1", "visa", "4242", 12, 2030)
    (done,) = save_rows(site_db)
    assert done.id == row.id and done.status == OutboxStatus.DONE and done.order_id is None
    (pm,) = cards(site_db, customer_id)
    assert (pm.gateway_token, pm.gateway, pm.last4, pm.is_default) == ("pm_gen_1", "stripe", "4242", False)
    # The sale takes it as its card: the same row, not a second one.
    assert BillingService(site_db, gw).attach_card_token(order_id, token).id == pm.id


def test_stripe_crash_after_the_reader_approved_is_recorded_on_replay_without_a_second_setup_intent(site_db) -> None:
    order_id, customer_id, order_key = order_for(site_db, "cus_9")
    row = pending_save(site_db, order_id, customer_id)

    def power_cut() -> None:
        raise SystemExit("power cut after the reader approved, before the SetupIntent was read back")

    gw, device, http = stripe_pair([
        Step("POST", "/v1/setup_intents", create_params(row, order_id, order_key), setup_intent()),
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("succeeded", generated="pm_gen_1"))),
        Step("GET", "/v1/setup_intents/seti_123", None, setup_intent("succeeded", generated="pm_gen_1"),
             on_request=power_cut),
    ])
    with pytest.raises(SystemExit):
        save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    assert http.done and save_rows(site_db)[0].status == OutboxStatus.PENDING
    # On restart the timer replays it with nobody at the reader: the same key answers with the same
    # SetupIntent (Stripe replays the stored response), which is read back and recorded.
    replay = ReplayHTTPClient([
        Step("POST", "/v1/setup_intents", create_params(row, order_id, order_key), setup_intent()),
        Step("GET", "/v1/setup_intents/seti_123", {"expand[0]": "latest_attempt"},
             setup_intent("succeeded", generated="pm_gen_1")),
        Step("GET", "/v1/payment_methods/pm_gen_1", {}, card_payment_method("pm_gen_1")),
    ])
    BillingService(site_db, StripeGateway("sk_test_replay", http_client=replay)).processor.replay_pending()
    assert replay.done and replay.recorded[0].headers.get("Idempotency-Key") == row.idempotency_key
    assert not any(r.path.startswith("/v1/terminal") for r in replay.recorded)  # the reader stays dark
    (done,) = save_rows(site_db)
    assert done.status == OutboxStatus.DONE and done.result["setup_id"] == "seti_123"
    assert [pm.gateway_token for pm in cards(site_db, customer_id)] == ["pm_gen_1"]


def test_stripe_replay_of_a_reading_that_never_finished_cancels_its_setup_intent(site_db) -> None:
    order_id, customer_id, order_key = order_for(site_db, "cus_9")
    row = pending_save(site_db, order_id, customer_id)

    def power_cut() -> None:
        raise SystemExit("power cut while the reader waited for the card")

    gw, device, http = stripe_pair([
        Step("POST", "/v1/setup_intents", None, setup_intent()),
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress")), on_request=power_cut),
    ])
    with pytest.raises(SystemExit):
        save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    replay = ReplayHTTPClient([
        Step("POST", "/v1/setup_intents", create_params(row, order_id, order_key), setup_intent()),
        Step("GET", "/v1/setup_intents/seti_123", None, setup_intent()),
        Step("POST", "/v1/setup_intents/seti_123/cancel", {}, setup_intent("canceled")),
    ])
    results = BillingService(site_db, StripeGateway("sk_test_replay", http_client=replay)).processor.replay_pending()
    assert replay.done and replay.recorded[-1].headers.get("Idempotency-Key") == f"{row.idempotency_key}:cancel"
    assert [str(r.error) for r in results] == [NOT_ATTENDED]
    assert save_rows(site_db)[0].status == OutboxStatus.FAILED and cards(site_db, customer_id) == []


def test_stripe_nobody_at_the_reader_creates_nothing(site_db) -> None:
    """The timer or `payments replay` reaching a save row before the lane ran it: not a request is sent."""
    order_id, customer_id, _ = order_for(site_db, "cus_9")
    row = pending_save(site_db, order_id, customer_id)
    client, http = client_for([])
    result = BillingService(site_db, StripeGateway("sk_test_replay", http_client=http)).processor.run_rows([row.id])
    assert str(result.error) == NOT_ATTENDED and not result.error.transient
    assert http.recorded == [] and client is not None
    assert save_rows(site_db)[0].status == OutboxStatus.FAILED and cards(site_db, customer_id) == []


def test_stripe_declined_on_the_reader_cancels_the_setup_intent_and_saves_nothing(site_db) -> None:
    order_id, customer_id, _ = order_for(site_db, "cus_9")
    row = pending_save(site_db, order_id, customer_id)
    declined = setup_intent() | {"last_setup_error": {"type": "card_error", "code": "card_declined",
                                                      "decline_code": "insufficient_funds"}}
    gw, device, http = stripe_pair([
        Step("POST", "/v1/setup_intents", None, setup_intent()),
        Step("POST", f"{R}/process_setup_intent", None, reader(setup_action("in_progress"))),
        Step("GET", R, {}, reader(setup_action("failed", failure="card_declined"))),
        Step("GET", "/v1/setup_intents/seti_123", None, declined),
        Step("POST", "/v1/setup_intents/seti_123/cancel", {}, setup_intent("canceled")),
    ])
    with pytest.raises(CardDeclined) as caught:
        save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    assert http.done and http.recorded[-1].headers.get("Idempotency-Key") == f"{row.idempotency_key}:cancel"
    assert caught.value.decline_code == "insufficient_funds"
    assert cards(site_db, customer_id) == []


def test_saves_card_on_reader_only_with_stripe_and_a_terminal_reader(site_db) -> None:
    from hardware.unavailable import UnavailableCardReader

    stripe = StripeGateway("sk_test_replay", http_client=ReplayHTTPClient([]))
    terminal = StripeTerminalReader(client=client_for([])[0], reader_id=READER)
    assert saves_card_on_reader(stripe, terminal)
    assert not saves_card_on_reader(stripe, SimulatedCardReader())
    assert not saves_card_on_reader(SimulatedGateway(site_db), terminal)
    assert not saves_card_on_reader(stripe, UnavailableCardReader(reason="x", wanted_driver="stripe_terminal"))


# --- the simulated gateway and reader, end to end ------------------------------------------------------


def test_simulated_reader_card_is_saved_through_the_outbox_and_pays_the_sale(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id, customer_id, order_key = order_for(site_db)  # not at the gateway yet
    token = save_card_on_reader(site_db, gw, SimulatedCardReader(delay=0), customer_id=customer_id,
                                order_id=order_id)
    with site_db.read() as s:
        cus = s.get(Customer, customer_id).gateway_customer_id
        ops = [r.operation for r in s.exec(select(Outbox).order_by(Outbox.id)).all()]
    assert cus and ops[-2:] == ["customer.ensure", CARD_PRESENT_SAVE]
    (seti,) = sim_setis(site_db)
    assert seti["card_present"] and seti["status"] == "succeeded" and seti["customer"] == cus
    assert seti["metadata"]["order_key"] == order_key
    assert seti["metadata"]["save_key"] == save_rows(site_db)[0].idempotency_key
    # The reusable card is the generated one (not the card the reader read), attached to the customer.
    assert token.payment_method_id == seti["reusable"] != seti["payment_method"]
    assert [c.payment_method_id for c in gw.list_cards(cus)] == [token.payment_method_id]
    (pm,) = cards(site_db, customer_id)
    assert (pm.gateway_token, pm.brand, pm.last4) == (token.payment_method_id, "visa", "4242")
    billing = BillingService(site_db, gw)
    billing.attach_card_token(order_id, token)
    outcome = billing.start_sale(order_id)
    assert outcome.completed, outcome.message
    assert [c.gateway_token for c in cards(site_db, customer_id)] == [token.payment_method_id]


def test_simulated_decline_saves_nothing_and_the_next_reading_gets_a_new_key(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    device = SimulatedCardReader(delay=0, outcome=Outcome.DECLINE)
    with pytest.raises(CardDeclined):
        save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    assert [s["status"] for s in sim_setis(site_db)] == ["canceled"] and cards(site_db, customer_id) == []
    device.set_outcome(Outcome.APPROVE)
    token = save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    first, second = save_rows(site_db)
    assert (first.status, second.status) == (OutboxStatus.FAILED, OutboxStatus.DONE)
    assert first.idempotency_key != second.idempotency_key
    assert sorted(s["status"] for s in sim_setis(site_db)) == ["canceled", "succeeded"]
    assert [c.gateway_token for c in cards(site_db, customer_id)] == [token.payment_method_id]


def test_recover_finds_the_saved_card_by_the_save_key(site_db) -> None:
    """What a replay a day late asks (idempotency keys expire after 24 hours)."""
    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    token = save_card_on_reader(site_db, gw, SimulatedCardReader(delay=0), customer_id=customer_id,
                                order_id=order_id)
    (row,) = save_rows(site_db)
    late = Outbox(id=row.id, operation=CARD_PRESENT_SAVE, payload=row.payload, idempotency_key="expired", attempts=2)
    found = CardPresentSave().recover(site_db, gw, late)
    assert found is not None and found["payment_method_id"] == token.payment_method_id
    other = Outbox(operation=CARD_PRESENT_SAVE, payload={**row.payload, "save_key": "another"}, idempotency_key="x",
                   attempts=2)
    assert CardPresentSave().recover(site_db, gw, other) is None


def test_a_membership_card_is_saved_but_left_for_update_card_to_record(site_db) -> None:
    """The customer record's Reader: the card is saved on the customer; MembershipActions.update_card
    then records it (once) and makes it the default."""
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.customers import CustomerService
    from clarity_tui.services.permissions import Role
    from db.models import Membership

    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    billing = BillingService(site_db, gw)
    first = save_card_on_reader(site_db, gw, SimulatedCardReader(delay=0), customer_id=customer_id, order_id=order_id)
    billing.attach_card_token(order_id, first)
    assert billing.start_sale(order_id).completed
    with site_db.read() as s:
        m = s.exec(select(Membership).where(Membership.customer_id == customer_id)).one()
        m_id, version = m.id, m.version
    token = save_card_on_reader(site_db, gw, SimulatedCardReader(delay=0), customer_id=customer_id,
                                membership_id=m_id)
    assert len(cards(site_db, customer_id)) == 1  # not recorded by the save itself
    manager = Actor("Morgan Manager", Role.MANAGER, "office-term", 2)
    pm = CustomerService(site_db, gateway=gw).update_card(manager, m_id, version, token)
    assert pm.gateway_token == token.payment_method_id and pm.is_default
    assert sorted(c.gateway_token for c in cards(site_db, customer_id)) == sorted([first.payment_method_id,
                                                                                    token.payment_method_id])


# --- from the UI's event loop ------------------------------------------------------------------------------


async def test_from_the_ui_loop_esc_cancels_on_the_reader_and_nothing_is_saved(site_db) -> None:
    import asyncio

    from clarity_tui.services.card_present import pay_at_reader
    from hardware.base import DeviceState

    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    device = SimulatedCardReader(delay=30)  # a customer who never taps
    await device.open()
    waiting = asyncio.Event()
    loop = asyncio.get_running_loop()
    device.add_status_listener(lambda _d, status: status.state is DeviceState.BUSY and loop.call_soon_threadsafe(
        waiting.set))
    saving = asyncio.create_task(pay_at_reader(device, save_card_on_reader, site_db, gw, device,
                                               customer_id=customer_id, order_id=order_id))
    await asyncio.wait_for(waiting.wait(), 30)
    await device.cancel()  # Esc on the lane
    with pytest.raises(PaymentError) as caught:
        await asyncio.wait_for(saving, 30)
    assert caught.value.code == "cancelled" and "no card was saved" in str(caught.value)
    assert [s["status"] for s in sim_setis(site_db)] == ["canceled"] and cards(site_db, customer_id) == []


def test_the_reader_card_service_is_headless_and_registered() -> None:
    import json
    import subprocess
    import sys

    assert isinstance(OPERATIONS[CARD_PRESENT_SAVE], CardPresentSave)
    # A fresh interpreter, not a fork (tests/helpers/forked.py): the test is what a new process imports.
    code = ("import json, sys\nimport clarity_tui.services.reader_card\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textual')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


def test_reader_attended_is_entered_once(site_db) -> None:
    """Inside `reader_attended` (the UI's pay_at_reader) the save uses that context as it is."""
    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    device = SimulatedCardReader(delay=0)
    with reader_attended(device):
        token = save_card_on_reader(site_db, gw, device, customer_id=customer_id, order_id=order_id)
    assert device.actions == 1 and token.last4 == "4242"


async def test_the_device_action_screen_saves_on_the_reader_and_a_refusal_offers_retry(site_db) -> None:
    """`DeviceActionScreen.card_saved_on_reader`, the three callers' dialog: a decline (nothing saved) is
    shown with Retry / Cancel like a reader error; Retry reads again and dismisses with the saved card."""
    from textual.app import App

    from clarity_tui.screens.device_action import DeviceActionScreen, DeviceErrorScreen, DeviceOutcome
    from tests.helpers.ui import wait_until

    gw = SimulatedGateway(site_db)
    order_id, customer_id, _ = order_for(site_db)
    device = SimulatedCardReader(delay=0, outcome=Outcome.DECLINE)
    outcomes: list[DeviceOutcome] = []

    class Lane(App):
        def on_mount(self) -> None:
            self.push_screen(DeviceActionScreen.card_saved_on_reader(
                device, site_db, gw, customer_id=customer_id, order_id=order_id), outcomes.append)

    app = Lane()
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DeviceErrorScreen) and app.screen.query("#retry"),
                         "the decline, with Retry")
        assert "declined" in app.screen.message.lower()
        device.set_outcome(Outcome.APPROVE)
        await pilot.press("r")
        await wait_until(pilot, lambda: bool(outcomes), "the saved card")
    (outcome,) = outcomes
    assert outcome.ok and outcome.result.payment_method_id == save_rows(site_db)[-1].result["payment_method_id"]
    assert [c.gateway_token for c in cards(site_db, customer_id)] == [outcome.result.payment_method_id]
