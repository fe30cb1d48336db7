"""Real SIP calls (SIPp) into the PJSIP trunk reach contactd's inbound dialplan and its
AudioSocket hand-off. A test recorder listens on the AudioSocket port, not contactd's IVR:
this pins the dialplan side only."""

from __future__ import annotations

from pathlib import Path

import pytest
from panoramisk import Manager

from tests.peers.asterisk import (
    AmiEvents,
    AsteriskSandbox,
    audiosocket_recorder,
    set_audiosocket,
)
from tests.peers.sipp import run_sipp

pytestmark = [pytest.mark.sipp, pytest.mark.asterisk]

CALLS = 20


async def test_sipp_calls_reach_the_ivr_over_the_trunk(
    asterisk: AsteriskSandbox, ami: Manager, tmp_path: Path
) -> None:
    events = AmiEvents(ami, "UserEvent")
    async with audiosocket_recorder() as recorder:
        await set_audiosocket(ami, "127.0.0.1", recorder.port)
        result = await run_sipp(
            asterisk, dnis="5550100", caller="5557000", calls=CALLS, work_dir=tmp_path
        )
        assert result.successful == CALLS
        sessions = {str(call.session) for call in recorder.calls}

    ivr = [
        e
        for e in events.user_events("ContactdIvr", Dnis="5550100", CallerNum="5557000")
        if e["Channel"].startswith("PJSIP/trunk-")
    ]
    assert len(ivr) == CALLS
    # Every call's AudioSocket connection carried the session the dialplan announced.
    assert len(recorder.calls) == CALLS
    assert sessions == {e["Session"] for e in ivr}
