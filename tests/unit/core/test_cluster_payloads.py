"""The live-event relay's payloads: PostgreSQL refuses a NOTIFY of 8,000 bytes or more, so a
burst of events is split, and each piece reads back whole and in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contactd.calls.events import AnsweredBy, CallAnswered, CallDialing
from contactd.cluster import MAX_PAYLOAD, PeerEvent, decode, encode, revive


def test_a_burst_is_split_under_the_notify_limit_and_reads_back_in_order() -> None:
    events = [CallDialing(attempt_id=f"attempt-{i:04d}", phone_e164="+4930555000",
                          campaign_id=i) for i in range(300)]
    payloads = encode("pbx-1", list(events))
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    read = [item for p in payloads for item in decode(p)[1]]
    assert [(kind, data["attempt_id"]) for kind, data in read] == [
        ("CallDialing", e.attempt_id) for e in events]
    assert {decode(p)[0] for p in payloads} == {"pbx-1"}


@pytest.mark.parametrize("payload", ["", "[]", '{"node": 1, "events": []}',
                                     '{"node": "a", "events": [1]}'])
def test_anything_else_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)


def test_a_peer_event_is_typed_again_as_it_was_sent() -> None:
    sent = CallAnswered(attempt_id="a-1", answered_by=AnsweredBy.HUMAN,
                        answered_at=datetime(2026, 12, 4, 22, 0, 1, 500, tzinfo=UTC),
                        interaction_id=7)
    node, items = decode(encode("pbx-2", [sent])[0])
    revived = revive(PeerEvent(node=node, kind=items[0][0], data=items[0][1]))
    assert revived == sent
    assert revive(PeerEvent(node="pbx-2", kind="SomethingNewer", data={})) is None
