"""Card values: reader tokens, saved cards, and manually keyed cards.

A keyed card number and CVC live only in a `ManualCard` in memory, on their
way to the gateway: its repr masks them, and nothing here logs or stores them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from clarity_tui.payments.errors import InvalidCard

# One token type for readers, keyed entry and the gateways (hardware is headless, so payments may use it).
from hardware.card_reader.base import CardToken

__all__ = ["CardToken", "ManualCard", "SavedCard"]


@dataclass(frozen=True)
class SavedCard:
    """A card saved on a gateway customer."""

    payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool = False

    @property
    def label(self) -> str:
        return f"{self.brand.title()} •••• {self.last4}  {self.exp_month:02d}/{self.exp_year % 100:02d}"


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if re.match(r"^(5[1-5]|2[2-7])", number):
        return "mastercard"
    if re.match(r"^3[47]", number):
        return "amex"
    if re.match(r"^(6011|65|64[4-9])", number):
        return "discover"
    return "unknown"


@dataclass(frozen=True)
class ManualCard:
    """A validated, manually keyed card. Build with `ManualCard.parse(...)`."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        return card_brand(self.number)

    def __repr__(self) -> str:  # never show more than the last 4
        return f"ManualCard(****{self.last4}, {self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__

    @classmethod
    def parse(cls, number: str, expiry: str | tuple[int, int], cvc: str, *, today: dt.date | None = None) -> ManualCard:
        """Validate keyed input; raise InvalidCard with a message saying what to fix.

        expiry: "MM/YY", "MM/YYYY", "MMYY" or (month, year).
        """
        today = today or dt.date.today()
        digits = re.sub(r"[\s-]", "", number or "")
        if not digits.isdigit():
            raise InvalidCard("The card number can only contain digits: re-enter it.", code="number_format")
        if not 13 <= len(digits) <= 19:
            raise InvalidCard(
                f"The card number has {len(digits)} digits; cards have 13 to 19: re-enter it.", code="number_length"
            )
        if not luhn_ok(digits):
            raise InvalidCard("That card number is not valid (check digit failed): re-enter it carefully.",
                              code="luhn")
        month, year = _parse_expiry(expiry)
        if not 1 <= month <= 12:
            raise InvalidCard("The expiry month must be 01 to 12: re-enter the expiry as MM/YY.", code="expiry_format")
        if (year, month) < (today.year, today.month):
            raise InvalidCard(f"The card expired in {month:02d}/{year}: ask for another card.", code="expired")
        if year > today.year + 20:
            raise InvalidCard("The expiry year is too far ahead: re-enter the expiry as MM/YY.", code="expiry_format")
        cvc = (cvc or "").strip()
        want = 4 if card_brand(digits) == "amex" else 3
        if not (cvc.isdigit() and len(cvc) == want):
            raise InvalidCard(f"The security code (CVC) must be {want} digits: re-enter it.", code="cvc")
        return cls(number=digits, exp_month=month, exp_year=year, cvc=cvc)


def _parse_expiry(expiry: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(expiry, tuple):
        month, year = expiry
    else:
        m = re.fullmatch(r"\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*", expiry or "")
        if not m:
            raise InvalidCard("Re-enter the expiry as MM/YY (for example 04/29).", code="expiry_format")
        month, year = int(m.group(1)), int(m.group(2))
    if year < 100:
        year += 2000
    return int(month), int(year)
