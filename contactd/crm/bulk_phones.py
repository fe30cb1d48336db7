"""A fast phone normaliser for bulk work (imports), giving the same answers as
`contactd.phones.parse_phone`.

phonenumbers builds objects and tries many rules per number (~10,000 numbers/s here), too
slow for a 17,000 rows/s import. Most numbers in a file are plain digits with spaces,
dashes or a leading + / 00: for those this module applies the same metadata (country codes,
national prefix, per-type patterns and lengths) with compiled regexes and caches. Anything
unusual, or anything the fast path finds invalid, goes to `parse_phone`, so the fast path
can only ever agree with it (the unit tests compare both on generated numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, phonenumberutil, timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from contactd.enums import PhoneType
from contactd.errors import ValidationError
from contactd.phones import PhoneInfo, parse_phone

_UNKNOWN_ZONE: Final = "Etc/Unknown"
_LONGEST_ZONE_PREFIX: Final = int(getattr(timezone, "TIMEZONE_LONGEST_PREFIX", 9))
# Countries whose mobile numbers are geographic (phonenumbers keeps this list private).
_GEO_MOBILE_COUNTRY_CODES: Final[frozenset[int]] = frozenset(
    getattr(phonenumberutil, "_GEO_MOBILE_COUNTRIES", {52, 54, 55, 62, 86})
)

# phonenumbers' type order (phonenumberutil._number_type_helper), before fixed/mobile.
_SPECIAL_TYPES: Final = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


@dataclass(frozen=True, slots=True)
class _Desc:
    pattern: re.Pattern[str]
    lengths: frozenset[int]

    def matches(self, nsn: str) -> bool:
        if self.lengths and len(nsn) not in self.lengths:
            return False
        return self.pattern.fullmatch(nsn) is not None


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country_code: int
    cc_text: str
    general: _Desc
    special: tuple[tuple[str, _Desc], ...]
    fixed: _Desc | None
    mobile: _Desc | None
    same_mobile_and_fixed: bool
    prefix: re.Pattern[str] | None  # national prefix for parsing, None when unusable here
    simple_prefix: bool  # False: transform rules or carrier codes, leave to phonenumbers
    leading_digits: re.Pattern[str] | None
    idd: re.Pattern[str] | None
    possible: frozenset[int]
    local_only: frozenset[int]
    # Every type pattern in phonenumbers' order as one alternation: one regex run finds the
    # first type whose pattern matches; its length list is then checked.
    combined: re.Pattern[str] | None
    by_group: dict[str, tuple[PhoneType, _Desc]]  # the combined pattern's groups


def _desc(raw: object) -> _Desc | None:
    pattern = getattr(raw, "national_number_pattern", None)
    if raw is None or pattern is None:
        return None
    return _Desc(re.compile(pattern), frozenset(getattr(raw, "possible_length", ()) or ()))


@lru_cache(maxsize=512)
def _region(code: str) -> _Region | None:
    meta = PhoneMetadata.metadata_for_region(code)
    if meta is None:
        return None
    general = _desc(meta.general_desc)
    if general is None or meta.general_desc is None or meta.country_code is None:
        return None
    special = tuple(
        (name, desc) for name in _SPECIAL_TYPES if (desc := _desc(getattr(meta, name))) is not None
    )
    prefix_src = meta.national_prefix_for_parsing
    prefix = re.compile(prefix_src) if prefix_src else None
    simple_prefix = not meta.national_prefix_transform_rule and (
        prefix is None or prefix.groups == 0
    )
    ordered: list[tuple[PhoneType, _Desc]] = [
        (PhoneType.VOIP if name == "voip" else PhoneType.OTHER, desc) for name, desc in special
    ]
    fixed, mobile = _desc(meta.fixed_line), _desc(meta.mobile)
    if fixed is not None:
        ordered.append((PhoneType.FIXED, fixed))
    if mobile is not None and not meta.same_mobile_and_fixed_line_pattern:
        ordered.append((PhoneType.MOBILE, mobile))
    combined = re.compile(
        "|".join(f"(?P<t{i}>{desc.pattern.pattern})" for i, (_, desc) in enumerate(ordered))
    ) if ordered else None
    return _Region(
        code=code,
        combined=combined,
        by_group={f"t{i}": entry for i, entry in enumerate(ordered)},
        country_code=int(meta.country_code),
        cc_text=str(meta.country_code),
        general=general,
        special=special,
        fixed=_desc(meta.fixed_line),
        mobile=_desc(meta.mobile),
        same_mobile_and_fixed=bool(meta.same_mobile_and_fixed_line_pattern),
        prefix=prefix,
        simple_prefix=simple_prefix,
        leading_digits=re.compile(meta.leading_digits) if meta.leading_digits else None,
        idd=re.compile(meta.international_prefix) if meta.international_prefix else None,
        possible=frozenset(meta.general_desc.possible_length or ()),
        local_only=frozenset(meta.general_desc.possible_length_local_only or ()),
    )


def _type_of(region: _Region, nsn: str, valid: bool | None = None) -> PhoneType | None:
    """None when the number is not valid for the region (phonenumbers' UNKNOWN). `valid`:
    whether region.general's pattern matches nsn, when the caller knows it already."""
    general = region.general
    if general.lengths and len(nsn) not in general.lengths:
        return None
    if valid is None:
        valid = general.pattern.fullmatch(nsn) is not None
    if not valid:
        return None
    if region.combined is not None:
        found = region.combined.fullmatch(nsn)
        if found is None:
            return None  # no type pattern matches: sequential tests would fail too
        kind, desc = region.by_group[found.lastgroup or "t0"]
        if not desc.lengths or len(nsn) in desc.lengths:
            return kind
    return _type_of_slow(region, nsn)


def _type_of_slow(region: _Region, nsn: str) -> PhoneType | None:
    for name, desc in region.special:
        if desc.matches(nsn):
            return PhoneType.VOIP if name == "voip" else PhoneType.OTHER
    if region.fixed is not None and region.fixed.matches(nsn):
        # FIXED_LINE_OR_MOBILE counts as fixed, as in contactd.phones.
        return PhoneType.FIXED
    if (
        not region.same_mobile_and_fixed
        and region.mobile is not None
        and region.mobile.matches(nsn)
    ):
        return PhoneType.MOBILE
    return None


def _regions_for(country_code: int) -> tuple[str, ...]:
    return tuple(COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()))


