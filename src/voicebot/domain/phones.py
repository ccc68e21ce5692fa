"""Phone numbers in E.164, and the time zone a number's region implies."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones


class InvalidPhoneNumber(ValueError):
    pass


class UnknownTimeZone(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    e164: str
    region: str | None

    def masked(self) -> str:
        """``+8613812345678`` -> ``+86138****5678``: enough to tell numbers apart, not to dial."""
        return mask_phone(self.e164)


def parse_phone(raw: str, default_region: str | None = None) -> PhoneNumber:
    """Parse and validate a number; national formats need ``default_region`` (e.g. ``CN``)."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(
            _PARSE_PROBLEMS.get(exc.error_type, "not a phone number")
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number for its region")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return PhoneNumber(e164=e164, region=phonenumbers.region_code_for_number(parsed))


_ERRORS = phonenumbers.NumberParseException
# The phone library's parse failures, in words an operator fixing an import can act on.
_PARSE_PROBLEMS = {
    _ERRORS.INVALID_COUNTRY_CODE: "not a phone number: no country code (write it as +86…, or "
    "give default_region for national numbers)",
    _ERRORS.NOT_A_NUMBER: "not a phone number: no number to dial could be read from it",
    _ERRORS.TOO_SHORT_AFTER_IDD: "not a phone number: too short after the international prefix",
    _ERRORS.TOO_SHORT_NSN: "not a phone number: too short",
    _ERRORS.TOO_LONG: "not a phone number: too long",
}


def mask_phone(e164: str) -> str:
    if len(e164) <= 8:
        return "*" * len(e164)
    return f"{e164[:-8]}****{e164[-4:]}"


def time_zone_for(number: PhoneNumber) -> str:
    """The IANA zone of a number's region; for regions spanning zones, the first the library names.

    China, Korea and most markets have one zone. For the US the library narrows by area code.
    """
    parsed = phonenumbers.parse(number.e164)
    zones = [z for z in phone_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    if zones:
        return zones[0]
    return "UTC"


def check_time_zone(name: str) -> str:
    """Return ``name`` if it is an IANA zone this machine knows, else raise UnknownTimeZone."""
    if name not in _known_zones():
        raise UnknownTimeZone(f"unknown IANA time zone {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(f"unknown IANA time zone {name!r}") from None
    return name


_ZONES: frozenset[str] | None = None


def _known_zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES
