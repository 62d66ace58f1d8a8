"""The site's sales tax, in one rule (issue 13): what an amount's tax is, and how the screens name it.

    exclusive   the price is before tax: tax = amount × rate, the customer pays amount + tax
    inclusive   the price already holds the tax: tax = amount − amount / (1 + rate), the customer pays amount
    none        (or a rate of 0) no tax

Amounts are whole cents; the tax is rounded once, half up to the cent, from the exact fraction (no
float ever touches money). The tax is worked out on what is charged after any discount.

Lane charges (a sale's first period, an upgrade's prorated difference) are taxed here and the total is
charged; renewals are taxed by the gateway, through its tax rate (`rate_spec`), which the subscription
carries from the day it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

from clarity_tui.payments.lifecycle import TaxRateSpec


class TaxSettings(Protocol):
    """The site's tax settings (config.TaxConfig), read only here."""

    @property
    def behavior(self) -> str: ...

    @property
    def rate_percent(self) -> Decimal: ...

    @property
    def display_name(self) -> str: ...

    @property
    def applies(self) -> bool: ...


@dataclass(frozen=True)
class Taxed:
    """One amount with its tax: `total_cents` is charged, `net_cents` is the price without the tax."""

    tax_cents: int
    total_cents: int
    net_cents: int


def applies(tax: TaxSettings | None) -> bool:
    return tax is not None and tax.behavior in ("exclusive", "inclusive") and tax.rate_percent > 0


def inclusive(tax: TaxSettings | None) -> bool:
    return tax is not None and applies(tax) and tax.behavior == "inclusive"


def _half_up(x: Fraction) -> int:
    """Round a non-negative fraction to the nearest whole, halves up."""
    return (2 * x.numerator + x.denominator) // (2 * x.denominator)


def compute(tax: TaxSettings | None, amount_cents: int) -> Taxed:
    """The tax on `amount_cents` (the price after any discount) and what the customer pays."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 0:
        raise ValueError(f"An amount is a whole number of cents, zero or more (got {amount_cents!r}).")
    if tax is None or not applies(tax):
        return Taxed(0, amount_cents, amount_cents)
    rate = Fraction(Decimal(tax.rate_percent)) / 100
    if tax.behavior == "inclusive":
        part = _half_up(amount_cents * rate / (1 + rate))  # amount − amount / (1 + rate)
        return Taxed(part, amount_cents, amount_cents - part)
    part = _half_up(amount_cents * rate)
    return Taxed(part, amount_cents + part, amount_cents)


def rate_text(rate_percent: Decimal) -> str:
    """8.2500 -> "8.25%", 10 -> "10%", 7.0 -> "7%"."""
    d = Decimal(rate_percent).normalize()
    return f"{d:f}%"


def label(tax: TaxSettings | None) -> str:
    """"Sales tax 8.25%" (exclusive), "incl. Sales tax 8.25%" (inclusive), "" (no tax)."""
    if tax is None or not applies(tax):
        return ""
    name = f"{tax.display_name} {rate_text(tax.rate_percent)}"
    return f"incl. {name}" if inclusive(tax) else name


def price_note(tax: TaxSettings | None) -> str:
    """What follows a price shown before tax: " + tax", " incl. tax", or ""."""
    if not applies(tax):
        return ""
    return " incl. tax" if inclusive(tax) else " + tax"


def prices_note(tax: TaxSettings | None) -> str:
    """A sentence for a screen of prices: "Sales tax 8.25% is added to these prices.", "These prices
    include Sales tax 8.25%.", or ""."""
    if tax is None or not applies(tax):
        return ""
    name = f"{tax.display_name} {rate_text(tax.rate_percent)}"
    return f"These prices include {name}." if inclusive(tax) else f"{name} is added to these prices."


def rate_spec(tax: TaxSettings | None) -> TaxRateSpec | None:
    """The gateway's tax rate for the subscription's renewals (None: no tax)."""
    if tax is None or not applies(tax):
        return None
    return TaxRateSpec(tax.display_name, Decimal(tax.rate_percent), inclusive(tax))


def spec_payload(spec: TaxRateSpec | None) -> dict[str, Any] | None:
    """The tax rate as an outbox payload holds it (JSON): the rate in force when the order was made."""
    if spec is None:
        return None
    return {"display_name": spec.display_name, "percentage": str(spec.percentage), "inclusive": spec.inclusive}


def tax_metadata(payload: dict[str, Any]) -> dict[str, str]:
    """The charge's metadata about its tax ({"tax_cents": "247"}), from the outbox row's payload; nothing
    when the charge holds no tax."""
    cents = int(payload.get("tax_cents") or 0)
    return {"tax_cents": str(cents)} if cents > 0 else {}


def spec_from_payload(data: dict[str, Any] | None) -> TaxRateSpec | None:
    if not data:
        return None
    return TaxRateSpec(str(data["display_name"]), Decimal(str(data["percentage"])), bool(data["inclusive"]))


__all__ = ["TaxSettings", "Taxed", "applies", "compute", "inclusive", "label", "price_note", "prices_note", "rate_spec",
           "rate_text", "spec_from_payload", "spec_payload", "tax_metadata"]
