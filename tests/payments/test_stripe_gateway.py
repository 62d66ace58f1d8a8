"""StripeGateway against a real localstripe server (plus the recording client for what it lacks)."""

from __future__ import annotations

import datetime as dt

import pytest

from clarity_tui.payments import (
    CardDeclined,
    CardToken,
    CouponSpec,
    CustomerInfo,
    GatewayAuthError,
    GatewayUnavailable,
    ManualCard,
    PlanSpec,
)
from clarity_tui.payments.base import to_epoch

FUTURE = dt.date.today().year + 3


def keyed(number: str = "4242424242424242") -> ManualCard:
    return ManualCard.parse(number, f"12/{FUTURE % 100:02d}", "123")


def test_customer_card_and_charge(stripe_gateway, localstripe, recorder) -> None:
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-1", "Ada Lovelace", "ada@example.com"), idempotency_key="o1:customer")
    assert cus.startswith("cus_")
    token = gw.tokenize_card(keyed(), idempotency_key="o1:tokenize")
    assert (token.brand, token.last4, token.exp_year) == ("visa", "4242", FUTURE)
    saved = gw.save_card(cus, token, idempotency_key="o1:card")
    assert saved.payment_method_id == token.payment_method_id and saved.is_default
    cards = gw.list_cards(cus)
    assert [(c.last4, c.is_default) for c in cards] == [("4242", True)]
    # The SetupIntent saved the card with no charge.
    assert recorder.calls("POST", "/v1/setup_intents")
    assert localstripe.list("charges") == []
    charge = gw.charge(cus, saved.payment_method_id, 2999, idempotency_key="o1:charge")
    assert charge.status == "succeeded" and charge.amount_cents == 2999
    charges = localstripe.list("charges")
    assert [c["amount"] for c in charges] == [2999]
    # Every side-effect call carried its idempotency key.
    for rec in recorder.recorded:
        if rec.method == "POST":
            assert rec.idempotency_key and rec.idempotency_key.startswith("o1:"), rec


def test_same_key_never_charges_twice(stripe_gateway, localstripe) -> None:
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-2"), idempotency_key="o2:customer")
    assert gw.ensure_customer(CustomerInfo("C-2"), idempotency_key="o2:customer") == cus
    saved = gw.save_card(cus, CardToken("pm_card_visa"), idempotency_key="o2:card")
    first = gw.charge(cus, saved.payment_method_id, 1500, idempotency_key="o2:charge")
    again = gw.charge(cus, saved.payment_method_id, 1500, idempotency_key="o2:charge")
    assert again.payment_id == first.payment_id
    assert len(localstripe.list("charges")) == 1
    assert len(localstripe.list("customers")) == 1


@pytest.mark.parametrize("number", ["4000000000000002", "4000000000009995", "4000000000000069"])
def test_declined_cards_when_saving(stripe_gateway, localstripe, number) -> None:
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-3"), idempotency_key="o3:customer")
    token = gw.tokenize_card(keyed(number), idempotency_key="o3:tok")
    with pytest.raises(CardDeclined) as info:
        gw.save_card(cus, token, idempotency_key="o3:card")
    assert "declined" in str(info.value).lower() and "another card" in str(info.value)
    assert gw.list_cards(cus) == []


def test_decline_when_charging(stripe_gateway, localstripe) -> None:
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-4"), idempotency_key="o4:customer")
    saved = gw.save_card(cus, CardToken("pm_card_chargeCustomerFail"), idempotency_key="o4:card")
    with pytest.raises(CardDeclined) as info:
        gw.charge(cus, saved.payment_method_id, 999, idempotency_key="o4:charge")
    assert info.value.decline_code in ("card_declined", "generic_decline")
    assert [c["status"] for c in localstripe.list("charges")] == ["failed"]


def test_detach_and_default(stripe_gateway) -> None:
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-5"), idempotency_key="o5:customer")
    a = gw.save_card(cus, gw.tokenize_card(keyed(), idempotency_key="o5:t1"), idempotency_key="o5:c1")
    b = gw.save_card(cus, gw.tokenize_card(keyed("5555555555554444"), idempotency_key="o5:t2"),
                     idempotency_key="o5:c2", make_default=False)
    assert {c.payment_method_id: c.is_default for c in gw.list_cards(cus)} == {a.payment_method_id: True,
                                                                               b.payment_method_id: False}
    gw.set_default_card(cus, b.payment_method_id, idempotency_key="o5:default")
    assert {c.payment_method_id for c in gw.list_cards(cus) if c.is_default} == {b.payment_method_id}
    gw.detach_card(a.payment_method_id, idempotency_key="o5:detach")
    assert [c.payment_method_id for c in gw.list_cards(cus)] == [b.payment_method_id]


def test_plans_subscription_anchor_and_coupon(stripe_gateway, localstripe, recorder) -> None:
    gw = stripe_gateway
    synced = gw.sync_plan(PlanSpec("BASIC", "Basic Wash", 1999))
    assert gw.sync_plan(PlanSpec("BASIC", "Basic Wash", 1999)) == synced  # idempotent sync
    assert [p["id"] for p in localstripe.list("plans")] == [synced.price_id]
    assert [p["id"] for p in localstripe.list("products")] == [synced.product_id]
    coupon = gw.sync_coupon(CouponSpec("SAVE20", percent_off=20))
    cus = gw.ensure_customer(CustomerInfo("C-6"), idempotency_key="o6:customer")
    gw.save_card(cus, CardToken("pm_card_visa"), idempotency_key="o6:card")
    anchor = dt.date.today() + dt.timedelta(days=17)
    sub = gw.create_subscription(cus, synced.price_id, first_billing=anchor, coupon_id=coupon,
                                 metadata={"clarity_order": "6"}, idempotency_key="o6:subscription")
    # Stripe says "trialing"; localstripe leaves a trial subscription "incomplete" (no invoice yet).
    assert sub.status in {"trialing", "incomplete"} and sub.plan_price_id == synced.price_id
    assert sub.trial_end == dt.datetime.fromtimestamp(to_epoch(anchor), dt.UTC)
    # Exactly what Stripe gets (localstripe ignores discounts; the recorder shows them).
    (rec,) = recorder.calls("POST", "/v1/subscriptions")
    assert rec.params == {
        "customer": cus, "items[0][plan]": synced.price_id, "trial_end": str(to_epoch(anchor)),
        "proration_behavior": "none", "metadata[clarity_order]": "6", "discounts[0][coupon]": coupon,
    }
    assert rec.idempotency_key == "o6:subscription"
    # Nothing charged today.
    assert localstripe.list("charges") == []
    (coupon_req,) = recorder.calls("POST", "/v1/coupons")
    assert coupon_req.params == {"id": "clarity-save20", "duration": "once", "percent_off": "20",
                                 "metadata[clarity_promotion]": "SAVE20"}


def test_change_pause_resume_cancel_refund(stripe_gateway, localstripe, recorder) -> None:
    gw = stripe_gateway
    basic = gw.sync_plan(PlanSpec("BASIC", "Basic", 1999))
    ultimate = gw.sync_plan(PlanSpec("ULTIMATE", "Ultimate", 3999))
    cus = gw.ensure_customer(CustomerInfo("C-7"), idempotency_key="o7:customer")
    card = gw.save_card(cus, CardToken("pm_card_visa"), idempotency_key="o7:card")
    sub = gw.create_subscription(cus, basic.price_id, first_billing=dt.date.today() + dt.timedelta(days=30),
                                 idempotency_key="o7:sub")
    changed = gw.change_plan(sub.subscription_id, ultimate.price_id, idempotency_key="o7:upgrade")
    assert changed.plan_price_id == ultimate.price_id
    upgrade = recorder.calls("POST", f"/v1/subscriptions/{sub.subscription_id}")[-1]
    assert upgrade.params["proration_behavior"] == "none"  # the upgrade's difference is charged by us (issue 12)
    assert upgrade.params["items[0][plan]"] == ultimate.price_id
    resume_on = dt.date.today() + dt.timedelta(days=40)
    assert gw.pause(sub.subscription_id, idempotency_key="o7:pause", resumes_at=resume_on).paused
    pause = recorder.calls("POST", f"/v1/subscriptions/{sub.subscription_id}")[-1]
    assert pause.params == {"pause_collection[behavior]": "void",
                            "pause_collection[resumes_at]": str(to_epoch(resume_on))}
    assert pause.idempotency_key == "o7:pause"
    assert not gw.resume(sub.subscription_id, idempotency_key="o7:resume").paused
    assert recorder.calls("POST", f"/v1/subscriptions/{sub.subscription_id}")[-1].params == {"pause_collection": ""}
    cancelled = gw.cancel_at_period_end(sub.subscription_id, idempotency_key="o7:cancel")
    assert cancelled.cancel_at_period_end
    charge = gw.charge(cus, card.payment_method_id, 3999, idempotency_key="o7:charge")
    refund = gw.refund(charge.payment_id, amount_cents=1000, idempotency_key="o7:refund")
    assert refund.amount_cents == 1000 and refund.status == "succeeded"
    assert gw.refund(charge.payment_id, amount_cents=1000, idempotency_key="o7:refund").refund_id == refund.refund_id
    assert len(localstripe.list("refunds", charge=charge.charge_id)) == 1


