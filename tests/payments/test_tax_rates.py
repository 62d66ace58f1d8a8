"""Sales tax through the billing steps (issue 13 item 6): the lane charge carries it, the subscription carries
the gateway's tax rate (so its renewal invoices are taxed), refunds give back the total. Simulated gateway on
SQLite; the Stripe requests against localstripe."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlmodel import select

from clarity_tui.config import TaxConfig
from clarity_tui.payments.simulated import SimulatedGateway, sim_token
from clarity_tui.services.billing import BillingService, sync_plans
from clarity_tui.services.card_present import (
    CARD_PRESENT_CHARGE,
    CARD_PRESENT_OPERATIONS,
    enqueue_charge,
    mark_card_present,
    reader_attended,
)
from clarity_tui.services.membership_actions import MembershipActions
from clarity_tui.services.outbox import OutboxProcessor, enqueue, make_key
from db.models import Customer, Outbox, SalesOrder, SimGatewayObject
from hardware.card_reader.simulated import SimulatedCardReader
from tests.helpers.actors import ATTENDANT, MANAGER
from tests.helpers.localstripe import API_KEY
from tests.helpers.stripe_recording import Recorded, RecordingClient
from tests.helpers.orders import new_order

FUTURE = dt.date.today().year + 2
EXCLUSIVE = TaxConfig(behavior="exclusive", rate_percent=Decimal("8.25"))
INCLUSIVE = TaxConfig(behavior="inclusive", rate_percent=Decimal("8.25"), display_name="TX sales tax")


def reader_card():  # noqa: ANN201
    from clarity_tui.payments import CardToken

    return CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE)


def billing(db, tax: TaxConfig | None) -> BillingService:  # noqa: ANN001
    return BillingService(db, SimulatedGateway(db), tax=tax)


def obj(db, object_id: str) -> dict:  # noqa: ANN001
    with db.read() as s:
        return dict(s.get(SimGatewayObject, object_id).data)


def objects(db, kind: str) -> list[tuple[str, dict]]:  # noqa: ANN001
    with db.read() as s:
        return [(r.id, dict(r.data)) for r in s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == kind)
                                                      .order_by(SimGatewayObject.created_at))]


def rate(data: dict) -> dict:
    """A tax rate object's name, percentage and inclusiveness."""
    return {k: data[k] for k in ("display_name", "percentage", "inclusive")}


def order(db, order_id: int) -> SalesOrder:  # noqa: ANN001
    with db.read() as s:
        return s.get(SalesOrder, order_id)


def sell(db, service: BillingService, plan: str = "DELUXE", promo: str | None = None) -> SalesOrder:  # noqa: ANN001
    order_id = new_order(db, plan, promo=promo)
    service.attach_card_token(order_id, reader_card())
    assert service.start_sale(order_id).completed
    return order(db, order_id)


def test_an_exclusive_sale_charges_the_total_and_its_renewals_are_taxed(demo_db) -> None:
    service = billing(demo_db, EXCLUSIVE)
    o = sell(demo_db, service)
    assert (o.subtotal_cents, o.tax_cents, o.due_today_cents) == (2999, 247, 3246)
    pi = obj(demo_db, o.gateway_payment_id)
    assert pi["amount"] == 3246 and pi["metadata"]["tax_cents"] == "247"
    # The subscription carries the gateway's tax rate (found or made from the settings' spec).
    sub = obj(demo_db, o.gateway_subscription_id)
    (txr,) = sub["default_tax_rates"]
    assert rate(obj(demo_db, txr)) == {"display_name": "Sales tax", "percentage": "8.25", "inclusive": False}
    with demo_db.read() as s:
        step = s.exec(select(Outbox).where(Outbox.order_id == o.id, Outbox.operation == "subscription.create")).one()
    assert step.payload["tax_rate"] == {"display_name": "Sales tax", "percentage": "8.25", "inclusive": False}
    assert step.result["tax_rate_ids"] == [txr]
    # A month on, the renewal invoice is taxed the same way: $29.99 + $2.47.
    gw = service.gateway
    gw.advance_clock(40, failure_rate=0)
    invoices = [d for _, d in objects(demo_db, "invoice") if d.get("subscription") == o.gateway_subscription_id]
    assert invoices and all((i["tax"], i["total"]) == (247, 3246) for i in invoices), invoices
    # A second sale finds the same tax rate (one per name, rate and inclusiveness).
    other = sell(demo_db, service, "BASIC")
    assert obj(demo_db, other.gateway_subscription_id)["default_tax_rates"] == [txr]
    assert len(objects(demo_db, "tax_rate")) == 1


def test_an_inclusive_sale_charges_the_price_and_holds_the_tax(demo_db) -> None:
    service = billing(demo_db, INCLUSIVE)
    o = sell(demo_db, service, promo="FIRSTMONTH")  # $29.99 − $10: the tax is in $19.99
    assert (o.discount_cents, o.tax_cents, o.due_today_cents) == (1000, 152, 1999)
    pi = obj(demo_db, o.gateway_payment_id)
    assert pi["amount"] == 1999 and pi["metadata"]["tax_cents"] == "152"
    (txr,) = obj(demo_db, o.gateway_subscription_id)["default_tax_rates"]
    assert rate(obj(demo_db, txr)) == {"display_name": "TX sales tax", "percentage": "8.25", "inclusive": True}
    service.gateway.advance_clock(40, failure_rate=0)
    invoices = [d for _, d in objects(demo_db, "invoice") if d.get("subscription") == o.gateway_subscription_id]
    assert invoices and all((i["tax"], i["total"]) == (229, 2999) for i in invoices), invoices


def test_no_tax_leaves_the_charge_and_the_subscription_untaxed(demo_db) -> None:
    o = sell(demo_db, billing(demo_db, TaxConfig()))
    assert (o.tax_cents, o.due_today_cents) == (0, 2999)
    assert "tax_cents" not in obj(demo_db, o.gateway_payment_id)["metadata"]
    assert not obj(demo_db, o.gateway_subscription_id).get("default_tax_rates")
    assert objects(demo_db, "tax_rate") == []


def test_a_migration_charges_nothing_and_its_renewals_are_taxed(demo_db) -> None:
    service = billing(demo_db, EXCLUSIVE)
    order_id = new_order(demo_db, "ULTIMATE", kind="migration")
    service.attach_card_token(order_id, reader_card())
    assert service.start_migration(order_id, dt.date.today() + dt.timedelta(days=11)).completed
    o = order(demo_db, order_id)
    assert (o.due_today_cents, o.tax_cents, o.gateway_payment_id) == (0, 0, None)
    (txr,) = obj(demo_db, o.gateway_subscription_id)["default_tax_rates"]
    assert obj(demo_db, txr)["percentage"] == "8.25"


def test_the_tax_rate_is_fixed_when_the_order_is_made_and_a_later_replayer_keeps_it(demo_db) -> None:
    """Offline at Agree: the rows wait. The app's replayer (which knows nothing of the settings) sends them later,
    with the charge's total and the subscription's tax rate as they were when the customer signed."""
    service = billing(demo_db, EXCLUSIVE)
    order_id = new_order(demo_db, "DELUXE")
    service.attach_card_token(order_id, reader_card())
    service.gateway.online = False
    assert service.start_sale(order_id).pending_sync
    replayer = BillingService(demo_db, SimulatedGateway(demo_db))  # no tax settings
    replayer.processor.replay_pending()
    o = order(demo_db, order_id)
    assert o.state == "completed" and obj(demo_db, o.gateway_payment_id)["amount"] == 3246
    assert len(obj(demo_db, o.gateway_subscription_id)["default_tax_rates"]) == 1


def test_a_full_refund_returns_the_total_and_partial_refunds_add_up_to_it(demo_db) -> None:
    service = billing(demo_db, EXCLUSIVE)
    o = sell(demo_db, service)
    actions = MembershipActions(service)
    assert actions.refund(MANAGER, o.id, 1000).status == "done"
    assert actions.refund(MANAGER, o.id).status == "done"  # all that is left: $22.46
    done = order(demo_db, o.id)
    assert done.refunded_cents == 3246 == obj(demo_db, o.gateway_payment_id)["refunded"]
    refunds = sorted(d["amount"] for _, d in objects(demo_db, "refund"))
    assert refunds == [1000, 2246]


def test_a_card_present_first_payment_is_the_total_with_its_tax(demo_db) -> None:
    order_id = new_order(demo_db, "DELUXE")
    mark_card_present(demo_db, order_id, ATTENDANT)
    service = billing(demo_db, EXCLUSIVE)
    with reader_attended(SimulatedCardReader(delay=0)):
        assert service.start_sale(order_id).completed
    o = order(demo_db, order_id)
    assert (o.tax_cents, o.due_today_cents) == (247, 3246)
    with demo_db.read() as s:
        row = s.exec(select(Outbox).where(Outbox.order_id == order_id, Outbox.operation == CARD_PRESENT_CHARGE)).one()
    assert (row.payload["amount_cents"], row.payload["tax_cents"]) == (3246, 247)
    pi = obj(demo_db, o.gateway_payment_id)
    assert pi["amount"] == 3246 and pi["metadata"]["tax_cents"] == "247"


