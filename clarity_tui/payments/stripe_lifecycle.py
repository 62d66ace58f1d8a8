"""Stripe's side of the membership lifecycle (issue 13): the Events API and fresh objects.

A mixin of StripeGateway (split out to keep stripe_gateway.py to sales and money). It uses the gateway's
`v1` and `currency`. Every answer is read from the SDK's object turned into plain dicts, in the
shapes of the pinned API version (`STRIPE_API_VERSION`, 2025-02-24.acacia), with the newer places read as
a fallback where Basil (2025-03-31) moved a field, so an account whose events were rendered in a newer
version still reconciles.

Paging the Events API ("Both parameters accept an existing object ID value and return objects in reverse
chronological order. The ending_before parameter returns objects listed before the named object."
-- docs.stripe.com/api/pagination): a page asked with `ending_before=<cursor>` holds the `limit` events
just newer than the cursor, newest first, and `has_more` says whether newer ones follow. Reversed, that page
is the next batch oldest first; its newest event is the next cursor. The SDK's own backwards auto-paging does
exactly this (stripe-python `ListObject._auto_paging_iter`: `reversed(page)`, then `ending_before=data[0].id`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe

from clarity_tui.payments.lifecycle import (
    HANDLED_EVENT_TYPES,
    CardState,
    ChargeState,
    CursorExpired,
    DisputeState,
    EventPage,
    GatewayEvent,
    InvoiceState,
    RefundState,
    SubscriptionState,
    TaxRateSpec,
    UnknownObject,
    epoch_to_utc,
    event_from_json,
    oldest_first,
)
from clarity_tui.payments.stripe_errors import map_stripe_error

# The family's extra-vehicle subscription item carries this in its metadata (stripe_gateway.EXTRA_ITEM).
EXTRA_ITEM, EXTRA_VEHICLE = "clarity_item", "extra_vehicle"
MAX_PAGE = 100  # "limit ... ranging between 1 and 100" (docs.stripe.com/api/pagination)
# Invoice fields the mapping reads expanded: the PaymentIntent (its last_payment_error says why the
# last attempt failed) and the Charge (failure_message, for a charge without a PaymentIntent).
INVOICE_EXPAND = ["payment_intent", "charge"]


def _plain(obj: Any) -> Any:
    """The SDK's StripeObject as plain dicts and lists (StripeObject is no dict: `.to_dict()`)."""
    if obj is None:
        return None
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _id(ref: Any) -> str | None:
    """An expandable field: the id string, or the expanded object's id."""
    if isinstance(ref, str):
        return ref or None
    if isinstance(ref, dict):
        value = ref.get("id")
        return str(value) if value else None
    return None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _missing(exc: stripe.StripeError) -> bool:
    """Stripe's 404 for an id it does not know: code resource_missing ("No such invoice: 'in_...'")."""
    return getattr(exc, "code", None) == "resource_missing" or (getattr(exc, "http_status", None) or 0) == 404


def _portal_not_configured(exc: stripe.StripeError) -> bool:
    """Stripe refuses a portal session until the portal settings are saved in the Dashboard: "You can't
    create a portal session in test mode until you save your customer portal settings in test mode at
    https://dashboard.stripe.com/test/settings/billing/portal." (the live-mode one says "No configuration
    provided and your live mode default configuration has not been created ...")."""
    if not isinstance(exc, stripe.InvalidRequestError) or _missing(exc):
        return False
    text = str(getattr(exc, "user_message", None) or exc).lower()
    return "portal settings" in text or "default configuration" in text


