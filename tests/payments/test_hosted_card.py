"""Keyed entry without raw card data: a Stripe-hosted card page (Checkout, setup mode) sent by text."""

from __future__ import annotations


import pytest
from sqlmodel import select

from clarity_tui.config import Settings
from clarity_tui.messaging.simulated import SimulatedSms
from clarity_tui.payments import CardToken
from clarity_tui.payments.simulated import SimulatedGateway
from clarity_tui.payments.stripe_gateway import StripeGateway
from clarity_tui.services.hosted_card import HOSTED_CARD_PAGE, HostedCardError, HostedCardService
from db.models import Customer, Outbox, OutboxStatus, PaymentMethod, SalesOrder
from tests.helpers.stripe_replay import ReplayHTTPClient, Step
from tests.helpers.actors import ATTENDANT
from tests.helpers.orders import new_order
from tests.helpers.stripe_bodies import session_body

SUCCESS = "https://wash.example/card-saved"


@pytest.fixture
def site_db(sqlite_url):  # noqa: ANN001, ANN201
    from clarity_tui.services.bootstrap import open_database
    from clarity_tui.seeding.demo import seed_demo

    db = open_database(Settings(database_url=sqlite_url))
    seed_demo(db, customers=3, legacy=0)
    yield db
    db.dispose()


def customer_of(db, order_id: int, gateway_id: str | None = None) -> Customer:  # noqa: ANN001
    with db.write() as s:
        c = s.get(Customer, s.get(SalesOrder, order_id).customer_id)
        if gateway_id:
            c.gateway_customer_id = gateway_id
            s.add(c)
        s.flush()
        s.expunge(c)
        return c


def test_stripe_hosted_page_is_a_setup_mode_checkout_session_texted_and_polled(site_db) -> None:
    order_id = new_order(site_db, "BASIC")
    customer = customer_of(site_db, order_id, "cus_9")
    with site_db.read() as s:
        order_key = s.get(SalesOrder, order_id).idempotency_key
    http = ReplayHTTPClient([
        Step("POST", "/v1/checkout/sessions", {
            "mode": "setup", "customer": "cus_9", "currency": "usd", "payment_method_types[0]": "card",
            "success_url": SUCCESS, "metadata[clarity_order]": str(order_id), "metadata[order_key]": order_key},
            session_body("open")),
        Step("GET", "/v1/checkout/sessions/cs_test_h1", {"expand[0]": "setup_intent.payment_method"},
             session_body("open")),
        Step("GET", "/v1/checkout/sessions/cs_test_h1", None, session_body("complete", pm="pm_hosted_1")),
    ])
    sms = SimulatedSms(responder=None)
    service = HostedCardService(site_db, StripeGateway("sk_test_replay", http_client=http), sms, ATTENDANT,
                                success_url=SUCCESS, site_name="Clarity Express Wash")
    link = service.send_link(order_id)
    assert link.url == "https://checkout.stripe.com/c/pay/cs_test_h1"
    (text,) = sms.sent
    assert text.to == customer.phone_e164 and link.url in text.body and "Clarity Express Wash" in text.body
    assert http.recorded[0].headers.get("Idempotency-Key", "").startswith(f"{order_key}:hosted_page")
    assert not service.check(order_id).complete  # the customer is still typing
    done = service.check(order_id)
    assert done.complete and done.card_label == "Amex •••• 8431"
    assert http.done
    with site_db.read() as s:
        order = s.get(SalesOrder, order_id)
        pm = s.get(PaymentMethod, order.payment_method_id)
        assert (pm.gateway_token, pm.last4, pm.exp_year) == ("pm_hosted_1", "8431", 2031)
        (row,) = s.exec(select(Outbox).where(Outbox.order_id == order_id)).all()
        assert (row.operation, row.status) == (HOSTED_CARD_PAGE, OutboxStatus.DONE)


def test_simulated_hosted_page_creates_the_customer_first_and_completes(site_db) -> None:
    gw = SimulatedGateway(site_db)
    order_id = new_order(site_db, "BASIC")
    sms = SimulatedSms(responder=None)
    service = HostedCardService(site_db, gw, sms, ATTENDANT, success_url=SUCCESS)
    link = service.send_link(order_id, phone="(512) 555-0143")
    assert sms.sent[0].to == "+15125550143" and link.to_hint == "…0143"
    with site_db.read() as s:
        ops = [(r.operation, r.status) for r in s.exec(select(Outbox).where(Outbox.order_id == order_id)
                                                       .order_by(Outbox.id)).all()]
    assert ops == [("customer.ensure", OutboxStatus.DONE), (HOSTED_CARD_PAGE, OutboxStatus.DONE)]
    assert service.check(order_id).state == "waiting"
    gw.complete_hosted_card_page(link.session_id, CardToken("pm_sim_ok_hosted1", "visa", "1881", 9, 2032))
    status = service.check(order_id)
    assert status.complete
    with site_db.read() as s:
        assert s.get(SalesOrder, order_id).payment_method_id == status.payment_method_row_id


def test_hosted_page_needs_a_success_url_and_sms(site_db) -> None:
    order_id = new_order(site_db, "BASIC")
    gw = SimulatedGateway(site_db)
    with pytest.raises(HostedCardError) as info:
        HostedCardService(site_db, gw, SimulatedSms(responder=None), ATTENDANT).send_link(order_id)
    assert "hosted_page_success_url" in str(info.value)
    with pytest.raises(HostedCardError) as info:
        HostedCardService(site_db, gw, None, ATTENDANT, success_url=SUCCESS).send_link(order_id)
    assert "reader" in str(info.value)
    with pytest.raises(HostedCardError):
        HostedCardService(site_db, gw, SimulatedSms(responder=None), ATTENDANT,
                          success_url=SUCCESS).check(order_id)
