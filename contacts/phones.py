"""Phone numbers, parsed with `phonenumbers` (libphonenumber) and kept in E.164
form (+14155550123): the one form SMS and WhatsApp providers accept, and one
spelling per number, so lookups and uniqueness work."""

import phonenumbers
from django.conf import settings


class InvalidPhoneNumber(ValueError):
    pass


def normalise_phone(value: str, *, region: str | None = None) -> str:
    """`value` in E.164 form, or InvalidPhoneNumber with a message for people.

    A number without a country code ("020 7946 0958") is read as a number of
    `region` (an ISO country code such as "GB"; by default the
    WAYMARK_DEFAULT_PHONE_REGION setting). With no region, a number must
    carry its country code. A number that parses but cannot exist (too
    short, an unassigned range) is invalid too.
    """
    raw = (value or "").strip()
    if region is None:
        region = settings.WAYMARK_DEFAULT_PHONE_REGION
    region = (region or "").strip().upper() or None
    if not raw:
        raise InvalidPhoneNumber("No phone number was given.")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        problem = f"“{raw}” is not a valid phone number."
        if region is None and not raw.startswith("+"):
            problem += " Write it with its country code, e.g. +14155550123."
        raise InvalidPhoneNumber(problem)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
