"""The live-event relay's payloads: PostgreSQL refuses a NOTIFY of 8,000 bytes or more, so a
burst of events is split, and each piece reads back whole and in order."""

from __future__ import annotations

import pytest

from contactd.calls.events import CallDialing
from contactd.cluster import MAX_PAYLOAD, decode, encode


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