_NON_GEO_ZONES: dict[tuple[int, PhoneType], tuple[str, ...]] = {}


def _clean(zones: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(z for z in zones if z != _UNKNOWN_ZONE)


@lru_cache(maxsize=65536)
def _geo_zones(digits_prefix: str) -> tuple[str, ...]:
    # The same longest-prefix walk phonenumbers does over its zone table.
    for size in range(len(digits_prefix), 0, -1):
        zones = TIMEZONE_DATA.get(digits_prefix[:size])
        if zones is not None:
            return _clean(zones)
    return ()


def _zones_for(e164: str, cc: int, kind: PhoneType) -> tuple[str, ...]:
    """Geographic numbers by their leading digits, others by country code (as phonenumbers)."""
    geographic = kind is PhoneType.FIXED or (
        kind is PhoneType.MOBILE and cc in _GEO_MOBILE_COUNTRY_CODES
    )
    if geographic:
        return _geo_zones(e164[1 : 1 + _LONGEST_ZONE_PREFIX])
    cached = _NON_GEO_ZONES.get((cc, kind))
    if cached is None:
        number = phonenumbers.parse(e164, None)
        cached = _clean(timezone.time_zones_for_number(number))
        _NON_GEO_ZONES[(cc, kind)] = cached
    return cached


@dataclass(frozen=True, slots=True)
class _Country:
    """What the fast path needs for one country code, resolved once."""

    main: _Region
    regions: tuple[_Region | None, ...]
    several: bool
    longest: int  # max(main.possible), 0 when unknown
    zone_depth: int  # longest key of the zone table under this code


_COUNTRIES: dict[int, _Country | None] = {}


def _country(cc: int) -> _Country | None:
    if cc in _COUNTRIES:
        return _COUNTRIES[cc]
    codes = _regions_for(cc)
    main = _region(codes[0]) if codes else None
    country = None
    if main is not None:
        prefix = str(cc)
        depth = max((len(k) for k in TIMEZONE_DATA if k.startswith(prefix)), default=0)
        country = _Country(
            main=main,
            regions=tuple(_region(code) for code in codes),
            several=len(codes) > 1,
            longest=max(main.possible, default=0),
            zone_depth=min(depth, _LONGEST_ZONE_PREFIX),
        )
    _COUNTRIES[cc] = country
    return country


_ZONES: dict[str, tuple[str, ...]] = {}
# Time zones as contact_phones stores them, one string object per set: also lets marshal send
# a reference instead of the text when a batch leaves the worker process.
_ZONES_TEXT: dict[tuple[str, ...], str] = {}


def _zones(e164: str, cc: int, kind: PhoneType, depth: int) -> tuple[str, ...]:
    """`_zones_for` with the prefix walk cut to the depth the zone table has for `cc`."""
    if kind is PhoneType.FIXED or (kind is PhoneType.MOBILE and cc in _GEO_MOBILE_COUNTRY_CODES):
        key = e164[1 : 1 + depth]
        zones = _ZONES.get(key)
        if zones is None:
            zones = _ZONES[key] = _geo_zones(key)
        return zones
    return _zones_for(e164, cc, kind)


_Found = tuple[str, PhoneType, str, tuple[str, ...]]  # e164, type, region, time zones
# e164, PhoneType value, region, time zones separated by spaces
StoredPhone = tuple[str, str, str | None, str]


# What may sit between the digits of a plain number, deleted by str.translate.
_SEPARATORS: Final = str.maketrans("", "", " -().\u00a0/")


def _fast(raw: str, default: _Region | None) -> _Found | None:
    text = raw.strip()
    plus = text.startswith("+")
    digits = (text[1:] if plus else text).translate(_SEPARATORS)
    # Digits only (ASCII: str.isdigit takes other scripts' digits too): anything else, such
    # as a second "+", a letter or an unusual space, is left to phonenumbers.
    if not (digits.isdigit() and digits.isascii()) or not 3 <= len(digits) <= 17:
        return None
    if not plus and text.startswith("00"):
        plus, digits = True, digits[2:]  # as contactd.phones.parse_phone does
    if plus:
        if digits.startswith("0"):
            return None  # no country code starts with 0
        for size in (1, 2, 3):
            cc = int(digits[:size])
            if cc in COUNTRY_CODE_TO_REGION_CODE:
                return _finish(cc, digits[size:])
        return None
    if default is None:
        return None
    if digits.startswith(default.cc_text):
        # "4930…" typed without + in Germany: phonenumbers may read a country code there;
        # leave the ambiguous case to it. Likewise a number starting with the exit code.
        return None
    if default.idd is not None and default.idd.match(digits):
        return None
    return _finish(default.country_code, digits)


def _finish(cc: int, digits: str) -> _Found | None:
    country = _COUNTRIES[cc] if cc in _COUNTRIES else _country(cc)
    if country is None:
        return None
    main = country.main
    general = main.general.pattern
    # phonenumbers' national-prefix stripping and length test. `valid`: whether the general
    # pattern matches nsn, when that is already known.
    nsn = digits
    valid: bool | None = None
    if main.prefix is not None:
        if not main.simple_prefix:
            return None
        match = main.prefix.match(digits)
        if match is not None:
            stripped = digits[match.end() :]
            length = len(stripped)
            if not main.possible or length in main.local_only:
                keep = True
            else:
                valid = general.fullmatch(stripped) is not None
                keep = not valid and general.fullmatch(digits) is not None
            if not keep and (length in main.possible or length > country.longest):
                nsn = stripped
            else:
                valid = None
    if len(nsn) < 2:
        return None
    for region in country.regions:
        if region is None:
            return None
        if country.several and region.leading_digits is not None:
            if region.leading_digits.match(nsn) is None:
                continue
            kind = _type_of(region, nsn)
            if kind is None:
                return None
        else:
            kind = _type_of(region, nsn, valid if region is main else None)
            if kind is None:
                continue
        e164 = f"+{cc}{nsn}"
        return e164, kind, region.code, _zones(e164, cc, kind, country.zone_depth)
    return None


class PhoneNormaliser:
    """Normalises many numbers with one default region; keeps its caches warm."""

    def __init__(self, default_region: str | None) -> None:
        self.default_region = default_region
        self._default = _region(default_region) if default_region else None

    def parse(self, raw: str) -> PhoneInfo:
        """Like `contactd.phones.parse_phone`: a PhoneInfo, or ValidationError."""
        found = _fast(raw, self._default)
        if found is not None:
            return PhoneInfo(e164=found[0], type=found[1], region=found[2], time_zones=found[3])
        return parse_phone(raw, self.default_region)

    def try_parse(self, raw: str) -> PhoneInfo | str:
        """The PhoneInfo, or the reason it is not a usable number."""
        try:
            return self.parse(raw)
        except ValidationError as exc:
            return exc.message

    def stored(self, raw: str) -> StoredPhone | str:
        """The number as a contact_phones row stores it (plain values, for bulk imports),
        or the reason it is not a usable number. Same answers as `try_parse`."""
        found = _fast(raw, self._default)
        if found is not None:
            zones = found[3]
            text = _ZONES_TEXT.get(zones)
            if text is None:
                text = _ZONES_TEXT[zones] = " ".join(zones)
            return found[0], found[1].value, found[2], text
        try:
            info = parse_phone(raw, self.default_region)
        except ValidationError as exc:
            return exc.message
        return info.e164, info.type.value, info.region, " ".join(info.time_zones)
