"""Phone numbers: parse to E.164 with phonenumbers and learn type, region and time zones.

Pure: the CRM, the dialer's calling-window check and the demo data all use this one parser.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, timezone

from contactd.enums import PhoneType
from contactd.errors import ValidationError

_TYPES = {
    PhoneNumberType.MOBILE: PhoneType.MOBILE,
    PhoneNumberType.FIXED_LINE: PhoneType.FIXED,
    PhoneNumberType.VOIP: PhoneType.VOIP,
}
_UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True)
class PhoneInfo:
    e164: str
    type: PhoneType
    region: str | None
    time_zones: tuple[str, ...]  # empty when phonenumbers cannot tell

    @property
    def is_mobile(self) -> bool:
        return self.type is PhoneType.MOBILE


def parse_phone(raw: str, default_region: str | None = None) -> PhoneInfo:
    """Normalise a number as typed by a person or an import file; ValidationError if invalid."""
    text = raw.strip()
    if not text:
        raise ValidationError("phone number is empty", field="phone")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            f"phone number {raw!r} cannot be read: {exc}", field="phone"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"phone number {raw!r} is not a valid number", field="phone")
    # FIXED_LINE_OR_MOBILE (US/CA) counts as fixed: SMS to it is not assumed to work.
    found = phonenumbers.number_type(number)  # matched against every pattern: asked once
    kind = _TYPES.get(found, PhoneType.FIXED)
    if found not in (*_TYPES, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        kind = PhoneType.OTHER
    zones = tuple(z for z in timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    return PhoneInfo(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        type=kind,
        region=phonenumbers.region_code_for_number(number),
        time_zones=zones,
    )


def describe_location(e164: str, language: str = "en") -> str:
    """A place name for display ("Berlin", "California"), or "" when unknown."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    # Imported here: the geocoder's data takes about a second to load, and only this needs it.
    from phonenumbers import geocoder

    return str(geocoder.description_for_number(number, language))