def test_wrong_key_and_network_down(localstripe) -> None:
    from clarity_tui.payments.stripe_gateway import StripeGateway

    with pytest.raises(GatewayAuthError) as info:
        StripeGateway("bad-key", api_base=localstripe.url).check()
    assert "api_key" in str(info.value)
    with pytest.raises(GatewayAuthError):
        StripeGateway("", api_base=localstripe.url)
    from tests.helpers.localstripe import free_port

    down = StripeGateway("sk_test_x", api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GatewayUnavailable) as info:
        down.ensure_customer(CustomerInfo("C-8"), idempotency_key="o8:customer")
    assert info.value.transient and "sync" in str(info.value)


def test_gateway_timeout_is_transient() -> None:
    """A server that accepts the connection but never answers: a timeout, mapped to 'retry later'."""
    import socket

    from clarity_tui.payments.stripe_gateway import StripeGateway

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        gw = StripeGateway("sk_test_x", api_base=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        with pytest.raises(GatewayUnavailable):
            gw.ensure_customer(CustomerInfo("C-9"), idempotency_key="o9:customer")


def test_an_earlier_charge_and_subscription_are_found_by_order_key(stripe_gateway, localstripe) -> None:
    """What a replay a day late asks before acting again (idempotency keys expire after 24 hours)."""
    gw = stripe_gateway
    cus = gw.ensure_customer(CustomerInfo("C-9"), idempotency_key="o9:customer")
    other = gw.ensure_customer(CustomerInfo("C-10"), idempotency_key="o10:customer")
    saved = gw.save_card(cus, CardToken("pm_card_visa"), idempotency_key="o9:card")
    assert gw.find_charge(cus, "order-9") is None and gw.find_subscription(cus, "order-9") is None
    gw.charge(cus, saved.payment_method_id, 500, metadata={"order_key": "order-8"}, idempotency_key="o8:charge")
    charge = gw.charge(cus, saved.payment_method_id, 2999, metadata={"clarity_order": "9", "order_key": "order-9"},
                       idempotency_key="o9:charge")
    found = gw.find_charge(cus, "order-9")
    assert found is not None and (found.payment_id, found.amount_cents) == (charge.payment_id, 2999)
    assert found.charge_id == charge.charge_id
    assert gw.find_charge(other, "order-9") is None  # another customer's charges are not looked at
    refund = gw.refund(charge.payment_id, amount_cents=700, idempotency_key="o9:refund:700")
    found_refund = gw.find_refund(charge.payment_id, "o9:refund:700")
    assert found_refund is not None and (found_refund.refund_id, found_refund.amount_cents) == (refund.refund_id, 700)
    assert gw.find_refund(charge.payment_id, "o9:refund:other") is None
    synced = gw.sync_plan(PlanSpec("BASIC", "Basic Wash", 1999))
    sub = gw.create_subscription(cus, synced.price_id, first_billing=dt.date.today() + dt.timedelta(days=30),
                                 metadata={"order_key": "order-9"}, idempotency_key="o9:subscription")
    assert gw.find_subscription(cus, "order-9").subscription_id == sub.subscription_id
    assert gw.find_subscription(cus, "order-8") is None


async def test_the_simulated_reader_hands_stripe_a_test_payment_method(stripe_gateway, localstripe) -> None:
    """Stripe gateway in test mode with no physical reader: the simulated reader's card is one Stripe
    knows (pm_card_visa), so the card is saved and charged for real on the test server."""
    from clarity_tui.config import Settings
    from clarity_tui.devices import build_devices

    settings = Settings(payments={"gateway": "stripe"}, hardware={"card_reader": {"options": {"delay": 0.01}}})
    reader = build_devices(settings).card_reader
    await reader.open()
    token = await reader.collect_card_to_save()
    assert (token.payment_method_id, token.brand, token.last4) == ("pm_card_visa", "visa", "4242")
    cus = stripe_gateway.ensure_customer(CustomerInfo("C-11"), idempotency_key="o11:customer")
    saved = stripe_gateway.save_card(cus, token, idempotency_key="o11:card")
    assert stripe_gateway.charge(cus, saved.payment_method_id, 1999, idempotency_key="o11:charge").status == "succeeded"
    # With the simulated gateway the reader keeps its own pm_sim_ tokens.
    plain = build_devices(Settings(hardware={"card_reader": {"options": {"delay": 0.01}}})).card_reader
    await plain.open()
    assert (await plain.collect_card_to_save()).payment_method_id.startswith("pm_sim_")
