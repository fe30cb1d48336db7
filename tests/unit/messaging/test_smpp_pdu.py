"""The hand-packed PDUs are byte for byte what smpplib generates for the same fields."""

from __future__ import annotations

from typing import Any

import pytest
import smpplib.smpp
from hypothesis import given
from hypothesis import strategies as st

from contactd.messaging import pdu

addresses = st.text(alphabet="0123456789ABCDEFXYZ", min_size=1, max_size=20)


@given(
    sequence=st.integers(1, 0x7FFFFFFF),
    source=addresses,
    dest=addresses,
    esm_class=st.sampled_from([0, 0x40]),
    data_coding=st.sampled_from([0, 8]),
    registered=st.sampled_from([0, 1]),
    payload=st.binary(min_size=1, max_size=254),
)
def test_submit_sm_matches_smpplib(
    sequence: int,
    source: str,
    dest: str,
    esm_class: int,
    data_coding: int,
    registered: int,
    payload: bytes,
) -> None:
    fields: dict[str, Any] = {
        "source_addr": source,
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "destination_addr": dest,
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "esm_class": esm_class,
        "data_coding": data_coding,
        "registered_delivery": registered,
        "short_message": payload,
    }
    reference = smpplib.smpp.make_pdu("submit_sm", sequence=sequence, **fields)
    reference.sequence = sequence
    assert pdu.submit_sm(sequence, **fields) == reference.generate()


@pytest.mark.parametrize("status", [0, 0x08, 0x64])
def test_deliver_sm_resp_matches_smpplib(status: int) -> None:
    reference = smpplib.smpp.make_pdu("deliver_sm_resp", sequence=42, status=status)
    reference.sequence = 42
    reference.status = status
    assert pdu.deliver_sm_resp(42, status) == reference.generate()


def test_oversized_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="short_message"):
        pdu.submit_sm(
            1, source_addr="A", source_addr_ton=5, source_addr_npi=0, destination_addr="1",
            dest_addr_ton=1, dest_addr_npi=1, esm_class=0, data_coding=0,
            registered_delivery=1, short_message=b"x" * 255,
        )
    with pytest.raises(ValueError, match="destination_addr"):
        pdu.submit_sm(
            1, source_addr="A", source_addr_ton=5, source_addr_npi=0, destination_addr="1" * 21,
            dest_addr_ton=1, dest_addr_npi=1, esm_class=0, data_coding=0,
            registered_delivery=1, short_message=b"x",
        )


@given(
    sequence=st.integers(1, 0x7FFFFFFF),
    source=addresses,
    esm_class=st.sampled_from([0, 0x04, 0x40]),
    data_coding=st.sampled_from([0, 8]),
    payload=st.binary(max_size=254),
    receipted=st.one_of(st.none(), addresses),
)
def test_deliver_sm_parse_reads_what_smpplib_writes(
    sequence: int,
    source: str,
    esm_class: int,
    data_coding: int,
    payload: bytes,
    receipted: str | None,
) -> None:
    fields: dict[str, object] = {
        "source_addr": source,
        "destination_addr": "CONTACTD",
        "esm_class": esm_class,
        "data_coding": data_coding,
        "short_message": payload,
    }
    if receipted is not None:
        fields["receipted_message_id"] = receipted
        fields["message_state"] = 2
    reference = smpplib.smpp.make_pdu("deliver_sm", sequence=sequence, **fields)
    reference.sequence = sequence
    parsed = pdu.parse_deliver_sm(reference.generate())
    assert parsed.sequence == sequence
    assert parsed.source_addr == source.encode()
    assert parsed.destination_addr == b"CONTACTD"
    assert (parsed.esm_class, parsed.data_coding) == (esm_class, data_coding)
    assert parsed.short_message == payload
    assert parsed.receipted_message_id == (receipted.encode() if receipted else None)


def test_submit_sm_resp_parse_with_and_without_body() -> None:
    ok = smpplib.smpp.make_pdu("submit_sm_resp", sequence=9, message_id="abc-1")
    ok.sequence = 9
    assert pdu.parse_submit_sm_resp(ok.generate()) == (9, 0, "abc-1")
    throttled = bytes.fromhex("00000010800000040000005800000007")
    assert pdu.parse_submit_sm_resp(throttled) == (7, 0x58, "")


def test_truncated_deliver_sm_is_an_error() -> None:
    reference = smpplib.smpp.make_pdu("deliver_sm", sequence=1, source_addr="1",
                                      destination_addr="2", short_message=b"hi")
    reference.sequence = 1
    raw = reference.generate()
    broken = raw[:20]
    with pytest.raises((ValueError, IndexError)):
        pdu.parse_deliver_sm(len(broken).to_bytes(4, "big") + broken[4:])
