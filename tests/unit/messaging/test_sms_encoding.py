"""GSM-7 vs UCS-2 choice and character-safe splitting with concatenation headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contactd.messaging.encoding import (
    GSM_BASIC,
    DataCoding,
    MessageTooLongError,
    choose_coding,
    decode_payload,
    encode_text,
    split_message,
)


def test_plain_text_and_extension_characters_stay_gsm7() -> None:
    assert choose_coding("Hello, Zoé! Price 10€ {ok} [x] ~^|\\") is DataCoding.GSM7
    assert encode_text("€", DataCoding.GSM7) == b"\x1b\x65"


@pytest.mark.parametrize("text", ["Привет", "予約", "emoji 🎉", "back`tick", "ç upper Ç ok? ł"])
def test_anything_outside_the_gsm_alphabet_is_ucs2(text: str) -> None:
    assert choose_coding(text) is DataCoding.UCS2


def test_section_sign_is_gsm7_at_0x5f() -> None:
    assert encode_text("§", DataCoding.GSM7) == b"\x5f"


def test_single_message_limits() -> None:
    assert len(split_message("a" * 160, 1)) == 1
    assert len(split_message("a" * 161, 1)) == 2
    assert len(split_message("я" * 70, 1)) == 1
    assert len(split_message("я" * 71, 1)) == 2
    # Extension characters take two septets.
    assert len(split_message("€" * 80, 1)) == 1
    assert len(split_message("€" * 81, 1)) == 2


def test_parts_carry_an_ordered_concatenation_header() -> None:
    parts = split_message("я" * 200, reference=300)
    assert [p.index for p in parts] == [1, 2, 3]
    for part in parts:
        assert part.payload[:6] == bytes((5, 0, 3, 300 & 0xFF, 3, part.index))
        assert part.esm_class == 0x40
        assert len(part.payload) <= 140


def test_an_escape_is_never_cut_between_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    parts = split_message(text, 1)
    assert parts[0].payload[6:].endswith(b"a")
    assert parts[1].payload[6:].startswith(b"\x1b\x65")


def test_a_surrogate_pair_is_never_cut_between_parts() -> None:
    text = "x" * 66 + "🎉" + "y" * 10
    parts = split_message(text, 1)
    assert decode_payload(parts[0].payload, DataCoding.UCS2, 0x40) == "x" * 66
    assert decode_payload(parts[1].payload, DataCoding.UCS2, 0x40).startswith("🎉")


def test_too_long_is_refused() -> None:
    with pytest.raises(MessageTooLongError):
        split_message("я" * 67 * 256, 1)


gsm_text = st.text(alphabet=st.sampled_from(GSM_BASIC.replace("\x1b", "") + "€[]{}"), max_size=600)


@given(st.one_of(gsm_text, st.text(max_size=400)))
def test_parts_reassemble_to_the_original_text(text: str) -> None:
    parts = split_message(text, 7)
    joined = "".join(decode_payload(p.payload, p.data_coding, p.esm_class) for p in parts)
    assert joined == text
    limit = 140 if parts[0].data_coding is DataCoding.UCS2 else 160
    assert all(len(p.payload) <= limit for p in parts)
