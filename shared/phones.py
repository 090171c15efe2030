"""Phone numbers: one canonical form (E.164) everywhere, parsed with ``phonenumbers``.

People type numbers in every format ("030 1234567", "+49 (30) 123-4567", "0049301234567");
a customer must be found by any of them. Numbers without a country code are read in
``DEFAULT_PHONE_REGION`` (an ISO 3166 code, ``US`` unless configured).
"""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import timezone as phone_timezones

from shared import config


class NotAPhoneNumber(ValueError):
    pass


def default_region() -> str:
    return config.default_phone_region()


def to_e164(raw: str, region: str | None = None) -> str:
    """The E.164 form of ``raw``; raises NotAPhoneNumber when it is not a possible, valid number."""
    if not isinstance(raw, str) or not raw.strip():
        raise NotAPhoneNumber("empty")
    e164 = _e164(raw.strip(), region or default_region())
    if e164 is None:
        raise NotAPhoneNumber(f"{raw!r} is not a valid phone number")
    return e164


# Parsing a number is pure and costs ~80 us: a request reads each number several times (the
# schema checks it, normalises it, takes its zone and language from it), a webhook reads the
# same callers again and again. Only the answer is kept, never state that must be shared.
@functools.lru_cache(maxsize=8192)
def _e164(text: str, region: str) -> str | None:
    if text.startswith("00"):  # the international prefix most of the world dials
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164_or_none(raw: str | None, region: str | None = None) -> str | None:
    """Like ``to_e164`` for input we only try to match (a caller id), never refuse."""
    try:
        return to_e164(raw, region) if raw else None
    except NotAPhoneNumber:
        return None


@functools.lru_cache(maxsize=8192)
def time_zone_of(e164: str) -> str | None:
    """The IANA time zone of a number when the number pins down exactly one, else None."""
    number = phonenumbers.parse(e164, None)
    zones = [zone for zone in phone_timezones.time_zones_for_number(number) if zone != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


# The language a customer is first assumed to speak, from their number's country (BCP 47); they
# may change it. Countries not listed: English.
REGION_LANGUAGES = {
    "PH": "tl", "TW": "zh-Hant", "HK": "zh-Hant", "MO": "zh-Hant", "CN": "zh-Hans", "SG": "zh-Hans",
    "DE": "de", "AT": "de", "LI": "de", "FR": "fr", "MC": "fr", "LU": "fr",
}  # fmt: skip


@functools.lru_cache(maxsize=8192)
def language_of(e164: str | None) -> str | None:
    """The language of the country a number belongs to ('+886…' -> 'zh-Hant'), None without a number."""
    if not e164:
        return None
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    return REGION_LANGUAGES.get(region or "", "en")
