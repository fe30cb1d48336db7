"""The fast normaliser must agree with contactd.phones.parse_phone on every input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contactd.crm.bulk_phones import PhoneNormaliser
from contactd.enums import PhoneType
from contactd.errors import ValidationError
from contactd.phones import PhoneInfo, parse_phone

REGIONS = ["DE", "US", "GB", "FR", "IT", "RU", "BR", "AR", "MX", "IN", "CA", "CH", "JP", "AU"]


def reference(raw: str, region: str) -> PhoneInfo | None:
    try:
        return parse_phone(raw, region)
    except ValidationError:
        return None


def fast(raw: str, region: str) -> PhoneInfo | None:
    result = PhoneNormaliser(region).try_parse(raw)
    return None if isinstance(result, str) else result


numbers = st.builds(
    lambda prefix, digits, sep: prefix + sep.join([digits[:3], digits[3:7], digits[7:]]),
    st.sampled_from(["", "0", "+", "00", "+49 ", "+1 ", "(0", "0049 ", "+44 (0)", " +", "++",
                     "\u00a0+", "0 0"]),
    st.text(alphabet="0123456789", min_size=5, max_size=13),
    # A tab is no separator to phonenumbers: such a number is invalid, fast path or not.
    st.sampled_from(["", " ", "-", "/", ".", "\u00a0", "\t", "+"]),
)


@settings(max_examples=1500, deadline=None)
@given(raw=numbers, region=st.sampled_from(REGIONS))
def test_fast_path_agrees_with_phonenumbers(raw: str, region: str) -> None:
    assert fast(raw, region) == reference(raw, region)


@pytest.mark.parametrize(
    ("raw", "region", "e164", "kind"),
    [
        ("030 1234567", "DE", "+49301234567", PhoneType.FIXED),
        ("0151 23456789", "DE", "+4915123456789", PhoneType.MOBILE),
        ("+49 (0)30 1234567", "DE", "+49301234567", PhoneType.FIXED),
        ("0044 20 7946 0958", "DE", "+442079460958", PhoneType.FIXED),
        ("0301", "DE", None, None),  # too short for any German number
        ("030\t1234567", "DE", None, None),  # phonenumbers takes no tab inside a number
        ("(201) 555-0123", "US", "+12015550123", PhoneType.FIXED),
    ],
)
def test_known_numbers(raw: str, region: str, e164: str | None, kind: PhoneType | None) -> None:
    info = fast(raw, region)
    assert info == reference(raw, region)
    if e164 is None:
        assert info is None
    else:
        assert info is not None and info.e164 == e164 and info.type is kind
        assert info.time_zones


def test_reasons_for_bad_numbers() -> None:
    normaliser = PhoneNormaliser("DE")
    assert isinstance(normaliser.try_parse("12"), str)
    assert isinstance(normaliser.try_parse("call me maybe"), str)
    with pytest.raises(ValidationError):
        normaliser.parse("+999 123")
