"""Outbox transition table, back-off, opt-out words, receipt parsing."""

from __future__ import annotations

from typing import Any

import pytest

from contactd.enums import MessageState as S
from contactd.messaging.errors import InvalidTransitionError
from contactd.messaging.inbound import to_e164
from contactd.messaging.opt_out import OPT_OUT_KEYWORDS, is_opt_out, keywords
from contactd.messaging.pdu import RawDeliverSm
from contactd.messaging.smpp import parse_deliver
from contactd.messaging.state import FINAL, TRANSITIONS, backoff_s, check_move, sources_of


def test_final_states_go_nowhere() -> None:
    assert {S.DELIVERED, S.FAILED, S.EXPIRED} == FINAL
    with pytest.raises(InvalidTransitionError):
        check_move(S.DELIVERED, S.SENT)


def test_the_happy_path_and_the_retry_loop_are_allowed() -> None:
    for current, new in [(S.QUEUED, S.SENDING), (S.SENDING, S.SENT), (S.SENT, S.DELIVERED),
                         (S.SENDING, S.QUEUED)]:
        check_move(current, new)
    with pytest.raises(InvalidTransitionError):
        check_move(S.QUEUED, S.DELIVERED)


def test_sources_match_the_table() -> None:
    for target in S:
        assert sources_of(target) == {s for s, nexts in TRANSITIONS.items() if target in nexts}
    assert sources_of(S.DELIVERED) == {S.SENT}


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_s(n, base_s=5, max_s=60) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


@pytest.mark.parametrize(
    "text",
    [
        "STOP", "stop", " Stop please", "STOP.", "Unsubscribe", "arrêt", "ARRE\u0302T",
        "ＳＴＯＰ",  # full width: NFKC
        "СТОП", "стоп пожалуйста", "Stopp", "BAJA", "İptal",
    ],
)
def test_opt_out_words(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", ["", "don't stop", "Stopped by", "ok thanks", "стопка"])
def test_not_opt_out(text: str) -> None:
    assert not is_opt_out(text)


def test_opt_out_words_per_language() -> None:
    german = keywords(["de"])
    assert is_opt_out("stopp", german) and not is_opt_out("СТОП", german)
    assert all(words for words in OPT_OUT_KEYWORDS.values())


@pytest.mark.parametrize(
    ("address", "ton", "region", "e164"),
    [
        ("4915112345678", 1, "US", "+4915112345678"),  # international, no '+'
        ("+4915112345678", 0, "US", "+4915112345678"),
        ("015112345678", 2, "DE", "+4915112345678"),  # national: the default region
        ("0151 1234 5678", 0, "DE", "+4915112345678"),  # unknown, trunk prefix: national
        ("4915112345678", 0, "DE", "+4915112345678"),  # unknown, country code: international
        ("2025550143", 0, "US", "+12025550143"),
        ("00 49 151 12345678", 0, "FR", "+4915112345678"),
        ("ACME", 5, "DE", "ACME"),  # alphanumeric sender
        ("12345", 1, "DE", "+12345"),  # no valid reading: kept, never dropped
    ],
)
def test_e164_from_smpp_addresses(address: str, ton: int, region: str, e164: str) -> None:
    assert to_e164(address, ton, region) == e164


def _pdu(**fields: Any) -> RawDeliverSm:
    base: dict[str, Any] = {
        "sequence": 1,
        "esm_class": 0,
        "short_message": b"",
        "source_addr": b"491511234",
        "destination_addr": b"CONTACTD",
        "data_coding": 0,
        "receipted_message_id": None,
    }
    base.update(fields)
    return RawDeliverSm(**base)


def test_receipt_text_is_parsed_when_the_tlv_is_missing() -> None:
    text = b"id:abc-1f sub:001 dlvrd:000 submit date:2611291200 done date:2611291201 " \
           b"stat:UNDELIV err:034 text:"
    message = parse_deliver(_pdu(esm_class=0x04, short_message=text))
    assert (message.receipt_id, message.stat, message.error) == ("abc-1f", "UNDELIV", "034")


def test_receipted_message_id_tlv_wins() -> None:
    message = parse_deliver(
        _pdu(esm_class=0x04, short_message=b"id:x stat:DELIVRD", receipted_message_id=b"real")
    )
    assert message.receipt_id == "real" and message.stat == "DELIVRD"


def test_mobile_originated_ucs2_text() -> None:
    message = parse_deliver(_pdu(short_message="Стоп".encode("utf-16-be"), data_coding=8))
    assert message.receipt_id is None and message.text == "Стоп"