def _base_item(sub: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's own item: not the family's extra-vehicle item (stripe_gateway.EXTRA_ITEM marks it)."""
    items = [i for i in (_get(sub, "items", "data") or []) if isinstance(i, dict)]
    return next((i for i in items if _get(i, "metadata", EXTRA_ITEM) != EXTRA_VEHICLE), items[0] if items else None)


def _percentage(value: Any) -> Decimal | None:
    """8.25, "8.250" and Decimal("8.25") alike (Stripe answers a JSON number)."""
    try:
        return Decimal(str(value)).normalize()
    except (InvalidOperation, ValueError):
        return None


def _percentage_text(value: Any) -> str:
    return format(_percentage(value) or Decimal(0), "f")  # "10", not normalize()'s "1E+1"


def _tax_key(spec: TaxRateSpec) -> str:
    """The create's idempotency key: the spec's own, so every terminal syncing it sends the same one."""
    raw = f"{spec.display_name}|{_percentage_text(spec.percentage)}|{int(spec.inclusive)}"
    return "tax_rate:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


class StripeLifecycle:
    """LifecycleGateway on Stripe: events (Events API), fresh objects, the card-update link, tax rates."""

    currency: str
    v1: Any

    # --- plumbing -----------------------------------------------------------------------------------------
    def _request(self, fn: Callable[..., Any], *args: Any, key: str | None = None, missing: str | None = None,
                 **params: Any) -> dict[str, Any]:
        """One SDK call -> the object as plain dicts. `missing` names the object for UnknownObject."""
        options = {"idempotency_key": key} if key else None
        try:
            return _plain(fn(*args, params=params or None, options=options))
        except stripe.InvalidRequestError as exc:
            if missing is not None and _missing(exc):
                raise UnknownObject(f"The payment gateway has no {missing} {args[0] if args else ''}".rstrip() + ".",
                                    code="unknown_object") from None
            raise map_stripe_error(exc) from None
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from None

    # --- events ---------------------------------------------------------------------------------------------
    def latest_event_id(self) -> str | None:
        # The newest event of a type the sync handles: a cursor that is always in the filtered list.
        page = self._request(self.v1.events.list, limit=1, types=list(HANDLED_EVENT_TYPES))
        data = page.get("data") or []
        return str(data[0]["id"]) if data else None

    def list_events(self, *, after: str | None, types: Sequence[str], limit: int = 100) -> EventPage:
        limit = max(1, min(MAX_PAGE, int(limit)))
        filters: dict[str, Any] = {"types": list(types)} if types else {}
        if after:
            try:
                page = _plain(self.v1.events.list(params={"ending_before": after, "limit": limit, **filters}))
            except stripe.InvalidRequestError as exc:
                # Stripe keeps events 30 days; an older (or unknown) cursor is refused as "No such event:
                # 'evt_...'" on the ending_before parameter.
                if _missing(exc) or getattr(exc, "param", None) in ("ending_before", "starting_after"):
                    raise CursorExpired(f"The payment gateway no longer has event {after} (events are kept 30 days): "
                                        "memberships are reconciled one by one instead.",
                                        code="cursor_expired") from None
                raise map_stripe_error(exc) from None
            except stripe.StripeError as exc:
                raise map_stripe_error(exc) from None
            newest_first = list(page.get("data") or [])
            return EventPage([self._event(e) for e in reversed(newest_first)], bool(page.get("has_more")))
        return self._oldest_events(filters, limit)

    def _oldest_events(self, filters: dict[str, Any], limit: int) -> EventPage:
        """No cursor: the oldest kept events. Stripe lists newest first, so walk back to the end with
        `starting_after` (the next page: "starting_after=obj_foo to fetch the next page of the list"),
        keeping only the oldest `limit + 1` seen."""
        tail: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": MAX_PAGE, **filters}
            if cursor:
                params["starting_after"] = cursor
            page = self._request(self.v1.events.list, **params)
            data = list(page.get("data") or [])
            if not data:
                break
            tail = (tail + data)[-(limit + 1):]
            cursor = str(data[-1]["id"])
            if not page.get("has_more"):
                break
        oldest_first = list(reversed(tail))
        return EventPage([self._event(e) for e in oldest_first[:limit]], len(oldest_first) > limit)

    @staticmethod
    def _event(body: dict[str, Any]) -> GatewayEvent:
        return event_from_json(body)

    # --- subscriptions --------------------------------------------------------------------------------------------
    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        sub = self._request(self.v1.subscriptions.retrieve, subscription_id, missing="subscription")
        return self._subscription_state(sub)

    def _subscription_state(self, sub: dict[str, Any]) -> SubscriptionState:
        base = _base_item(sub)
        # Acacia and older: the period is the subscription's. Basil (2025-03-31) moved it to each item
        # ("current_period_start and current_period_end fields are no longer available on the subscription
        # resource ... access the subscription item's billing periods directly using
        # items.data.current_period_end"): read the subscription first, then the base item.
        start = sub.get("current_period_start") or _get(base, "current_period_start")
        end = sub.get("current_period_end") or _get(base, "current_period_end")
        price = _get(base, "price") or _get(base, "plan")
        pause = sub.get("pause_collection")
        return SubscriptionState(
            subscription_id=str(sub["id"]), customer_id=_id(sub.get("customer")) or "",
            status=str(sub.get("status") or "unknown"),
            current_period_start=epoch_to_utc(start), current_period_end=epoch_to_utc(end),
            cancel_at_period_end=bool(sub.get("cancel_at_period_end")), cancel_at=epoch_to_utc(sub.get("cancel_at")),
            canceled_at=epoch_to_utc(sub.get("canceled_at")), ended_at=epoch_to_utc(sub.get("ended_at")),
            paused=bool(pause), pause_resumes_at=epoch_to_utc(_get(pause, "resumes_at")),
            latest_invoice_id=_id(sub.get("latest_invoice")), price_id=_id(price),
            metadata=_metadata(sub.get("metadata")),
        )

    # --- invoices -------------------------------------------------------------------------------------------------------
    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        inv = self._request(self.v1.invoices.retrieve, invoice_id, missing="invoice", expand=INVOICE_EXPAND)
        return self._invoice_state(inv)

    def open_invoices(self, subscription_id: str) -> list[InvoiceState]:
        page = self._request(self.v1.invoices.list, subscription=subscription_id, status="open", limit=MAX_PAGE,
                             expand=[f"data.{f}" for f in INVOICE_EXPAND])
        return oldest_first(self._invoice_state(inv) for inv in page.get("data") or [])

    def invoices_since(self, subscription_id: str, since: dt.datetime) -> list[InvoiceState]:
        # Invoices list newest first; `created[gte]` bounds it, `starting_after` pages on
        # (docs.stripe.com/api/invoices/list, /api/pagination).
        params: dict[str, Any] = {"subscription": subscription_id, "created": {"gte": int(since.timestamp())},
                                  "limit": MAX_PAGE, "expand": [f"data.{f}" for f in INVOICE_EXPAND]}
        states: list[InvoiceState] = []
        while True:
            page = self._request(self.v1.invoices.list, **params)
            data = list(page.get("data") or [])
            states += [self._invoice_state(inv) for inv in data]
            if not data or not page.get("has_more"):
                break
            params["starting_after"] = str(data[-1]["id"])
        return oldest_first(states)

    @staticmethod
    def _subscription_line(inv: dict[str, Any]) -> dict[str, Any] | None:
        """The line the subscription's price made (acacia: `type: "subscription"`; Basil: `parent.type:
        "subscription_item_details"`), prorations last."""
        lines = [ln for ln in (_get(inv, "lines", "data") or []) if isinstance(ln, dict)]
        subs = [ln for ln in lines if ln.get("type") == "subscription"
                or _get(ln, "parent", "type") == "subscription_item_details"]
        subs.sort(key=lambda ln: bool(ln.get("proration") or _get(ln, "parent", "subscription_item_details",
                                                                  "proration")))
        return subs[0] if subs else None

    @staticmethod
    def _invoice_tax(inv: dict[str, Any]) -> int:
        # Acacia: `tax` ("the sum of all the tax amounts on this invoice", null without tax) and the per-rate
        # `total_tax_amounts`; Basil replaced both with `total_taxes` (docs.stripe.com/changelog/basil/
        # 2025-03-31/invoice-tax-configurations).
        if inv.get("tax") is not None:
            return _int(inv["tax"])
        for field in ("total_tax_amounts", "total_taxes"):
            amounts = inv.get(field)
            if isinstance(amounts, list) and amounts:
                return sum(_int(_get(a, "amount")) for a in amounts)
        return 0

    def _invoice_state(self, inv: dict[str, Any]) -> InvoiceState:
        line = self._subscription_line(inv)
        subscription = (_id(inv.get("subscription")) or _id(_get(inv, "parent", "subscription_details", "subscription"))
                        or _id(_get(line, "subscription"))
                        or _id(_get(line, "parent", "subscription_item_details", "subscription")))
        pi = inv.get("payment_intent")
        payment_id = _id(pi)
        if payment_id is None:  # Basil: invoice.payments (when the account's rendering has it)
            for payment in _get(inv, "payments", "data") or []:
                payment_id = _id(_get(payment, "payment", "payment_intent"))
                if payment_id:
                    break
        charge = inv.get("charge")
        charge_id = _id(charge) or (_id(_get(pi, "latest_charge")) if isinstance(pi, dict) else None)
        status = str(inv.get("status") or "draft")
        reason = code = None
        if status != "paid":
            err = _get(pi, "last_payment_error") if isinstance(pi, dict) else None
            if isinstance(err, dict):
                reason = err.get("message")
                code = err.get("decline_code") or err.get("code")
            if reason is None and isinstance(charge, dict) and charge.get("status") == "failed":
                reason = charge.get("failure_message")
                code = code or _get(charge, "outcome", "reason") or charge.get("failure_code")
            finalization = inv.get("last_finalization_error")
            if reason is None and isinstance(finalization, dict):
                reason, code = finalization.get("message"), code or finalization.get("code")
        return InvoiceState(
            invoice_id=str(inv["id"]), customer_id=_id(inv.get("customer")) or "", subscription_id=subscription,
            status=status, amount_due=_int(inv.get("amount_due")), amount_paid=_int(inv.get("amount_paid")),
            amount_remaining=_int(inv.get("amount_remaining")), tax_cents=self._invoice_tax(inv),
            currency=str(inv.get("currency") or self.currency), billing_reason=inv.get("billing_reason"),
            attempt_count=_int(inv.get("attempt_count")),
            next_payment_attempt=epoch_to_utc(inv.get("next_payment_attempt")),
            period_start=epoch_to_utc(_get(line, "period", "start")), period_end=epoch_to_utc(_get(line, "period", "end")),
            payment_id=payment_id, charge_id=charge_id, failure_reason=reason, failure_code=code,
            created=epoch_to_utc(inv.get("created")), paid_at=epoch_to_utc(_get(inv, "status_transitions", "paid_at")),
            hosted_invoice_url=inv.get("hosted_invoice_url"),
        )

    # --- charges, disputes, cards -------------------------------------------------------------------------------------------
    def retrieve_charge(self, charge_id: str) -> ChargeState:
        # "The Charge object no longer auto-expands refunds" (changelog 2022-11-15): expand them.
        ch = self._request(self.v1.charges.retrieve, charge_id, missing="charge", expand=["refunds"])
        refunds = [RefundState(refund_id=str(r["id"]), amount=_int(r.get("amount")), status=str(r.get("status") or ""),
                               created=epoch_to_utc(r.get("created")))
                   for r in (_get(ch, "refunds", "data") or []) if isinstance(r, dict)]
        return ChargeState(
            charge_id=str(ch["id"]), payment_id=_id(ch.get("payment_intent")), customer_id=_id(ch.get("customer")),
            invoice_id=_id(ch.get("invoice")), amount=_int(ch.get("amount")),
            amount_refunded=_int(ch.get("amount_refunded")), disputed=bool(ch.get("disputed")), refunds=refunds,
        )

    def retrieve_dispute(self, dispute_id: str) -> DisputeState:
        dp = self._request(self.v1.disputes.retrieve, dispute_id, missing="dispute")
        return DisputeState(
            dispute_id=str(dp["id"]), charge_id=_id(dp.get("charge")) or "", payment_id=_id(dp.get("payment_intent")),
            amount=_int(dp.get("amount")), reason=str(dp.get("reason") or ""), status=str(dp.get("status") or ""),
            created=epoch_to_utc(dp.get("created")),
        )

    def retrieve_card(self, payment_method_id: str) -> CardState:
        pm = self._request(self.v1.payment_methods.retrieve, payment_method_id, missing="card")
        card = pm.get("card") or {}
        return CardState(
            payment_method_id=str(pm["id"]), customer_id=_id(pm.get("customer")),
            brand=str(card.get("brand") or "unknown"), last4=str(card.get("last4") or ""),
            exp_month=_int(card.get("exp_month")), exp_year=_int(card.get("exp_year")),
        )

    # --- the card-update link -----------------------------------------------------------------------------------------------
    def create_card_update_link(self, customer_id: str, *, return_url: str, idempotency_key: str) -> str:
        # The customer portal's deep link: "Use payment_method_update to let your customer add a new payment
        # method. The payment method is set as the customer.invoice_settings.default_payment_method."
        # (docs.stripe.com/customer-management/portal-deep-links)
        try:
            session = self.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url,
                        "flow_data": {"type": "payment_method_update"}},
                options={"idempotency_key": idempotency_key})
            return str(_plain(session)["url"])
        except stripe.StripeError as exc:
            if not _portal_not_configured(exc):
                raise map_stripe_error(exc) from None
        # No portal at this account: a Checkout Session in setup mode saves a card on the customer ("use the
        # mode parameter with a value of setup ... specify the customer parameter to automatically attach the
        # created payment method to an existing customer" -- docs.stripe.com/payments/checkout/save-and-reuse).
        # Its own key: a key is bound to the endpoint and parameters it was first used with.
        session = self._request(self.v1.checkout.sessions.create, key=f"{idempotency_key}:checkout", mode="setup",
                                customer=customer_id, currency=self.currency, payment_method_types=["card"],
                                success_url=return_url, metadata={"clarity_purpose": "card_update"})
        return str(session["url"])

    # --- sales tax ------------------------------------------------------------------------------------------------------
    def sync_tax_rate(self, spec: TaxRateSpec) -> str:
        wanted = _percentage(spec.percentage)
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"active": True, "limit": MAX_PAGE}
            if cursor:
                params["starting_after"] = cursor
            page = self._request(self.v1.tax_rates.list, **params)
            data = list(page.get("data") or [])
            for rate in data:
                if (rate.get("display_name") == spec.display_name and _percentage(rate.get("percentage")) == wanted
                        and bool(rate.get("inclusive")) == bool(spec.inclusive) and rate.get("active", True)):
                    return str(rate["id"])
            if not data or not page.get("has_more"):
                break
            cursor = str(data[-1]["id"])
        created = self._request(self.v1.tax_rates.create, key=_tax_key(spec), display_name=spec.display_name,
                                percentage=_percentage_text(spec.percentage), inclusive=bool(spec.inclusive),
                                metadata={"clarity_tax": spec.display_name})
        return str(created["id"])


__all__ = ["INVOICE_EXPAND", "StripeLifecycle"]
