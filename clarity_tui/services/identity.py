"""Validation, display and search keys for people: phone (phonenumbers), email (email-validator), names.

One source for each rule: `display_phone` is how a stored phone reads on every customer screen,
`display_name` is how a customer's name reads."""

from __future__ import annotations

import re
import unicodedata

# phonenumbers and email-validator load on first use: the board's services import this module for
# display_name, and the boot should not pay ~50 ms for phone metadata it may never need.

from clarity_tui.errors import UserFacingError

_DIGITS = re.compile(r"\D")


class InvalidPhone(UserFacingError, ValueError):
    pass


class InvalidEmail(UserFacingError, ValueError):
    pass


def normalize_phone(raw: str, region: str = "US") -> str:
    """Parse a phone typed in any format; return E.164 or raise InvalidPhone with the fix."""
    import phonenumbers

    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("Enter a phone number.")
    if re.search(r"\d\.\d+E\+\d+", text, re.IGNORECASE):
        # A spreadsheet turned the number into 1.55E+10: the digits are gone.
        raise InvalidPhone(f"'{text}' looks like a spreadsheet-mangled number: the real digits are lost; re-enter it.")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"'{text}' is not a phone number ({exc._msg}).") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            f"'{text}' is not a valid {region} phone number: check the digits, or start with + and the country code."
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None, site_region: str = "US") -> str:
    """National format for the site's own country, international (+44 20 ...) otherwise,
    so the number reads right and parses back to the same E.164 when the form is saved."""
    import phonenumbers

    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    same = phonenumbers.region_code_for_number(number) == site_region.upper()
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


def normalize_email(raw: str) -> str:
    """Validate syntax only (no DNS: the lane may be offline). Returns the normalised address."""
    from email_validator import EmailNotValidError, validate_email

    text = (raw or "").strip()
    if not text:
        raise InvalidEmail("Enter an email address.")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(f"'{text}' is not a valid email address: {exc}") from exc


def display_name(first_name: str | None, last_name: str | None) -> str:
    """'Sofia Evans'; just one of them when the other is empty, '' when both are."""
    return f"{first_name or ''} {last_name or ''}".strip()


def fold(text: str | None) -> str:
    """Casefold and strip accents and punctuation: 'Zoë O'Brien-Smith' -> 'zoe obriensmith'."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ish = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z ]", "", ascii_ish.casefold()).strip()


def phone_reversed_digits(e164: str | None) -> str | None:
    """Digits reversed, so 'ends with 1234' becomes an indexable 'starts with 4321'."""
    if not e164:
        return None
    return _DIGITS.sub("", e164)[::-1]


def customer_search_keys(first_name: str, last_name: str, email: str | None, phone_e164: str | None) -> dict[str, str | None]:
    return {
        "search_first": fold(first_name).replace(" ", ""),
        "search_last": fold(last_name).replace(" ", ""),
        "email_lower": email.lower() if email else None,
        "phone_rev": phone_reversed_digits(phone_e164),
    }