def test_a_card_present_row_without_tax_sends_no_tax_metadata(demo_db) -> None:
    """Rows written before tax existed (no `tax_cents` in the payload) charge as they always did."""
    gw = SimulatedGateway(demo_db)
    order_id = new_order(demo_db, "DELUXE")
    mark_card_present(demo_db, order_id, ATTENDANT)
    with demo_db.write() as s:
        o = s.get(SalesOrder, order_id)
        o.due_today_cents = 2999
        customer = s.get(Customer, o.customer_id)
        enqueue(s, order_id=order_id, operation="customer.ensure", payload={"customer_id": customer.id},
                idempotency_key=make_key(o.idempotency_key, "customer"))
        s.add(o)
        row = enqueue_charge(s, o, currency="usd")
        row.payload = {k: v for k, v in row.payload.items() if k != "tax_cents"}
        s.add(row)
    from clarity_tui.services.billing_steps import OPERATIONS

    with reader_attended(SimulatedCardReader(delay=0)):
        result = OutboxProcessor(demo_db, gw, {**OPERATIONS, **CARD_PRESENT_OPERATIONS}).run_order(order_id)
    assert result.error is None
    pi = obj(demo_db, order(demo_db, order_id).gateway_payment_id)
    assert pi["amount"] == 2999 and "tax_cents" not in pi["metadata"]


def test_the_catalogue_sync_makes_the_tax_rate_once(demo_db) -> None:
    gw = SimulatedGateway(demo_db)
    first = sync_plans(demo_db, gw, tax=EXCLUSIVE)
    again = sync_plans(demo_db, gw, tax=EXCLUSIVE)
    taxes = [row for row in first if row[1] == "tax_rate"]
    assert taxes == [row for row in again if row[1] == "tax_rate"]
    ((label, _, txr),) = taxes
    assert label == "Sales tax 8.25%" and obj(demo_db, txr)["inclusive"] is False
    assert len(objects(demo_db, "tax_rate")) == 1
    assert not [row for row in sync_plans(demo_db, gw, tax=TaxConfig()) if row[1] == "tax_rate"]
    # Inclusive is another rate.
    sync_plans(demo_db, gw, tax=TaxConfig(behavior="inclusive", rate_percent=Decimal("8.25")))
    assert len(objects(demo_db, "tax_rate")) == 2


def test_plans_sync_on_the_command_line_makes_the_tax_rate(demo_db, settings, monkeypatch) -> None:  # noqa: ANN001
    from click.testing import CliRunner

    from clarity_tui.cli import cli

    monkeypatch.setenv("CLARITY_BILLING__TAX__BEHAVIOR", "exclusive")
    monkeypatch.setenv("CLARITY_BILLING__TAX__RATE_PERCENT", "8.25")
    result = CliRunner().invoke(cli, ["--db", settings.resolved_database_url(), "--simulate", "plans", "sync"])
    assert result.exit_code == 0, result.output
    assert "Sales tax 8.25%" in result.output and "tax_rate" in result.output
    (_, data), = objects(demo_db, "tax_rate")
    assert rate(data) == {"display_name": "Sales tax", "percentage": "8.25", "inclusive": False}


# --- Stripe: what the SDK sends (localstripe has tax rates) -----------------------------------------------------


class _TaxRatesRecorder(RecordingClient):
    """localstripe lists tax rates but refuses the `active` filter Stripe takes: it is dropped on the way
    (after recording), as the shared recorder drops what localstripe lacks on POSTs."""

    def request(self, method, url, headers, post_data=None):  # noqa: ANN001, ANN201
        parts = urlsplit(url)
        if method.lower() == "get" and parts.path == "/v1/tax_rates":
            query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "active"])
            url = urlunsplit(parts._replace(query=query))
            self.recorded.append(Recorded("GET", parts.path, dict(parse_qsl(parts.query)), None))
            return super(RecordingClient, self).request(method, url, headers, post_data)
        return super().request(method, url, headers, post_data)


def test_stripe_gets_the_total_the_tax_metadata_and_the_default_tax_rate(demo_db, localstripe) -> None:  # noqa: ANN001
    from clarity_tui.payments.stripe_gateway import StripeGateway

    recorder = _TaxRatesRecorder()
    stripe_gateway = StripeGateway(API_KEY, api_base=localstripe.url, http_client=recorder, raw_card_data_access=True)
    service = BillingService(demo_db, stripe_gateway, tax=EXCLUSIVE)
    order_id = new_order(demo_db, "DELUXE")
    service.add_manual_card(order_id, "4242424242424242", f"12/{FUTURE % 100}", "123")
    out = service.start_sale(order_id)
    assert out.completed, out
    (pi,) = [r for r in recorder.calls("POST", "/v1/payment_intents") if r.path == "/v1/payment_intents"]
    assert pi.params["amount"] == "3246" and pi.params["metadata[tax_cents]"] == "247"
    (txr_create,) = recorder.calls("POST", "/v1/tax_rates")
    assert (txr_create.params["display_name"], txr_create.params["inclusive"]) == ("Sales tax", "false")
    assert Decimal(txr_create.params["percentage"]) == Decimal("8.25")
    (sub,) = [r for r in recorder.calls("POST", "/v1/subscriptions") if r.path == "/v1/subscriptions"]
    assert sub.params["default_tax_rates[0]"].startswith("txr_")
    (listed,) = recorder.calls("GET", "/v1/tax_rates")  # found or made: looked for first
    assert listed.params["active"] == "true"
